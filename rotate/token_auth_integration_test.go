//go:build integration

package rotate

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/internal/oauth"
	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers"
)

// introspector is a client_secret_basic client that introspects tokens
// issued to clients that have no secret.
var introspector = testenv.OAuthClient{ID: "introspector", Secret: "introspector-secret-1"}

// writeFile writes b to path atomically (a rotation seen whole by the
// file provider).
func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func pemKey(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func jwks(t testing.TB, pubs ...any) json.RawMessage {
	t.Helper()
	b, err := testenv.JWKS(pubs...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// realTokensWith is realTokens with opts (Providers, Metrics and Logger
// are filled in).
func realTokensWith(t testing.TB, opts TokenOptions) (*Tokens, *TokenMetrics, *logBuffer) {
	t.Helper()
	set := providers.NewSet(providers.Instance{BaseDir: t.TempDir(), Getenv: func(string) string { return "" }}, nil)
	t.Cleanup(func() { set.Close() })
	opts.Providers = set
	opts.Metrics = NewTokenMetrics(prometheus.NewRegistry())
	lb := &logBuffer{}
	opts.Logger = slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tk, err := NewTokens(opts)
	if err != nil {
		t.Fatal(err)
	}
	return tk, opts.Metrics, lb
}

// checkActive has the server introspect name's current token.
func checkActive(t *testing.T, o *testenv.OAuth, tk *Tokens, name string) {
	t.Helper()
	tok, ok := tk.Get(name)
	if !ok {
		t.Fatalf("token %s: none served", name)
	}
	active, err := o.Active(context.Background(), introspector, tok.AccessToken.Reveal())
	if err != nil || !active {
		t.Fatalf("token %s: introspection active=%v err=%v", name, active, err)
	}
}

// TestRealPrivateKeyJWT authenticates with client assertions (RFC 7523)
// signed by each kind of key, with the algorithm chosen by default or
// configured, and a kid: oidc-provider verifies the signature against the
// registered JWKS, the aud, iss, exp, and the jti's uniqueness (its replay
// detection refuses an assertion used twice, so three exchanges in a row
// show that each has a fresh one).
func TestRealPrivateKeyJWT(t *testing.T) {
	o := realOAuth(t)
	registerClient(t, o, introspector)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name      string
		key       crypto.Signer
		alg, kid  string
		serverAlg string // the alg the client is registered with, "" for any
	}{
		{"rsa-default", rsaKey, "", "", "RS256"},
		{"rsa-ps256", rsaKey, "PS256", "k-rsa", "PS256"},
		{"ec-default", ecKey, "", "k-ec", "ES256"},
		{"ec-p384", p384, "", "", "ES384"},
		{"ed25519", edKey, "", "", "EdDSA"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := "jwt-" + c.name
			registerClient(t, o, testenv.OAuthClient{ID: id, Auth: "private_key_jwt", SigningAlg: c.serverAlg,
				JWKS: jwks(t, jose.JSONWebKey{Key: c.key.Public(), KeyID: c.kid})})
			dir := t.TempDir()
			keyFile := filepath.Join(dir, "client.key")
			writeFile(t, keyFile, pemKey(t, c.key))
			writeFile(t, filepath.Join(dir, "id"), []byte(id))
			learnt := map[string]int{}
			tk, _, logs := realTokensWith(t, TokenOptions{
				Tokens: []TokenSpec{{Name: id, TokenURL: o.TokenURL, Auth: oauth.PrivateKeyJWT,
					ClientID: mustParse(t, "file://"+dir+"/id"), PrivateKey: mustParse(t, "file://"+keyFile),
					SigningAlg: c.alg, KeyID: c.kid, Resource: "urn:kw:opaque:30"}},
				OnCredential: func(_, what string, _ providers.Value) { learnt[what]++ },
			})
			if err := tk.Init(context.Background()); err != nil {
				t.Fatal(err)
			}
			checkActive(t, o, tk, id)
			for range 2 {
				time.Sleep(DefaultRefreshWindow) // past the forced-refresh rate limit
				if _, err := tk.Refresh(context.Background(), id); err != nil {
					t.Fatalf("a second assertion was refused: %v", err)
				}
			}
			checkActive(t, o, tk, id)
			if learnt["private_key"] != 3 || learnt["client_assertion"] != 3 {
				t.Errorf("the masker learnt %v, want the private key and the assertion at each of 3 exchanges", learnt)
			}
			if strings.Contains(logs.String(), "PRIVATE KEY") || strings.Contains(logs.String(), "eyJ") {
				t.Error("leaked value of the private key or an assertion into the log")
			}
		})
	}
}

// TestRealPrivateKeyRotation: the server is given a new key; keyward gets
// invalid_client (and fetches the key once more before failing), serves
// the last good token meanwhile, and once the store holds the new key, the
// next exchange uses it without a restart.
func TestRealPrivateKeyRotation(t *testing.T) {
	o := realOAuth(t)
	old, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	next, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	const id = "jwt-rotating"
	registerClient(t, o, testenv.OAuthClient{ID: id, Auth: "private_key_jwt", JWKS: jwks(t, old.Public())})
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "client.key")
	writeFile(t, keyFile, pemKey(t, old))
	tk, m, _ := realTokensWith(t, TokenOptions{Tokens: []TokenSpec{{Name: id, TokenURL: o.TokenURL, Auth: oauth.PrivateKeyJWT,
		ClientID: mustParse(t, "file://"+writeID(t, dir, id)), PrivateKey: mustParse(t, "file://"+keyFile), Resource: "urn:kw:opaque:6"}}})
	if err := tk.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	runTokens(t, tk)
	registerClient(t, o, testenv.OAuthClient{ID: id, Auth: "private_key_jwt", JWKS: jwks(t, next.Public())})
	waitFor(t, 10*time.Second, "an invalid_client result", func() bool { return refreshCount(m, id, "invalid_client") >= 2 })
	if _, ok := tk.Get(id); !ok {
		t.Fatal("the last good token is not served during the failure")
	}
	writeFile(t, keyFile, pemKey(t, next))
	okBefore := refreshCount(m, id, "ok")
	waitFor(t, 10*time.Second, "an exchange with the rotated key", func() bool { return refreshCount(m, id, "ok") > okBefore })
}

