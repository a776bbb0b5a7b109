//go:build integration

package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/testenv"
)

// TestTokensPrivateCA: a token endpoint and key set served over HTTPS by a
// certificate of a private CA (oidc-provider's TLS listener). With
// tls.ca_cert naming that CA (relative to the config), keyward obtains the
// token and verifies it against the key set over the same TLS; without it
// (the system's roots) or with another CA the exchange is refused as an
// unknown authority; a CA file that is no CA bundle is a configuration
// error naming the file, with no byte of it.
func TestTokensPrivateCA(t *testing.T) {
	t.Parallel()
	o := realOAuth(t)
	other, err := testenv.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	_, keyPEM, err := other.Issue("127.0.0.1", true)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	testenv.WriteFile(t, filepath.Join(dir, "creds.yaml"), "id: kw-app\nsecret: "+oauthSecret+"\n")
	testenv.WriteFile(t, filepath.Join(dir, "ca", "private.pem"), string(o.CA.PEM))
	testenv.WriteFile(t, filepath.Join(dir, "ca", "other.pem"), string(other.PEM))
	testenv.WriteFile(t, filepath.Join(dir, "ca", "key.pem"), string(keyPEM))
	jwks := strings.TrimSuffix(o.TLSTokenURL, "/token") + "/jwks"
	config := func(tls string) {
		testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), fmt.Sprintf(`version: 1
tokens:
  api:
    token_url: %s
    client_id: file:creds.yaml#id
    client_secret: file:creds.yaml#secret
    resource: "urn:kw:jwt:30"
    verify: {jwks_url: %s, issuer: %s, audience: "urn:kw:jwt:30"}
    file: out/api
%s`, o.TLSTokenURL, jwks, o.URL, tls))
	}

	config("    tls: {ca_cert: ca/private.pem}\n")
	r := keyward(t, dir, nil, "render", "--once", "-c", "keyward.yaml")
	if r.code != 0 {
		t.Fatalf("through the private CA: exit %d %s", r.code, r.stderr)
	}
	tok := testenv.ReadFile(t, filepath.Join(dir, "out", "api"))
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("the token file holds no JWT (%d bytes)", len(tok))
	}
	checkNoSecret(t, r.stderr+r.stdout, tok)

	for _, c := range []struct{ name, tls string }{{"system roots", ""}, {"another CA", "    tls: {ca_cert: ca/other.pem}\n"}} {
		config(c.tls)
		r = keyward(t, dir, nil, "render", "--once", "-c", "keyward.yaml")
		if r.code != 1 || !strings.Contains(r.stderr, "token api: exchange:") || !strings.Contains(r.stderr, "certificate signed by unknown authority") {
			t.Errorf("%s: exit %d %s, want the server's certificate refused", c.name, r.code, r.stderr)
		}
	}

	config("    tls: {ca_cert: ca/key.pem}\n")
	r = keyward(t, dir, nil, "render", "--once", "-c", "keyward.yaml")
	want := "token api: tls: ca_cert " + filepath.Join(dir, "ca", "key.pem") + ": PEM block 1 is a PRIVATE KEY, not a CERTIFICATE"
	if r.code != 78 || !strings.Contains(r.stderr, want) {
		t.Errorf("a key as CA file: exit %d %s, want 78 and %q", r.code, r.stderr, want)
	}
	if strings.Contains(r.stderr, strings.Split(string(keyPEM), "\n")[1]) {
		t.Error("leaked value of the key file in the error")
	}
}
