//go:build integration

package vault

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/providers"
)

// TestWriteReal writes a field of a KV v2 secret with check-and-set
// against the real Vault: the other fields are kept, a stale version is a
// conflict that writes nothing, a retried write is idempotent, of two
// concurrent writers from one version exactly one wins, and what has no
// check-and-set is refused.
func TestWriteReal(t *testing.T) {
	t.Parallel()
	name := fmt.Sprintf("write/rt-%d", time.Now().UnixNano())
	kv2Put(t, name, map[string]any{"refresh_token": "rt-secret-0", "client_id": "app"})
	p := newReal(t, vaultSrv.Addr, Options{}, map[string]string{envToken: admin.Token()})
	ref := mustParse(t, "vault://secret/"+name+"#refresh_token")
	_, sec := mustFetchField(t, p, ref.Whole().String(), "refresh_token")

	v1, err := p.Write(t.Context(), ref, []byte("rt-secret-1"), sec.Version)
	if err != nil {
		t.Fatal(err)
	}
	got, now := mustFetchField(t, p, ref.Whole().String(), "refresh_token")
	if got != "rt-secret-1" || now.Version != v1 || now.Data["client_id"] != "app" {
		t.Fatalf("after the write: version %s (Write said %s), client_id kept: %v", now.Version, v1, now.Data["client_id"] == "app")
	}
	if v, err := p.Write(t.Context(), ref, []byte("rt-secret-1"), sec.Version); err != nil || v != v1 {
		t.Fatalf("retried write: %q %v, want %q", v, err, v1)
	}
	if _, err := p.Write(t.Context(), ref, []byte("rt-secret-x"), sec.Version); !errors.Is(err, providers.ErrConflict) {
		t.Fatalf("stale version: %v, want a conflict", err)
	}
	if got, _ := mustFetchField(t, p, ref.Whole().String(), "refresh_token"); got != "rt-secret-1" {
		t.Fatal("a refused write changed the secret")
	}

	// Two writers from one version: Vault's check-and-set lets one win.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { _, errs[i] = p.Write(t.Context(), ref, fmt.Appendf(nil, "rt-secret-w%d", i), v1) })
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) || !errors.Is(errors.Join(errs...), providers.ErrConflict) {
		t.Fatalf("concurrent writers: %v, %v; want one success and one conflict", errs[0], errs[1])
	}

	if _, err := admin.Logical().Write("kv1/write-rt", map[string]any{"refresh_token": "x"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"vault://kv1/write-rt#refresh_token", "vault://secret/" + name, "vault://secret/" + name + "?version=1#refresh_token"} {
		if _, err := p.Write(t.Context(), mustParse(t, r), []byte("rt-secret-y"), "1"); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s: %v, want unsupported", r, err)
		}
	}
}
