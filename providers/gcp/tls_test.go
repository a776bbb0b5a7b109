package gcp_test

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/internal/tlsclient"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/gcp"
	"github.com/keyward/keyward/providers/gcp/gcpfake"
)

// tlsPair issues a serving certificate of ca for names.
func tlsPair(t *testing.T, ca *testenv.TestCA, names ...string) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := ca.IssueCert(testenv.CertSpec{CommonName: names[0], Names: names, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestWorkloadOverPrivateCA: Secret Manager and the federation endpoints
// served over TLS by certificates of a private CA. A provider acting as
// a pod with tls.ca_cert (relative to the config's directory) exchanges
// the pod's token and reads its secret, with server_name for a
// certificate issued to a name the endpoint's address is not; with
// another CA's bundle the connection is refused with an error naming the
// unknown authority, and with no byte of the bundle or a token.
func TestWorkloadOverPrivateCA(t *testing.T) {
	metadataTrap(t)
	ca, err := testenv.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	other, err := testenv.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	const name = "secretmanager.private.test"
	fake, err := gcpfake.StartTLS(tlsPair(t, ca, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	const podToken = "pod-kube-token"
	fed, err := gcpfake.StartFederationTLS(testPool, func(_ context.Context, tok string) (string, error) {
		if tok == podToken {
			return "system:serviceaccount:apps:alice", nil
		}
		return "", errors.New("unknown token")
	}, tlsPair(t, ca, "127.0.0.1", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fed.Close() })
	fake.Authenticate(fed.Principal)
	fake.Grant(fed.FederatedPrincipal("system:serviceaccount:apps:alice"), testProject, "alice-db")

	admin, err := secretmanager.NewClient(t.Context(), fake.TLSClientOptions(&tls.Config{RootCAs: ca.Pool(), ServerName: name})...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	e := &env{fake: fake, admin: admin}
	e.addVersion(t, testProject, "alice-db", []byte("alice-pw"))
	if _, err := admin.AccessSecretVersion(t.Context(), &secretmanagerpb.AccessSecretVersionRequest{Name: "projects/" + testProject + "/secrets/alice-db/versions/latest"}); err != nil {
		t.Fatalf("the fake over TLS: %v", err)
	}

	dir := t.TempDir()
	for f, b := range map[string][]byte{"ca.pem": ca.PEM, "other.pem": other.PEM} {
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	opts := func(caFile string) map[string]any {
		return map[string]any{"project": testProject, "endpoint": fake.Addr(),
			"tls":                        map[string]any{"ca_cert": caFile, "server_name": name},
			"workload_identity_provider": testPool, "sts_endpoint": fed.STSEndpoint(), "iam_credentials_endpoint": fed.IAMCredentialsEndpoint()}
	}
	read := func(set *providers.Set) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		sec, err := set.Fetch(ctx, mustParse(t, "gcpsm://alice-db"))
		if err != nil {
			return "", err
		}
		return sec.Value.Reveal(), nil
	}

	set := workloadSetIn(t, dir, opts("ca.pem"), "apps", "alice", podToken, nil)
	if v, err := read(set); err != nil || v != "alice-pw" {
		t.Fatalf("reading through the private CA: %v", err)
	}
	if n := len(fed.Exchanges()); n != 1 {
		t.Errorf("%d token exchanges over TLS, want 1", n)
	}

	_, err = read(workloadSetIn(t, dir, opts("other.pem"), "apps", "alice", podToken, nil))
	if err == nil {
		t.Fatal("a server of another CA was trusted")
	}
	msg := err.Error()
	t.Logf("another CA: %s", msg)
	if !strings.Contains(msg, "certificate signed by unknown authority") {
		t.Errorf("another CA: %q, want the unknown authority named", msg)
	}
	for what, v := range map[string]string{"the pod's token": podToken, "the CA bundle": string(other.PEM[30:60])} {
		if strings.Contains(msg, v) {
			t.Errorf("leaked value of %s in the error", what)
		}
	}

	// A CA file that is no CA bundle is refused when the provider is
	// built, naming the file.
	if err := os.WriteFile(filepath.Join(dir, "bad.pem"), []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = workloadSetIn(t, dir, opts("bad.pem"), "apps", "alice", podToken, nil).Provider("gcpsm")
	if err == nil || !strings.Contains(err.Error(), "tls: ca_cert "+filepath.Join(dir, "bad.pem")+": no PEM CERTIFICATE block in it") {
		t.Errorf("a bad CA file: %v, want it named", err)
	}
}

// TestTLSOptions: tls is refused beside insecure, and read when the
// instance is built (a missing file is a configuration error naming it).
func TestTLSOptions(t *testing.T) {
	_, err := gcp.New(gcp.Options{Endpoint: "127.0.0.1:1", Insecure: true, TLS: tlsOpts("/ca.pem")}, nil)
	if err == nil || !strings.Contains(err.Error(), "insecure (plaintext) and tls exclude each other") {
		t.Errorf("insecure with tls: %v", err)
	}
	_, err = gcp.New(gcp.Options{Endpoint: "10.88.0.1:443", Insecure: true}, nil)
	if err == nil || !strings.Contains(err.Error(), "set tls.ca_cert") {
		t.Errorf("insecure with a node address: %v, want tls.ca_cert suggested", err)
	}
	missing := filepath.Join(t.TempDir(), "ca.pem")
	_, err = gcp.New(gcp.Options{Endpoint: "10.88.0.1:443", TLS: tlsOpts(missing)}, nil)
	if err == nil || err.Error() != "tls: ca_cert "+missing+": no such file or directory" {
		t.Errorf("a missing CA file: %v", err)
	}
}

func tlsOpts(caCert string) tlsclient.Options { return tlsclient.Options{CACert: caCert} }

// TestADCOverPrivateCA: outside csi-provider, a gcpsm instance with
// tls.ca_cert reads Secret Manager served over TLS by a private CA's
// certificate, with Application Default Credentials (here an
// external_account file whose token the federation stand-in exchanges),
// where insecure would be refused for any but a loopback endpoint; a
// certificate of another CA is refused naming the unknown authority.
func TestADCOverPrivateCA(t *testing.T) {
	metadataTrap(t)
	ca, err := testenv.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	other, err := testenv.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	const subjectToken = "workload-oidc-token"
	fed, err := gcpfake.StartFederation(testPool, func(_ context.Context, tok string) (string, error) {
		if tok == subjectToken {
			return "ci-runner", nil
		}
		return "", errors.New("unknown token")
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fed.Close() })
	const name = "secretmanager.private.test"
	fake, err := gcpfake.StartTLS(tlsPair(t, ca, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	fake.Authenticate(fed.Principal)
	fake.Grant(fed.FederatedPrincipal("ci-runner"), testProject, "ci-db")
	admin, err := secretmanager.NewClient(t.Context(), fake.TLSClientOptions(&tls.Config{RootCAs: ca.Pool(), ServerName: name})...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	(&env{fake: fake, admin: admin}).addVersion(t, testProject, "ci-db", []byte("ci-pw"))

	dir := t.TempDir()
	write := func(f string, b []byte) string {
		p := filepath.Join(dir, f)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	adc := `{"type": "external_account", "audience": "` + testPool + `",
  "subject_token_type": "urn:ietf:params:oauth:token-type:jwt", "token_url": "` + fed.STSEndpoint() + `",
  "credential_source": {"file": "` + write("subject", []byte(subjectToken)) + `"}}`
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", write("adc.json", []byte(adc)))

	read := func(caFile string) (string, error) {
		p, err := gcp.New(gcp.Options{Project: testProject, Endpoint: fake.Addr(), TLS: tlsclient.Options{CACert: write(caFile+".pem", map[string][]byte{"ca": ca.PEM, "other": other.PEM}[caFile]), ServerName: name}}, nil)
		if err != nil {
			return "", err
		}
		defer p.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		sec, err := p.Fetch(ctx, mustParse(t, "gcpsm://ci-db"))
		if err != nil {
			return "", err
		}
		return sec.Value.Reveal(), nil
	}
	if v, err := read("ca"); err != nil || v != "ci-pw" {
		t.Fatalf("reading through the private CA with ADC: %v", err)
	}
	if _, err := read("other"); err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("another CA: %v, want the unknown authority named", err)
	}
}
