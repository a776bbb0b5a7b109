package tlsclient_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/internal/tlsclient"
)

// server serves HTTPS with a certificate ca issued for names.
func server(t *testing.T, ca *testenv.TestCA, names ...string) *httptest.Server {
	t.Helper()
	certPEM, keyPEM, err := ca.IssueCert(testenv.CertSpec{CommonName: names[0], Names: names, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func write(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func get(t *testing.T, o tlsclient.Options, url string) error {
	t.Helper()
	tr, err := o.Transport(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// A server whose certificate the configured CA issued is trusted, through
// a bundle holding another CA too; a server of another CA is refused; a
// certificate for another name is accepted only with server_name.
func TestTrustsTheBundle(t *testing.T) {
	ca, err := testenv.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	other, err := testenv.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	s := server(t, ca, "127.0.0.1")
	bundle := write(t, "ca.pem", append(append([]byte("a comment\n"), other.PEM...), ca.PEM...))
	if err := get(t, tlsclient.Options{CACert: bundle}, s.URL); err != nil {
		t.Fatalf("the bundle's CA: %v", err)
	}
	err = get(t, tlsclient.Options{CACert: write(t, "other.pem", other.PEM)}, s.URL)
	if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("another CA: err %v, want the certificate refused", err)
	}

	named := server(t, ca, "vault.internal.test")
	if err := get(t, tlsclient.Options{CACert: bundle}, named.URL); err == nil {
		t.Fatal("a certificate for another name was accepted without server_name")
	}
	if err := get(t, tlsclient.Options{CACert: bundle, ServerName: "vault.internal.test"}, named.URL); err != nil {
		t.Fatalf("server_name: %v", err)
	}
}

// A bad CA file is an error naming the file and what is wrong, with no
// byte of its content.
func TestBadBundle(t *testing.T) {
	ca, _ := testenv.NewTestCA()
	certPEM, keyPEM, err := ca.Issue("127.0.0.1", true)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	big := make([]byte, tlsclient.MaxBundle+1)
	for i := range big {
		big[i] = 'A'
	}
	corrupt := []byte("-----BEGIN CERTIFICATE-----\nU0VDUkVUU0VDUkVU\n-----END CERTIFICATE-----\n")
	for _, c := range []struct {
		name    string
		path    string
		content []byte
		want    string
	}{
		{"missing", filepath.Join(dir, "nope.pem"), nil, "no such file or directory"},
		{"directory", dir, nil, "is a directory"},
		{"key", write(t, "key.pem", append(append([]byte{}, certPEM...), keyPEM...)), keyPEM, "PEM block 2 is a PRIVATE KEY, not a CERTIFICATE"},
		{"not pem", write(t, "text.pem", []byte("SECRETSECRET\n")), []byte("SECRETSECRET"), "no PEM CERTIFICATE block in it"},
		{"corrupt", write(t, "corrupt.pem", corrupt), []byte("U0VDUkVUU0VDUkVU"), "certificate 1 does not parse"},
		{"too large", write(t, "big.pem", big), nil, "larger than the size limit"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := tlsclient.Options{CACert: c.path}.Config(context.Background())
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "ca_cert "+c.path+": ") || !strings.Contains(msg, c.want) {
				t.Fatalf("error %q: want it to name the file and say %q", msg, c.want)
			}
			if len(c.content) > 0 && strings.Contains(msg, strings.TrimSpace(string(c.content))) {
				t.Fatal("the error leaked the file's content")
			}
			if strings.Contains(msg, "MIG") || strings.Contains(msg, "AAAA") {
				t.Fatal("the error leaked the file's content")
			}
		})
	}
}

// Nothing configured: no transport of its own, the caller's default.
func TestZero(t *testing.T) {
	tr, err := tlsclient.Options{}.Transport(context.Background())
	if tr != nil || err != nil {
		t.Fatalf("zero options: %v, %v; want nil, nil", tr, err)
	}
	if got := (tlsclient.Options{CACert: "ca.pem"}).Abs("/etc/kw").CACert; got != "/etc/kw/ca.pem" {
		t.Fatalf("Abs: %q", got)
	}
}

// ParsePool takes a bundle already read: its certificates are trusted, and
// a bundle that ReadBundle would refuse is refused with the caller's name
// for it.
func TestParsePool(t *testing.T) {
	ca, _ := testenv.NewTestCA()
	s := server(t, ca, "127.0.0.1")
	pool, err := tlsclient.ParsePool("test bundle", ca.PEM)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}).Get(s.URL)
	if err != nil {
		t.Fatalf("a server of the parsed CA is not trusted: %v", err)
	}
	resp.Body.Close()
	certPEM, keyPEM, err := ca.Issue("127.0.0.1", true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tlsclient.ParsePool("test bundle", append(append([]byte{}, certPEM...), keyPEM...))
	if err == nil || !strings.HasPrefix(err.Error(), "test bundle: PEM block 2 is a PRIVATE KEY") {
		t.Fatalf("a bundle holding a key: error %v, want it refused under the caller's name", err)
	}
}
