package vault

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/providertest"
)

// TestErrorsScrubCredentials: a Vault (or a proxy in front of it) whose
// refusal echoes the AppRole secret_id of a login, or the token of a
// read, raw, base64'd, percent-encoded or cut short, leaves it in no form
// in the error.
func TestErrorsScrubCredentials(t *testing.T) {
	secretID, token := providertest.Credential(t), providertest.Credential(t)
	file := filepath.Join(t.TempDir(), "secret-id")
	if err := os.WriteFile(file, []byte(secretID), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		auth AuthOptions
		env  map[string]string
		sent string
	}{
		"approle login": {auth: AuthOptions{Method: MethodAppRole, RoleID: "kw-role", SecretIDFile: file}, sent: secretID},
		"token read":    {env: map[string]string{envToken: token}, sent: token},
	}
	for name, c := range cases {
		for form, echo := range providertest.Echoes(c.sent) {
			for _, status := range []int{http.StatusBadRequest, http.StatusForbidden, http.StatusInternalServerError} {
				f := &fakeAPI{handle: func(request) (*api.Secret, error) {
					return nil, vaultErr(status, "credential "+echo+" refused")
				}}
				p, _, _ := fakeProvider(t, f, c.auth, c.env)
				_, err := p.Fetch(t.Context(), mustParse(t, "vault://secret/app"))
				if err == nil {
					t.Fatalf("%s, echo %s, %d: no error", name, form, status)
				}
				if status == http.StatusForbidden && !errors.Is(err, providers.ErrPermissionDenied) {
					// The error may hold the echo: say its length, not its text.
					t.Errorf("%s, echo %s, %d: an error of %d bytes that is not permission denied", name, form, status, len(err.Error()))
				}
				t.Run(name+" "+form+" "+http.StatusText(status), func(t *testing.T) {
					providertest.AssertErrorRedacted(t, err, []byte(secretID), []byte(token))
				})
			}
		}
	}
}
