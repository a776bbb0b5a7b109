package kubernetes

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/keyward/keyward/providers"
)

// TestWorkloadTokenPerRequest: a provider acting as a workload sends the
// workload's current token with each request, not the one it had when
// its client was built.
func TestWorkloadTokenPerRequest(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db","namespace":"ns","resourceVersion":"1"},"data":{"k":"dg=="}}`))
	}))
	defer srv.Close()
	token := "first"
	w := &providers.Workload{Namespace: "ns", ServiceAccount: "app", APIServer: srv.URL,
		Token: func(string) (string, error) { mu.Lock(); defer mu.Unlock(); return token, nil }}
	p, err := newForWorkload(Options{}, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ref := providers.Ref{Scheme: KindName, Path: "ns/db"}
	if _, err := p.Fetch(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	token = "second"
	mu.Unlock()
	if _, err := p.Fetch(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 2 || seen[0] != "Bearer first" || seen[len(seen)-1] != "Bearer second" {
		t.Fatalf("the requests did not carry the workload's current token (%d requests)", len(seen))
	}
}
