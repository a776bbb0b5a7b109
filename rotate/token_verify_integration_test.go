//go:build integration

package rotate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/oauth"
)

// TestRealVerify checks oidc-provider's JWT access tokens against its own
// key set (/jwks) before serving them: the right issuer and audience pass
// (and exp bounds the token), a wrong audience or issuer fails Init at once
// with an error naming the check, and an opaque token is no JWT.
func TestRealVerify(t *testing.T) {
	o := realOAuth(t)
	cases := []struct {
		name, resource string
		verify         VerifySpec
		want           string
	}{
		{"good", "urn:kw:jwt:30", VerifySpec{Issuer: o.URL, Audience: "urn:kw:jwt:30"}, ""},
		{"wrong audience", "urn:kw:jwt:30", VerifySpec{Issuer: o.URL, Audience: "https://api.example"},
			`verify: the access token does not verify: aud ["urn:kw:jwt:30"] does not include "https://api.example"`},
		{"wrong issuer", "urn:kw:jwt:30", VerifySpec{Issuer: "https://issuer.example"},
			`verify: the access token does not verify: iss is "` + o.URL + `", not "https://issuer.example"`},
		{"opaque", "urn:kw:opaque:30", VerifySpec{Audience: "urn:kw:opaque:30"}, "verify: the access token does not verify: it is no signed JWT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := "verify-" + strings.ReplaceAll(c.name, " ", "-")
			spec, _ := realSetup(t, o, id, id+"-secret-1", c.resource)
			c.verify.JWKSURL = o.URL + "/jwks"
			spec.Verify = &c.verify
			tk, m, logs := realTokens(t, spec)
			start := time.Now()
			err := tk.Init(context.Background())
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				tok, ok := tk.Get(id)
				if !ok || tok.ExpiresAt.After(start.Add(31*time.Second)) {
					t.Fatalf("served %v, expires %v", ok, tok.ExpiresAt)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "token "+id+": "+c.want) || !errors.Is(err, oauth.ErrNotVerified) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if _, ok := tk.Get(id); ok {
				t.Fatal("a token that does not verify is served")
			}
			if refreshCount(m, id, "not_verified") != 1 || refreshCount(m, id, "ok") != 0 {
				t.Fatal("not counted once as not_verified")
			}
			if strings.Contains(logs.String(), "eyJ") {
				t.Fatal("leaked value of a token into the log")
			}
		})
	}
}
