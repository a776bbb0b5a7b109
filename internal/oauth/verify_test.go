package oauth

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net"
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

// TestVerifierKeySetAnswer: the key set's fetch quotes a refusal by its
// status code only (the status line's text is the server's), and does not
// follow a redirect, as the token exchange does not.
func TestVerifierKeySetAnswer(t *testing.T) {
	t.Parallel()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k, KeyID: "k1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	token, err := jwt.Signed(s).Claims(jwt.Claims{Issuer: "https://issuer.test", Audience: jwt.Audience{"https://api.test"}, Expiry: jwt.NewNumericDate(now.Add(time.Hour))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}

	// A status line with a reason phrase of the server's choosing.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = http.ReadRequest(bufio.NewReader(c))
				_, _ = io.WriteString(c, "HTTP/1.1 503 SERVER-CHOSEN-REASON\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			}()
		}
	}()
	v := &Verifier{JWKSURL: "http://" + ln.Addr().String() + "/jwks", Issuer: "https://issuer.test", Audience: "https://api.test"}
	_, err = v.Verify(t.Context(), token, now)
	if err == nil || !strings.Contains(err.Error(), "status 503") || strings.Contains(err.Error(), "SERVER-CHOSEN-REASON") {
		t.Errorf("key set answered 503: err %v, want the status code without the server's text", err)
	}

	// A redirect to a server holding the right key is not followed.
	var elsewhere atomic.Int32
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	}))
	t.Cleanup(keys.Close)
	redirect := httptest.NewServer(http.RedirectHandler(keys.URL, http.StatusFound))
	t.Cleanup(redirect.Close)
	v = &Verifier{JWKSURL: redirect.URL, Issuer: "https://issuer.test", Audience: "https://api.test"}
	if _, err := v.Verify(t.Context(), token, now); err == nil || !strings.Contains(err.Error(), "status 302") {
		t.Errorf("key set redirected: err %v, want the 302 refused", err)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirect was followed: %d requests to its target", n)
	}
}
