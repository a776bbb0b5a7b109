package gcp

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/providertest"
)

// googleTokenEndpoint is a stand-in for Google's OAuth2 token endpoint
// (oauth2.googleapis.com/token), serving the JWT-bearer grant (RFC 7523
// §2.1) that service-account credentials use: no independent
// implementation of it can be run here, so this one checks what the real
// one checks (the assertion's signature with the service account's key,
// its iss, aud and expiry) and answers as it does, with an access token
// for the scope claim or a signed ID token for target_audience.
type googleTokenEndpoint struct {
	t        *testing.T
	key      *rsa.PrivateKey
	email    string
	url      string
	requests atomic.Int32
}

func (g *googleTokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := g.requests.Add(1)
	fail := func(status int, code, desc string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
	}
	if r.FormValue("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		fail(400, "unsupported_grant_type", r.FormValue("grant_type"))
		return
	}
	tok, err := jwt.ParseSigned(r.FormValue("assertion"), []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		fail(400, "invalid_grant", "not a JWT")
		return
	}
	var c jwt.Claims
	var extra struct {
		Scope          string `json:"scope"`
		TargetAudience string `json:"target_audience"`
	}
	if err := tok.Claims(&g.key.PublicKey, &c, &extra); err != nil {
		fail(400, "invalid_grant", "Invalid JWT Signature.")
		return
	}
	if err := c.Validate(jwt.Expected{Issuer: g.email, AnyAudience: jwt.Audience{g.url}, Time: time.Now()}); err != nil {
		fail(400, "invalid_grant", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case extra.TargetAudience != "":
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: g.key}, (&jose.SignerOptions{}).WithType("JWT"))
		id, _ := jwt.Signed(signer).Claims(jwt.Claims{Issuer: "https://accounts.google.com", Subject: "1234", Audience: jwt.Audience{extra.TargetAudience},
			IssuedAt: jwt.NewNumericDate(time.Now()), Expiry: jwt.NewNumericDate(time.Now().Add(time.Hour))}).Serialize()
		_ = json.NewEncoder(w).Encode(map[string]string{"id_token": id})
	case extra.Scope != "":
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("ya29.test-%d-%s", n, extra.Scope), "expires_in": 3599, "token_type": "Bearer"})
	default:
		fail(400, "invalid_scope", "no scope")
	}
}

// TestCredentialADC obtains an access token for scopes and an ID token for
// an audience from a service-account key found through
// GOOGLE_APPLICATION_CREDENTIALS, each by one JWT-bearer exchange at the
// key's token_uri. Not parallel: it sets the environment.
func TestCredentialADC(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	g := &googleTokenEndpoint{t: t, key: key, email: "keyward@test-project.iam.gserviceaccount.com"}
	srv := httptest.NewServer(g)
	defer srv.Close()
	g.url = srv.URL + "/token"
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	sa, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "test-project", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": g.email, "client_id": "1234", "token_uri": g.url,
	})
	file := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(file, sa, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", file)
	p, err := New(Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}

	sec, err := p.Credential(t.Context(), providers.CredentialRequest{Scopes: []string{"https://www.googleapis.com/auth/pubsub"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := sec.Value.Reveal(); got != "ya29.test-1-https://www.googleapis.com/auth/pubsub" {
		t.Fatalf("access token %q", got)
	}
	if sec.Lease == nil || sec.Lease.Duration < 58*time.Minute || sec.Lease.Duration > time.Hour {
		t.Fatalf("lease %+v", sec.Lease)
	}
	// Each call exchanges afresh (keyward's loop decides when).
	if sec, err = p.Credential(t.Context(), providers.CredentialRequest{}); err != nil || sec.Value.Reveal() != "ya29.test-2-"+defaultScope {
		t.Fatalf("second access token: %v", err)
	}

	sec, err = p.Credential(t.Context(), providers.CredentialRequest{Audience: "https://api.example.run.app"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := jwt.ParseSigned(sec.Value.Reveal(), []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	var c jwt.Claims
	if err := id.Claims(&key.PublicKey, &c); err != nil || len(c.Audience) != 1 || c.Audience[0] != "https://api.example.run.app" {
		t.Fatalf("ID token claims %+v, %v", c, err)
	}
	if sec.Lease == nil || sec.Lease.Expires().Sub(c.Expiry.Time()).Abs() > 2*time.Second {
		t.Fatalf("lease %+v, exp %v", sec.Lease, c.Expiry.Time())
	}

	if _, err := p.Credential(t.Context(), providers.CredentialRequest{Audience: "a", Scopes: []string{"b"}}); !errors.Is(err, providers.ErrInvalidReference) {
		t.Fatalf("audience and scopes: %v", err)
	}
	if n := g.requests.Load(); n != 3 {
		t.Fatalf("%d token requests, want 3", n)
	}
}

// TestCredentialTokenRefusalNotEchoed: a token endpoint whose refusal
// quotes the request it got (the signed JWT-bearer assertion, which can be
// exchanged for tokens until it expires) on several lines leaves none of
// it in Credential's error, which says the status. Not parallel: it sets
// the environment.
func TestCredentialTokenRefusalNotEchoed(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var sent atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := r.FormValue("assertion")
		sent.Store(a)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "proxy refused\nassertion=%s\n", a)
	}))
	defer srv.Close()
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	sa, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "test-project", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "keyward@test-project.iam.gserviceaccount.com", "client_id": "1234", "token_uri": srv.URL + "/token",
	})
	file := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(file, sa, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", file)
	p, err := New(Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Credential(t.Context(), providers.CredentialRequest{})
	a, _ := sent.Load().(string)
	if err == nil || a == "" {
		t.Fatalf("no refusal (assertion sent: %v)", a != "")
	}
	providertest.AssertErrorRedacted(t, err, []byte(a))
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "HTTP 400") {
		t.Errorf("the error breaks the line or does not name the status (%d bytes)", len(msg))
	}
}
