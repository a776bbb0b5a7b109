package kubernetes

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/providertest"
)

// fakeAPIServer is an HTTPS server answering GET of one Secret whose
// "server" key names the server, for bearer token token only.
type fakeAPIServer struct {
	name, token string
	srv         *httptest.Server
	caPEM       []byte
}

func newFakeAPIServer(t *testing.T, name, token string) *fakeAPIServer {
	t.Helper()
	f := &fakeAPIServer{name: name, token: token}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
				Status: metav1.StatusFailure, Code: 401, Reason: metav1.StatusReasonUnauthorized, Message: "Unauthorized"})
			return
		}
		if !strings.HasPrefix(r.UserAgent(), "keyward/") {
			http.Error(w, "user agent "+r.UserAgent(), http.StatusBadRequest)
			return
		}
		if r.Method != http.MethodGet || r.URL.Path != "/api/v1/namespaces/ns/secrets/s" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(corev1.Secret{
			TypeMeta:   metav1.TypeMeta{Kind: "Secret", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s", ResourceVersion: "7"},
			Data:       map[string][]byte{"server": []byte(name)},
		})
	}))
	t.Cleanup(f.srv.Close)
	f.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	return f
}

// kubeconfig writes a kubeconfig with one context per server (named after
// it), current-context the first.
func kubeconfig(t *testing.T, path string, servers ...*fakeAPIServer) {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Config\ncurrent-context: " + servers[0].name + "\nclusters:\n")
	for _, s := range servers {
		ca, _ := json.Marshal(s.caPEM) // base64 of the PEM, as certificate-authority-data wants
		fmt.Fprintf(&b, "- name: %s\n  cluster:\n    server: %s\n    certificate-authority-data: %s\n", s.name, s.srv.URL, ca)
	}
	b.WriteString("users:\n")
	for _, s := range servers {
		fmt.Fprintf(&b, "- name: %s\n  user:\n    token: %s\n", s.name, s.token)
	}
	b.WriteString("contexts:\n")
	for _, s := range servers {
		fmt.Fprintf(&b, "- name: %s\n  context:\n    cluster: %s\n    user: %s\n", s.name, s.name, s.name)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestClientConfig checks where the provider finds its cluster: the
// kubeconfig and context options, in-cluster config, $KUBECONFIG and
// ~/.kube/config, against HTTPS servers that each answer for one token.
func TestClientConfig(t *testing.T) {
	t.Parallel()
	a := newFakeAPIServer(t, "alpha", "token-alpha-0123456789")
	b := newFakeAPIServer(t, "beta", "token-beta-0123456789")
	pod := newFakeAPIServer(t, "pod", "token-pod-0123456789")

	dir := t.TempDir()
	kubeconfig(t, filepath.Join(dir, "home", ".kube", "config"), a, b)
	kubeconfig(t, filepath.Join(dir, "conf", "other.yaml"), b, a)
	saDir := filepath.Join(dir, "serviceaccount")
	if err := os.MkdirAll(saDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(saDir, "token"), []byte(pod.token), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(saDir, "ca.crt"), pod.caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(pod.srv.URL, "https://"))
	inCluster := map[string]string{"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port, "HOME": filepath.Join(dir, "home")}
	homeOnly := map[string]string{"HOME": filepath.Join(dir, "home")}

	cases := []struct {
		name    string
		opts    Options
		env     map[string]string
		baseDir string
		want    string // server answering, or "" for an error
		errHas  string
	}{
		{"home kubeconfig, current context", Options{}, homeOnly, "", "alpha", ""},
		{"home kubeconfig, context option", Options{Context: "beta"}, homeOnly, "", "beta", ""},
		{"KUBECONFIG", Options{}, map[string]string{"KUBECONFIG": filepath.Join(dir, "conf", "other.yaml"), "HOME": filepath.Join(dir, "home")}, "", "beta", ""},
		{"kubeconfig option relative to the config dir", Options{Kubeconfig: "other.yaml"}, homeOnly, filepath.Join(dir, "conf"), "beta", ""},
		{"kubeconfig option with ~/", Options{Kubeconfig: "~/.kube/config", Context: "beta"}, homeOnly, "", "beta", ""},
		{"in-cluster", Options{}, inCluster, "", "pod", ""},
		{"in-cluster, but a context is asked for", Options{Context: "beta"}, inCluster, "", "beta", ""},
		{"no config anywhere", Options{}, map[string]string{"HOME": filepath.Join(dir, "nohome")}, "", "", "no in-cluster config"},
		{"unknown context", Options{Context: "gamma"}, homeOnly, "", "", `context "gamma"`},
		{"missing kubeconfig file", Options{Kubeconfig: "nope.yaml"}, homeOnly, dir, "", "nope.yaml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := func(k string) string { return tc.env[k] }
			p, err := newProvider(configSource{opts: tc.opts, getenv: env, baseDir: tc.baseDir, saDir: saDir}, nil)
			if err != nil {
				t.Fatalf("New must not fail before first use: %v", err)
			}
			defer p.Close()
			sec, err := p.Fetch(t.Context(), providers.Ref{Scheme: "k8s", Path: "ns/s"})
			if tc.want == "" {
				if err == nil {
					t.Fatal("Fetch succeeded")
				}
				if !strings.Contains(err.Error(), tc.errHas) {
					t.Errorf("error %q does not mention %q", err, tc.errHas)
				}
				providertest.AssertRedacted(t, err.Error(), []byte(a.token), []byte(b.token), []byte(pod.token))
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			got, _ := sec.Field("server")
			if got.Reveal() != tc.want {
				t.Errorf("answered by %q, want %q", got.Reveal(), tc.want)
			}
		})
	}
}

// TestWrongTokenIsDenied: a 401 from the server maps to ErrPermissionDenied
// and the message does not carry the token.
func TestWrongTokenIsDenied(t *testing.T) {
	t.Parallel()
	a := newFakeAPIServer(t, "alpha", "token-alpha-0123456789")
	bad := *a
	bad.token = "token-wrong-0123456789"
	dir := t.TempDir()
	kubeconfig(t, filepath.Join(dir, "config"), &bad)
	p, err := New(Options{Kubeconfig: filepath.Join(dir, "config")}, func(string) string { return "" }, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = p.Fetch(t.Context(), providers.Ref{Scheme: "k8s", Path: "ns/s"})
	if !errors.Is(err, providers.ErrPermissionDenied) {
		t.Fatalf("Fetch: %v, want ErrPermissionDenied", err)
	}
	providertest.AssertRedacted(t, err.Error(), []byte(bad.token), []byte(a.token))
}
