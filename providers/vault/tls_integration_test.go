//go:build integration

package vault

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers"
)

// TestPrivateCA: the real Vault behind HTTPS with a certificate of a
// private CA for a name its address is not. tls.ca_cert (read through
// internal/tlsclient, as gcpsm's, awssm's and the tokens') with
// server_name reads the secret, and wins over a ca_path; another CA is
// refused naming the unknown authority; a CA file holding a key fails
// New naming the file, without a byte of the key.
func TestPrivateCA(t *testing.T) {
	ca, err := testenv.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	other, err := testenv.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	const name = "vault.private.test"
	certPEM, keyPEM, err := ca.Issue(name, true)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	target, err := url.Parse(vaultSrv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(target))
	var conns atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	for f, b := range map[string][]byte{"ca.pem": ca.PEM, "other.pem": other.PEM, "key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	secret := "tls/" + strings.ReplaceAll(t.Name(), "/", "-")
	kv2Put(t, secret, map[string]any{"value": "through-the-private-ca"})
	opts := func(file string) Options {
		return Options{TLS: TLSOptions{CACert: filepath.Join(dir, file), CAPath: dir, ServerName: name}}
	}

	p := newReal(t, srv.URL, opts("ca.pem"), map[string]string{envToken: readToken})
	if v, _ := mustFetchField(t, p, "vault://secret/"+secret, "value"); v != "through-the-private-ca" {
		t.Fatal("wrong value through the private CA")
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err = newReal(t, srv.URL, opts("other.pem"), map[string]string{envToken: readToken}).Fetch(ctx, mustParse(t, "vault://secret/"+secret))
	if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("another CA: %v, want the unknown authority named", err)
	}
	if strings.Contains(err.Error(), strings.Split(string(other.PEM), "\n")[1]) {
		t.Error("leaked value of the CA bundle in the error")
	}

	_, err = New(providers.Instance{Name: KindName, Kind: KindName, Getenv: envOf(map[string]string{envAddr: srv.URL, envToken: readToken}),
		Decode: func(into any) error { *(into.(*Options)) = opts("key.pem"); return nil }})
	want := "vault provider vault: tls: ca_cert " + filepath.Join(dir, "key.pem") + ": PEM block 1 is a PRIVATE KEY, not a CERTIFICATE"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("a key as CA file: %v, want %q", err, want)
	}
	if err != nil && strings.Contains(err.Error(), strings.Split(string(keyPEM), "\n")[1]) {
		t.Error("leaked value of the key in the error")
	}
	t.Logf("%d connections to the TLS endpoint", conns.Load())
}
