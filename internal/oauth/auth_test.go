package oauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func TestParsePrivateKey(t *testing.T) {
	t.Parallel()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	block := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	pkcs8 := func(k any) []byte { der, _ := x509.MarshalPKCS8PrivateKey(k); return block("PRIVATE KEY", der) }
	sec1, _ := x509.MarshalECPrivateKey(ecKey)
	cert := block("CERTIFICATE", []byte("not parsed"))
	cases := []struct {
		name, doc string
		want      string // the key's default alg, or the error
	}{
		{"pkcs8 rsa", string(pkcs8(rsaKey)), "RS256"},
		{"pkcs1 rsa", string(block("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey))), "RS256"},
		{"sec1 ec", string(block("EC PRIVATE KEY", sec1)), "ES256"},
		{"pkcs8 ed25519 after a certificate", string(cert) + string(pkcs8(edKey)), "EdDSA"},
		{"encrypted", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n", "the private key is encrypted (keyward needs it unencrypted in its store)"},
		{"legacy encrypted", "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n", "the private key is encrypted (keyward needs it unencrypted in its store)"},
		{"no key", string(cert), "no PEM private key"},
		{"not PEM", "s3cr3t-not-a-key", "no PEM private key"},
		{"garbage DER", string(block("PRIVATE KEY", []byte("s3cr3t-garbage"))), "PRIVATE KEY: not a valid key"},
	}
	for _, c := range cases {
		k, err := ParsePrivateKey([]byte(c.doc))
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got, _ = SigningAlg(k, "")
		}
		if got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
		if strings.Contains(got, "s3cr3t") {
			t.Errorf("%s: leaked value of the document into the error", c.name)
		}
	}
}

func TestSigningAlg(t *testing.T) {
	t.Parallel()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		key       crypto.Signer
		alg, want string
	}{
		{rsaKey, "PS512", "PS512"},
		{rsaKey, "RS384", "RS384"},
		{rsaKey, "ES256", "signing_alg ES256 does not fit the private key (RSA)"},
		{rsaKey, "RSA256", "signing_alg RSA256 does not fit the private key (RSA)"},
		{p384, "", "ES384"},
		{p384, "ES256", "signing_alg ES256 does not fit the private key (ECDSA P-384)"},
		{edKey, "EdDSA", "EdDSA"},
		{edKey, "RS256", "signing_alg RS256 does not fit the private key (Ed25519)"},
	}
	for _, c := range cases {
		got, err := SigningAlg(c.key, c.alg)
		if err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("%s with %q: %q, want %q", keyKind(c.key), c.alg, got, c.want)
		}
	}
}

// TestPrivateKeyJWTRequest checks the client assertion of each request:
// signed with the key (verified with its public key), typ JWT, the kid and
// alg asked for, iss = sub = client_id, aud = the token endpoint, a jti of
// its own, and exp a minute after iat.
func TestPrivateKeyJWTRequest(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	const tokenURL = "https://auth.example/oauth/token"
	var forms []url.Values
	hc := &http.Client{Transport: roundTrip(func(r *http.Request, form url.Values) (int, http.Header, string) {
		forms = append(forms, form)
		if _, _, ok := r.BasicAuth(); ok {
			t.Error("private_key_jwt sent Basic authentication")
		}
		return 200, nil, `{"access_token":"at","expires_in":60}`
	})}
	var learnt []string
	req := Request{TokenURL: tokenURL, Client: Client{ID: "app-1", Method: PrivateKeyJWT, Key: key, KeyID: "k1"},
		Learn: func(what, v string) {
			if what == "client_assertion" {
				learnt = append(learnt, v)
			}
		}}
	for range 2 {
		if _, err := Exchange(t.Context(), hc, req); err != nil {
			t.Fatal(err)
		}
	}
	jtis := map[string]bool{}
	for i, f := range forms {
		if f.Get("client_id") != "app-1" || f.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || f.Has("client_secret") {
			t.Fatalf("form %v", f)
		}
		a := f.Get("client_assertion")
		if i >= len(learnt) || learnt[i] != a {
			t.Error("the assertion sent was not handed to Learn first")
		}
		tok, err := jwt.ParseSigned(a, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		h := tok.Headers[0]
		if h.KeyID != "k1" || h.Algorithm != "ES256" || h.ExtraHeaders["typ"] != "JWT" {
			t.Errorf("header %+v", h)
		}
		var c jwt.Claims
		if err := tok.Claims(&key.PublicKey, &c); err != nil {
			t.Fatalf("signature: %v", err)
		}
		if c.Issuer != "app-1" || c.Subject != "app-1" || len(c.Audience) != 1 || c.Audience[0] != tokenURL {
			t.Errorf("claims %+v", c)
		}
		if life := c.Expiry.Time().Sub(c.IssuedAt.Time()); life != AssertionLifetime {
			t.Errorf("assertion valid for %v, want %v", life, AssertionLifetime)
		}
		if len(c.ID) < 20 || jtis[c.ID] {
			t.Errorf("jti %q is short or reused", c.ID)
		}
		jtis[c.ID] = true
	}
}

// TestTLSClientCertificateAlwaysSent: the configured certificate is
// presented even when the server's list of acceptable CAs does not name its
// issuer (a self-signed certificate registered at the server), which
// crypto/tls's own choice among Certificates would skip.
func TestTLSClientCertificateAlwaysSent(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	cert, err := ParseCertificate(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 {
			got = r.TLS.PeerCertificates[0].Raw
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"at"}`))
	}))
	other := httptest.NewTLSServer(http.NotFoundHandler()) // its CA is the one the server names
	defer other.Close()
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert, ClientCAs: other.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	srv.StartTLS()
	defer srv.Close()
	_, err = Exchange(t.Context(), srv.Client(), Request{TokenURL: srv.URL + "/token", Client: Client{ID: "app", Method: SelfSignedTLSClientAuth, Certificate: cert}})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(der) {
		t.Fatal("the server got no client certificate, or another one")
	}
}

func TestParseCertificateMismatch(t *testing.T) {
	t.Parallel()
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k1.PublicKey, k1)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(k2)
	_, err := ParseCertificate(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if err == nil || err.Error() != "the private key does not belong to the certificate" {
		t.Fatalf("err %v", err)
	}
}
