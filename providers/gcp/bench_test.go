package gcp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/gcp"
	"github.com/keyward/keyward/providers/gcp/gcpfake"
)

// BenchmarkResolve renders the shape through a providers.Set and
// the real client, against the fake over loopback: 200 secrets of 5 JSON
// fields each, 1,000 references resolved at once, with 0 and 20 ms of
// latency per call. Secret Manager has no batch read, so the cost is one
// AccessSecretVersion per secret, Set.Concurrency (8) at a time. Reported:
// wall time per resolve and calls per resolve.
func BenchmarkResolve(b *testing.B) {
	const secrets, fields = 200, 5
	e, err := startEnv()
	if err != nil {
		b.Fatal(err)
	}
	defer e.close()
	refs := map[string]providers.Ref{}
	ctx := context.Background()
	for i := range secrets {
		id := fmt.Sprintf("bench-%03d", i)
		if _, err := e.admin.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{
			Parent: "projects/" + testProject, SecretId: id,
			Secret: &secretmanagerpb.Secret{Replication: &secretmanagerpb.Replication{
				Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}},
			}},
		}); err != nil {
			b.Fatal(err)
		}
		obj := map[string]string{}
		for f := range fields {
			obj[fmt.Sprintf("f%d", f)] = fmt.Sprintf("value-%d-%d", i, f)
			r, err := providers.Parse(fmt.Sprintf("gcpsm://%s/%s#f%d", testProject, id, f))
			if err != nil {
				b.Fatal(err)
			}
			refs[fmt.Sprintf("S%03d_F%d", i, f)] = r
		}
		data, _ := json.Marshal(obj)
		crc := gcpfake.Checksum(data)
		if _, err := e.admin.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
			Parent:  "projects/" + testProject + "/secrets/" + id,
			Payload: &secretmanagerpb.SecretPayload{Data: data, DataCrc32C: &crc},
		}); err != nil {
			b.Fatal(err)
		}
	}
	for _, latency := range []time.Duration{0, 20 * time.Millisecond} {
		b.Run(fmt.Sprintf("200x5/latency=%v", latency), func(b *testing.B) {
			e.fake.SetLatency(latency)
			defer e.fake.SetLatency(0)
			decode := func(v any) error {
				*v.(*gcp.Options) = gcp.Options{Endpoint: e.fake.Addr(), Insecure: true}
				return nil
			}
			set := providers.NewSet(providers.Instance{}, []providers.Instance{{Name: "gcpsm", Kind: "gcpsm", Decode: decode}})
			defer set.Close()
			if _, err := set.Resolve(ctx, refs); err != nil { // builds the client
				b.Fatal(err)
			}
			before := e.fake.Calls("AccessSecretVersion")
			for b.Loop() {
				res, err := set.Resolve(ctx, refs)
				if err != nil {
					b.Fatal(err)
				}
				if len(res) != secrets*fields {
					b.Fatalf("%d resolved", len(res))
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(e.fake.Calls("AccessSecretVersion")-before)/float64(b.N), "calls/op")
			b.ReportMetric(float64(len(refs)), "refs/op")
		})
	}
}
