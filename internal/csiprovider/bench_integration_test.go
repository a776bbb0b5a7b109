//go:build integration

package csiprovider

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/keyward/keyward/providers"
)

// BenchmarkNodeMounts: benchPods pods of one ServiceAccount on a node
// mount the same two Secrets at once, through keyward csi-provider (one
// read per Secret for the node, plus a TokenReview per new pod token) or
// with one keyward sidecar per pod (each pod reads each Secret). It
// reports the Kubernetes API requests per round.
func BenchmarkNodeMounts(b *testing.B) {
	const ns, benchPods = "csi-bench", 50
	setupBench(b, ns)
	cfg := "version: 1\nsecrets:\n  A: k8s://" + ns + "/db#password\n  B: k8s://" + ns + "/api#key\nfiles:\n  - path: app.env\n    secrets: [A, B]\n"
	tokens := make([]string, benchPods)
	for i := range tokens {
		tokens[i] = podTokens(b, ns, "app")
	}
	b.Run("csi-provider", func(b *testing.B) {
		var reads, reviews atomic.Int64
		reviewer, err := TokenReviewer(cluster.API.URL, cluster.CAData, func() (string, error) { return cluster.AdminToken, nil })
		if err != nil {
			b.Fatal(err)
		}
		counted := func(ctx context.Context, token, aud string) (string, error) {
			reviews.Add(1)
			return reviewer(ctx, token, aud)
		}
		c := serve(b, Options{APIServer: cluster.API.URL, APIServerCA: cluster.CAData, Reviewer: counted, CacheTTL: -1,
			ObserveCalls: func(providers.Call) { reads.Add(1) }})
		b.ResetTimer()
		for range b.N {
			var wg sync.WaitGroup
			for i := range benchPods {
				wg.Go(func() {
					attrs := attributes(b, cfg, map[string]string{PodNameKey: fmt.Sprintf("app-%d", i), PodNamespaceKey: ns, ServiceAccountKey: "app", ServiceAccountTokens: tokens[i]})
					if _, err := c.Mount(context.Background(), &v1alpha1.MountRequest{Attributes: attrs}); err != nil {
						b.Error(err)
					}
				})
			}
			wg.Wait()
		}
		b.ReportMetric(float64(reads.Load())/float64(b.N), "secret-reads/round")
		b.ReportMetric(float64(reviews.Load())/float64(b.N), "token-reviews/round")
	})
	b.Run("sidecar-per-pod", func(b *testing.B) {
		var reads atomic.Int64
		b.ResetTimer()
		for range b.N {
			var wg sync.WaitGroup
			for i := range benchPods {
				wg.Go(func() {
					r, err := parseRequest(attributes(b, cfg, map[string]string{PodNamespaceKey: ns, ServiceAccountKey: "app", ServiceAccountTokens: tokens[i]}), "")
					if err != nil {
						b.Error(err)
						return
					}
					srv := New(Options{APIServer: cluster.API.URL, APIServerCA: cluster.CAData})
					set := srv.newSet(r.cfg, srv.workload(r.pod, nil))
					defer set.Close()
					set.ObserveCalls(func(providers.Call) { reads.Add(1) })
					refs := map[string]providers.Ref{}
					for n, s := range r.cfg.Secrets {
						refs[n] = s.Ref
					}
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					if _, err := set.Resolve(ctx, refs); err != nil {
						b.Error(err)
					}
				})
			}
			wg.Wait()
		}
		b.ReportMetric(float64(reads.Load())/float64(b.N), "secret-reads/round")
	})
}

// setupBench creates the benchmark's namespace, ServiceAccount, Secrets
// and the Role that lets the ServiceAccount read them.
func setupBench(b *testing.B, ns string) {
	apply(b,
		`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"`+ns+`"}}`,
		`{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"app","namespace":"`+ns+`"}}`,
		`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db","namespace":"`+ns+`"},"stringData":{"password":"bench-db"}}`,
		`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"api","namespace":"`+ns+`"},"stringData":{"key":"bench-api"}}`,
		`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"app","namespace":"`+ns+`"},
		  "rules":[{"apiGroups":[""],"resources":["secrets"],"resourceNames":["db","api"],"verbs":["get"]}]}`,
		`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"app","namespace":"`+ns+`"},
		  "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"app"},
		  "subjects":[{"kind":"ServiceAccount","name":"app","namespace":"`+ns+`"}]}`,
	)
}
