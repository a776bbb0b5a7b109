//go:build integration

package kubernetes

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/keyward/keyward/providers"
)

// TestIntegrationWrite updates one key of a Secret on the real API server
// with a resourceVersion precondition: the other keys are kept, a stale
// version is a conflict that writes nothing, a retried write is
// idempotent, of two concurrent writers from one version exactly one wins,
// and a user without "update" is denied.
func TestIntegrationWrite(t *testing.T) {
	t.Parallel()
	putSecret(t, "watch", "oauth-rt", map[string][]byte{"refresh_token": []byte("rt-secret-0"), "client_id": []byte("app")})
	p := integrationProvider(t, cluster.API.URL, cluster.AdminToken, Options{})
	ref := providers.Ref{Scheme: KindName, Path: "watch/oauth-rt", Field: "refresh_token"}
	sec, err := p.Fetch(t.Context(), ref.Whole())
	if err != nil {
		t.Fatal(err)
	}
	v1, err := p.Write(t.Context(), ref, []byte("rt-secret-1"), sec.Version)
	if err != nil {
		t.Fatal(err)
	}
	now, err := p.Fetch(t.Context(), ref.Whole())
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := now.Field("refresh_token"); got.Reveal() != "rt-secret-1" || now.Version != v1 {
		t.Fatalf("after the write: version %s, Write said %s", now.Version, v1)
	}
	if id, _ := now.Field("client_id"); id.Reveal() != "app" {
		t.Fatal("another key of the Secret was lost")
	}
	if v, err := p.Write(t.Context(), ref, []byte("rt-secret-1"), sec.Version); err != nil || v != v1 {
		t.Fatalf("retried write: %q %v, want %q", v, err, v1)
	}
	if _, err := p.Write(t.Context(), ref, []byte("rt-secret-x"), sec.Version); !errors.Is(err, providers.ErrConflict) {
		t.Fatalf("stale version: %v, want a conflict", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { _, errs[i] = p.Write(t.Context(), ref, fmt.Appendf(nil, "rt-secret-w%d", i), v1) })
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) || !errors.Is(errors.Join(errs...), providers.ErrConflict) {
		t.Fatalf("concurrent writers: %v, %v; want one success and one conflict", errs[0], errs[1])
	}
	reader := integrationProvider(t, cluster.API.URL, cluster.Tokens["reader"], Options{})
	cur, err := reader.Fetch(t.Context(), ref.Whole())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Write(t.Context(), ref, []byte("rt-secret-r"), cur.Version); !errors.Is(err, providers.ErrPermissionDenied) {
		t.Fatalf("reader: %v, want permission denied", err)
	}
	if _, err := p.Write(t.Context(), ref.Whole(), []byte("x"), cur.Version); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("no key: %v", err)
	}
}
