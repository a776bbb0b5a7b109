//go:build integration

package aws

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/providers"
)

// benchLatency is added to every call by the proxy in front of moto, as a
// stand-in for the round trip to a real AWS region.
const benchLatency = 20 * time.Millisecond

// unbatchedKind is the awssm kind with FetchBatch hidden, so a Set fetches
// each secret with GetSecretValue (Set.Concurrency at a time).
const unbatchedKind = "awssm-unbatched"

var registerUnbatched sync.Once

// fetchOnly hides every capability of a Provider but Fetch and Close.
type fetchOnly struct{ p providers.Provider }

func (f fetchOnly) Fetch(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
	return f.p.Fetch(ctx, ref)
}

func (f fetchOnly) Close() error { return f.p.Close() }

// BenchmarkResolve1000 renders 200 secrets × 5 fields = 1,000 references
// once per iteration, as `keyward render --once` does (a new Set and
// provider each time), through a proxy that adds 20 ms to every call to
// moto. It reports the API calls made per render: batched uses
// BatchGetSecretValue (20 ids per call), unbatched GetSecretValue for
// each secret, 8 at a time.
func BenchmarkResolve1000(b *testing.B) {
	registerUnbatched.Do(func() {
		k, _ := providers.LookupKind(KindName)
		providers.Register(providers.Kind{
			Name: unbatchedKind, Params: k.Params, CheckRef: k.CheckRef,
			New: func(in providers.Instance) (providers.Provider, error) {
				p, err := k.New(in)
				if err != nil {
					return nil, err
				}
				return fetchOnly{p}, nil
			},
		})
	})
	c := admin(b, "")
	prefix := uniq(b, "bench")
	const secrets, fields = 200, 5
	base := map[string]providers.Ref{}
	for i := range secrets {
		name := fmt.Sprintf("%s/%03d", prefix, i)
		body := "{"
		for f := range fields {
			if f > 0 {
				body += ","
			}
			body += fmt.Sprintf(`"field%d":"value-%d-%d"`, f, i, f)
		}
		createSecret(b, c, name, []byte(body+"}"), true)
		for f := range fields {
			base[fmt.Sprintf("S%03d_F%d", i, f)] = withField(ref(name), fmt.Sprintf("field%d", f))
		}
	}
	px := newProxy(b, func(p *proxy) { p.latency = benchLatency })

	for _, mode := range []struct {
		name string
		kind string
	}{{"batched", KindName}, {"unbatched", unbatchedKind}} {
		b.Run(mode.name, func(b *testing.B) {
			refs := make(map[string]providers.Ref, len(base))
			for k, r := range base {
				r.Scheme = "bench"
				refs[k] = r
			}
			opts := Options{Region: testRegion, Endpoint: px.URL}
			px.reset()
			for b.Loop() {
				set := providers.NewSet(providers.Instance{}, []providers.Instance{{
					Name: "bench", Kind: mode.kind,
					Decode: func(into any) error { *(into.(*Options)) = opts; return nil },
				}})
				res, err := set.Resolve(b.Context(), refs)
				if err != nil {
					b.Fatal(err)
				}
				if len(res) != secrets*fields {
					b.Fatalf("%d references resolved", len(res))
				}
				set.Close()
			}
			b.ReportMetric(float64(px.count(""))/float64(b.N), "calls/op")
			b.ReportMetric(float64(px.count("BatchGetSecretValue"))/float64(b.N), "batch-calls/op")
		})
	}
}
