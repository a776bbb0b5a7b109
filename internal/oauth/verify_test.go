package oauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func TestVerifier(t *testing.T) {
	t.Parallel()
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var keys atomic.Value
	keys.Store([]jose.JSONWebKey{{Key: &k1.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}})
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: keys.Load().([]jose.JSONWebKey)})
	}))
	defer srv.Close()
	now := time.Now()
	sign := func(key any, kid string, alg jose.SignatureAlgorithm, c jwt.Claims) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType("at+jwt"))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.Signed(s).Claims(c).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := jwt.Claims{Issuer: "https://issuer.test", Audience: jwt.Audience{"https://api.test", "other"}, Expiry: jwt.NewNumericDate(now.Add(time.Hour))}
	with := func(f func(*jwt.Claims)) jwt.Claims { c := good; f(&c); return c }
	v := &Verifier{JWKSURL: srv.URL, Issuer: "https://issuer.test", Audience: "https://api.test"}
	cases := []struct {
		name, token, want string
	}{
		{"good", sign(k1, "k1", jose.ES256, good), ""},
		{"wrong audience", sign(k1, "k1", jose.ES256, with(func(c *jwt.Claims) { c.Audience = jwt.Audience{"https://other.test"} })),
			`aud ["https://other.test"] does not include "https://api.test"`},
		{"wrong issuer", sign(k1, "k1", jose.ES256, with(func(c *jwt.Claims) { c.Issuer = "https://evil.test" })),
			`iss is "https://evil.test", not "https://issuer.test"`},
		{"expired", sign(k1, "k1", jose.ES256, with(func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(now.Add(-time.Minute)) })), "it expired at"},
		{"no exp", sign(k1, "k1", jose.ES256, with(func(c *jwt.Claims) { c.Expiry = nil })), "it has no exp"},
		{"not yet valid", sign(k1, "k1", jose.ES256, with(func(c *jwt.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) })), "not valid before"},
		{"signed by another key", sign(k2, "k1", jose.ES256, good), `its signature does not verify with key "k1"`},
		{"HMAC", sign([]byte("0123456789abcdef0123456789abcdef"), "k1", jose.HS256, good), "its algorithm is not accepted"},
		{"opaque", "opaque-access-token-value", "it is no signed JWT"},
		// Claims the server chose are echoed bounded.
		{"long issuer", sign(k1, "k1", jose.ES256, with(func(c *jwt.Claims) { c.Issuer = strings.Repeat("i", 10000) })), `iss is "iiii`},
		{"long audience", sign(k1, "k1", jose.ES256, with(func(c *jwt.Claims) { c.Audience = jwt.Audience{strings.Repeat("a", 10000)} })), `aud ["aaaa`},
		{"long kid", sign(k2, strings.Repeat("k", 10000), jose.ES256, good), `has no key "kkkk`},
	}
	for _, c := range cases {
		exp, err := v.Verify(t.Context(), c.token, now)
		switch {
		case c.want == "" && (err != nil || !exp.Equal(good.Expiry.Time())):
			t.Errorf("%s: %v %v", c.name, exp, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrNotVerified)):
			t.Errorf("%s: err %v, want %q", c.name, err, c.want)
		}
		if err != nil && len(err.Error()) > 400 {
			t.Errorf("%s: the error echoes %d bytes of what the server sent", c.name, len(err.Error()))
		}
		if err != nil && strings.Contains(err.Error(), c.token) {
			t.Errorf("%s: leaked value of the token into the error", c.name)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d key set fetches, want 1", n)
	}
	// The issuer rotates to k2: an unknown kid fetches the set again, once
	// per JWKSRefetch.
	keys.Store([]jose.JSONWebKey{{Key: &k2.PublicKey, KeyID: "k2"}})
	if _, err := v.Verify(t.Context(), sign(k2, "k2", jose.ES256, good), now); err == nil || fetches.Load() != 1 {
		t.Fatalf("an unknown kid within a minute of the fetch: %v, %d fetches", err, fetches.Load())
	}
	if _, err := v.Verify(t.Context(), sign(k2, "k2", jose.ES256, good), now.Add(JWKSRefetch)); err != nil || fetches.Load() != 2 {
		t.Fatalf("after the key rotation: %v, %d fetches", err, fetches.Load())
	}
}
