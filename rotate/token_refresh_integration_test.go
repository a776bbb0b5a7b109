//go:build integration

package rotate

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/oauth"
	"github.com/keyward/keyward/internal/testenv"
)

// TestRealRefreshRotation runs the refresh_token grant against
// oidc-provider with refresh-token rotation, from a first refresh token
// obtained by a real authorization-code flow: every rotated refresh token
// is written back to the file it came from before its access token is
// served (a second Tokens started from the file, as after a restart,
// works), the access tokens are active, and a refresh token the server
// refuses turns Ready red and is not sent again.
func TestRealRefreshRotation(t *testing.T) {
	o := realOAuth(t)
	registerClient(t, o, introspector)
	for _, c := range []struct {
		name   string
		client testenv.OAuthClient
		auth   string
	}{
		{"confidential", testenv.CodeClient("code-confidential", "code-secret-1"), oauth.ClientSecretBasic},
		{"public", testenv.CodeClient("code-public", ""), oauth.None},
	} {
		t.Run(c.name, func(t *testing.T) {
			registerClient(t, o, c.client)
			first, _, err := o.AuthorizationCode(t.Context(), c.client, "read", "urn:kw:opaque:4")
			if err != nil {
				t.Fatalf("authorization-code flow: %v\n%s", err, o.LogTail())
			}
			dir := t.TempDir()
			rtFile := filepath.Join(dir, "refresh_token")
			writeFile(t, rtFile, []byte(first))
			writeCreds(t, filepath.Join(dir, "creds.json"), c.client.ID, c.client.Secret)
			spec := TokenSpec{Name: c.name, TokenURL: o.TokenURL, Grant: oauth.GrantRefreshToken, Auth: c.auth,
				RefreshToken: mustParse(t, "file://"+rtFile),
				ClientID:     mustParse(t, "file://"+dir+"/creds.json#id"),
				Resource:     "urn:kw:opaque:4", RefreshBefore: time.Minute}
			if c.auth != oauth.None {
				spec.ClientSecret = mustParse(t, "file://"+dir+"/creds.json#secret")
			}
			tk, m, logs := realTokens(t, spec)
			if err := tk.Init(t.Context()); err != nil {
				t.Fatal(err)
			}
			stop := runTokens(t, tk)
			seen := map[string]bool{first: true}
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				b, err := os.ReadFile(rtFile)
				if err != nil {
					t.Fatal(err)
				}
				seen[string(b)] = true
				time.Sleep(100 * time.Millisecond)
			}
			stop()
			ok := refreshCount(m, c.name, "ok")
			if ok < 3 || len(seen) < 3 {
				t.Fatalf("%v exchanges, %d refresh tokens seen in the file over 10 s of 4 s tokens", ok, len(seen))
			}
			checkActive(t, o, tk, c.name)
			for v := range seen {
				if strings.Contains(logs.String(), v) {
					t.Fatal("leaked value of a refresh token into the log")
				}
			}

			// As after a restart: the file's refresh token is the valid one.
			again, _, _ := realTokens(t, spec)
			if err := again.Init(t.Context()); err != nil {
				t.Fatalf("a new keyward cannot use the stored refresh token: %v", err)
			}
			// Someone uses the replaced refresh token: oidc-provider
			// revokes the whole grant. keyward's next exchange is refused.
			if err := reuse(t.Context(), o, c.client, first); err == nil {
				t.Fatal("the server accepted a consumed refresh token")
			}
			time.Sleep(DefaultRefreshWindow)
			_, err = again.Refresh(t.Context(), c.name)
			if !errors.Is(err, ErrRefreshTokenRefused) || !strings.Contains(err.Error(), "store a new one at file://"+rtFile) {
				t.Fatalf("after the grant was revoked: %v", err)
			}
			if err := again.Ready(); err == nil || !strings.Contains(err.Error(), "refresh token refused") {
				t.Fatalf("Ready() = %v", err)
			}
		})
	}
}

// reuse sends refresh token rt as client c; it returns the server's refusal.
func reuse(ctx context.Context, o *testenv.OAuth, c testenv.OAuthClient, rt string) error {
	req := oauth.Request{TokenURL: o.TokenURL, Grant: oauth.GrantRefreshToken, RefreshToken: rt,
		Client: oauth.Client{ID: c.ID, Secret: c.Secret, Method: oauth.ClientSecretBasic}, Params: url.Values{"resource": {"urn:kw:opaque:4"}}}
	if c.Secret == "" {
		req.Client.Method = oauth.None
	}
	_, err := oauth.Exchange(ctx, http.DefaultClient, req)
	return err
}
