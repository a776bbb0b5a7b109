//go:build integration

package vault

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/keyward/keyward/providers"
)

// TestCredentialReal hands out keyward's own Vault token (an AppRole
// login's) against the real Vault: Vault knows it, its Lease is the
// token's TTL, and a request with fields is refused. Not parallel:
// TestAppRole revokes every AppRole token.
func TestCredentialReal(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "secret-id"), testSecretID+"\n")
	p := newReal(t, vaultSrv.Addr, Options{Auth: AuthOptions{
		Method: MethodAppRole, RoleID: testRoleID, SecretIDFile: filepath.Join(dir, "secret-id"),
	}}, nil)
	sec, err := p.Credential(t.Context(), providers.CredentialRequest{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := api.NewClient(&api.Config{Address: vaultSrv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(sec.Value.Reveal())
	self, err := c.Auth().Token().LookupSelfWithContext(t.Context())
	if err != nil {
		t.Fatalf("Vault does not know the token handed out: %v", err)
	}
	ttl, _ := self.TokenTTL()
	if sec.Lease == nil || ttl <= 0 || sec.Lease.Duration < ttl-time.Minute || sec.Lease.Duration > ttl+time.Minute {
		t.Fatalf("lease %+v, token TTL %v", sec.Lease, ttl)
	}
	if _, err := p.Credential(t.Context(), providers.CredentialRequest{Audience: "x"}); !errors.Is(err, providers.ErrInvalidReference) {
		t.Fatalf("a request with an audience: %v", err)
	}
}