func writeID(t testing.TB, dir, id string) string {
	t.Helper()
	p := filepath.Join(dir, "id")
	writeFile(t, p, []byte(id))
	return p
}

// TestRealTLSClientAuth authenticates with a client certificate (RFC 8705)
// at oidc-provider's HTTPS listener: tls_client_auth with a certificate the
// server's CA issued for the registered DNS name, self_signed_tls_client_auth
// with a registered self-signed one; a certificate for another name is
// refused with a clear error; a rotated certificate is used at the next
// exchange (no connection with the old one is reused).
func TestRealTLSClientAuth(t *testing.T) {
	o := realOAuth(t)
	registerClient(t, o, introspector)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: o.CA.TLSConfig()}, Timeout: DefaultExchangeTimeout}
	dir := t.TempDir()
	setup := func(t *testing.T, id, auth string, cert, key []byte) (TokenSpec, string, string) {
		certFile, keyFile := filepath.Join(dir, id+".crt"), filepath.Join(dir, id+".key")
		writeFile(t, certFile, cert)
		writeFile(t, keyFile, key)
		return TokenSpec{Name: id, TokenURL: o.TLSTokenURL, Auth: auth, ClientID: mustParse(t, "file://"+writeID(t, t.TempDir(), id)),
			Certificate: mustParse(t, "file://"+certFile), PrivateKey: mustParse(t, "file://"+keyFile), Resource: "urn:kw:opaque:30"}, certFile, keyFile
	}

	t.Run("tls_client_auth", func(t *testing.T) {
		const id = "mtls-ca"
		registerClient(t, o, testenv.OAuthClient{ID: id, Auth: "tls_client_auth", SANDNS: "client.keyward.test"})
		cert, key, err := o.CA.Issue("client.keyward.test", false)
		if err != nil {
			t.Fatal(err)
		}
		spec, certFile, keyFile := setup(t, id, oauth.TLSClientAuth, cert, key)
		tk, _, _ := realTokensWith(t, TokenOptions{Tokens: []TokenSpec{spec}, HTTPClient: hc})
		if err := tk.Init(context.Background()); err != nil {
			t.Fatal(err)
		}
		checkActive(t, o, tk, id)
		// Rotated: a new key and certificate for the same name.
		cert2, key2, _ := o.CA.Issue("client.keyward.test", false)
		writeFile(t, certFile, cert2)
		writeFile(t, keyFile, key2)
		time.Sleep(DefaultRefreshWindow)
		if _, err := tk.Refresh(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		// Another name: refused, however fresh the connection.
		cert3, key3, _ := o.CA.Issue("other.keyward.test", false)
		writeFile(t, certFile, cert3)
		writeFile(t, keyFile, key3)
		time.Sleep(DefaultRefreshWindow)
		_, err = tk.Refresh(context.Background(), id)
		if err == nil || !strings.Contains(err.Error(), "token "+id+": exchange: status 401: invalid_client") {
			t.Fatalf("a certificate for another name: err %v, want invalid_client naming the token", err)
		}
	})

	t.Run("self_signed_tls_client_auth", func(t *testing.T) {
		const id = "mtls-self"
		cert, key, set, err := testenv.SelfSigned("keyward-client")
		if err != nil {
			t.Fatal(err)
		}
		registerClient(t, o, testenv.OAuthClient{ID: id, Auth: "self_signed_tls_client_auth", JWKS: set})
		spec, _, _ := setup(t, id, oauth.SelfSignedTLSClientAuth, cert, key)
		tk, _, _ := realTokensWith(t, TokenOptions{Tokens: []TokenSpec{spec}, HTTPClient: hc})
		if err := tk.Init(context.Background()); err != nil {
			t.Fatal(err)
		}
		checkActive(t, o, tk, id)
	})

	t.Run("key does not match", func(t *testing.T) {
		cert, _, _ := o.CA.Issue("client.keyward.test", false)
		_, key, _ := o.CA.Issue("client.keyward.test", false)
		spec, _, _ := setup(t, "mtls-mismatch", oauth.TLSClientAuth, cert, key)
		tk, _, _ := realTokensWith(t, TokenOptions{Tokens: []TokenSpec{spec}, HTTPClient: hc})
		err := tk.Init(context.Background())
		if err == nil || err.Error() != "token mtls-mismatch: read certificate: the private key does not belong to the certificate" {
			t.Fatalf("err %v", err)
		}
	})
}
