//go:build integration

package aws

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
	"github.com/keyward/keyward/internal/tlsclient"
)

// TestPrivateCA: moto behind an HTTPS endpoint whose certificate a private
// CA issued (a VPC endpoint behind a corporate proxy). With tls.ca_cert
// naming that CA the secret is read; with another CA's bundle the
// connection is refused naming the unknown authority, without a request
// reaching the endpoint and without a byte of the bundle in the error; a
// CA file that is no bundle fails New, naming the file.
func TestPrivateCA(t *testing.T) {
	ca, err := testenv.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	other, err := testenv.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue("127.0.0.1", true)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	target, err := url.Parse(moto.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var requests atomic.Int32
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewUnstartedServer(rp)
	srv.Config.Handler = countingHandler{rp, &requests}
	var handshakes atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			handshakes.Add(1)
		}
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	for f, b := range map[string][]byte{"ca.pem": ca.PEM, "other.pem": other.PEM, "key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	name := "tls/" + strings.ReplaceAll(t.Name(), "/", "-")
	createSecret(t, admin(t, ""), name, []byte("through-the-private-ca"), true)
	withCA := func(file string) func(*Options) {
		return func(o *Options) { o.TLS = tlsclient.Options{CACert: filepath.Join(dir, file)} }
	}

	p := newProvider(t, srv.URL, withCA("ca.pem"))
	sec, err := p.Fetch(t.Context(), mustParse(t, "awssm://"+name))
	if err != nil {
		t.Fatalf("through the private CA: %v", err)
	}
	if sec.Value.Reveal() != "through-the-private-ca" {
		t.Fatal("wrong value through the private CA")
	}

	before, conns := requests.Load(), handshakes.Load()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err = newProvider(t, srv.URL, withCA("other.pem")).Fetch(ctx, mustParse(t, "awssm://"+name))
	if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("another CA: %v, want the unknown authority named", err)
	}
	if strings.Contains(err.Error(), strings.Split(string(other.PEM), "\n")[1]) {
		t.Error("leaked value of the CA bundle in the error")
	}
	if n := requests.Load() - before; n != 0 {
		t.Errorf("%d requests reached the endpoint through an untrusted connection", n)
	}
	if n := handshakes.Load() - conns; n != 1 {
		t.Errorf("%d connections to a server of another CA, want 1: an untrusted certificate is not retried", n)
	}

	_, err = New(Options{Region: testRegion, TLS: tlsclient.Options{CACert: filepath.Join(dir, "key.pem")}})
	if want := "tls: ca_cert " + filepath.Join(dir, "key.pem") + ": PEM block 1 is a PRIVATE KEY, not a CERTIFICATE"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("a key as CA file: %v, want %q", err, want)
	}
}

// countingHandler counts the requests that reach h.
type countingHandler struct {
	h interface {
		ServeHTTP(http.ResponseWriter, *http.Request)
	}
	n *atomic.Int32
}

func (c countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.n.Add(1)
	c.h.ServeHTTP(w, r)
}
