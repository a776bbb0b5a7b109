package rotate

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/providers"
)

// retryingKind is a provider kind whose Fetch fails twice (reporting each
// failure as retried, as the real providers do) before it succeeds.
const retryingKind = "rotate-test-retrying"

func init() {
	providers.Register(providers.Kind{
		Name: retryingKind,
		New: func(in providers.Instance) (providers.Provider, error) {
			return retryingProvider{providers.NewRetries(in)}, nil
		},
	})
}

type retryingProvider struct{ r *providers.Retries }

func (p retryingProvider) Fetch(_ context.Context, ref providers.Ref) (providers.Secret, error) {
	att := p.r.Call("fetch", ref.Path)
	att.Failed(errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), time.Millisecond)
	att.Failed(errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), time.Millisecond)
	return providers.Secret{Value: providers.StringValue("sv-value")}, nil
}

func (retryingProvider) Close() error { return nil }

// TestRetriesCounted: the failed attempts a provider of the set retries
// are counted in keyward_errors_total{stage="retry"} although the look at
// the secret succeeded in the end, so a short outage shows in the metrics.
func TestRetriesCounted(t *testing.T) {
	t.Parallel()
	set := providers.NewSet(providers.Instance{}, []providers.Instance{{Name: "r", Kind: retryingKind}})
	defer set.Close()
	reg := prometheus.NewRegistry()
	eng, err := New(Options{
		Providers: set,
		Secrets:   map[string]providers.Ref{"A": {Scheme: "r", Path: "a"}},
		Metrics:   NewMetrics(reg),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, reg: reg}
	if got := r.metric("keyward_errors_total", "stage", "retry"); got != 2 {
		t.Errorf("keyward_errors_total{stage=retry} = %v, want 2", got)
	}
	if got := r.metric("keyward_errors_total", "stage", "fetch"); got != 0 {
		t.Errorf("keyward_errors_total{stage=fetch} = %v, want 0: the look succeeded", got)
	}
}
