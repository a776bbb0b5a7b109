//go:build integration

package kubernetes

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/providertest"
)

// TestIntegrationConformance runs the conformance suite against the real
// API server, as the RBAC-limited user "reader".
func TestIntegrationConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.Harness{
		Kind: KindName,
		New: func(t *testing.T) providers.Provider {
			return integrationProvider(t, cluster.API.URL, cluster.Tokens["reader"], Options{})
		},
		FlatObjects: true,
		BinarySafe:  true,
		PutValue: func(t *testing.T, name string, value []byte) providers.Ref {
			putSecret(t, "conformance", name, map[string][]byte{"value": value})
			return providers.Ref{Scheme: KindName, Path: "conformance/" + name, Field: "value"}
		},
		PutObject: func(t *testing.T, name string, fields map[string]any) providers.Ref {
			d := map[string][]byte{}
			for k, v := range fields {
				d[k] = []byte(v.(string))
			}
			putSecret(t, "conformance", name, d)
			return providers.Ref{Scheme: KindName, Path: "conformance/" + name}
		},
		Delete: func(t *testing.T, name string) { deleteSecret(t, "conformance", name) },
		Missing: func(t *testing.T, name string) providers.Ref {
			return providers.Ref{Scheme: KindName, Path: "conformance/" + name}
		},
		Denied: func(t *testing.T, name string, value []byte) providers.Ref {
			putSecret(t, "denied", name, map[string][]byte{"value": value})
			return providers.Ref{Scheme: KindName, Path: "denied/" + name, Field: "value"}
		},
	})
}

// TestIntegrationReadRotateDelete: read a Secret (binary key included),
// rotate it and see Watch report it and Set.Resolve return the new value,
// delete it (Fetch → ErrNotFound, reported), create it again (reported);
// a referenced Secret that does not change is never reported.
func TestIntegrationReadRotateDelete(t *testing.T) {
	t.Parallel()
	binary := []byte{0, 0xff, 0xfe, '\n', 0x80}
	putSecret(t, "watch", "app", map[string][]byte{"password": []byte("first-password-value"), "bin": binary})
	putSecret(t, "watch", "steady", map[string][]byte{"k": []byte("steady-value")})
	token := cluster.Tokens["reader"]
	p := integrationProvider(t, cluster.API.URL, token, Options{})
	ctx := t.Context()

	sec, err := p.Fetch(ctx, ref(t, "k8s://watch/app"))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := sec.Data["bin"].([]byte); !bytes.Equal(b, binary) {
		t.Errorf("binary key came back different")
	}

	kubeconfig := kubeconfigFor(t, cluster.API.URL, token)
	set := providers.NewSet(providers.Instance{Getenv: func(string) string { return "" }}, []providers.Instance{{
		Name: "k8s", Kind: KindName,
		Decode: func(into any) error { into.(*Options).Kubeconfig = kubeconfig; return nil },
	}})
	defer set.Close()
	resolve := func() string {
		t.Helper()
		got, err := set.Resolve(ctx, map[string]providers.Ref{"PW": ref(t, "k8s://watch/app#password")})
		if err != nil {
			t.Fatalf("Resolve: %v", err)
		}
		return got["PW"].Value.Reveal()
	}
	if got := resolve(); got != "first-password-value" {
		t.Errorf("Resolve before rotation returned a different value")
	}

	w := startWatch(t, p, "k8s://watch/app", "k8s://watch/steady")
	putSecret(t, "watch", "app", map[string][]byte{"password": []byte("second-password-value")})
	w.waitFor(t, "watch/app", 1, 30*time.Second)
	if got := resolve(); got != "second-password-value" {
		t.Errorf("Resolve after the reported rotation returned an old value")
	}

	deleteSecret(t, "watch", "app")
	w.waitFor(t, "watch/app", 2, 30*time.Second)
	if _, err := p.Fetch(ctx, ref(t, "k8s://watch/app")); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("Fetch after delete: %v, want ErrNotFound", err)
	}

	putSecret(t, "watch", "app", map[string][]byte{"password": []byte("third-password-value")})
	w.waitFor(t, "watch/app", 3, 30*time.Second)
	if n := w.count("watch/steady"); n != 0 {
		t.Errorf("the unchanged Secret was reported %d times", n)
	}
	if err := w.stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Watch returned %v after cancellation, want context.Canceled", err)
	}
}

// applyFile applies every document of a manifest file (for real, or as a
// server-side dry run) and returns the first error.
func applyFile(ctx context.Context, path string, dryRun bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	docs, err := splitYAML(b)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, d := range docs {
		if _, err := apply(ctx, d, dryRun); err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(path), err)
		}
	}
	return nil
}

// splitYAML splits a multi-document YAML file into its non-empty documents.
func splitYAML(b []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var out [][]byte
	for {
		d, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yamlToObject(d, &m); err != nil {
			return nil, err
		}
		if len(m) > 0 {
			out = append(out, d)
		}
	}
}

// serviceAccountToken asks the API server for a token of a ServiceAccount
// (the TokenRequest API, as the kubelet does for a pod).
func serviceAccountToken(t *testing.T, ns, name string) string {
	t.Helper()
	req := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
		"metadata": map[string]any{"name": name}, // names the ServiceAccount in the URL
		"spec":     map[string]any{"expirationSeconds": int64(3600)},
	}}
	out, err := dyn.Resource(saGVR).Namespace(ns).Create(t.Context(), req, metav1.CreateOptions{}, "token")
	if err != nil {
		t.Fatalf("token for serviceaccount %s/%s: %v", ns, name, err)
	}
	tok, _, _ := unstructured.NestedString(out.Object, "status", "token")
	if tok == "" {
		t.Fatal("TokenRequest returned no token")
	}
	return tok
}

// TestIntegrationRBAC applies examples/kubernetes (namespace, demo
// Secrets, rbac.yaml) for real and checks, with a token of the example's
// ServiceAccount, that the Role's resourceNames allow get, list and watch
// of exactly the referenced Secrets, and that anything else is denied with
// ErrPermissionDenied naming verb, resource and namespace; and that a
// user with no RBAC at all is denied.
func TestIntegrationRBAC(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for _, f := range []string{"namespace.yaml", "secrets.yaml", "rbac.yaml"} {
		if err := applyFile(ctx, filepath.Join(examplesDir, f), false); err != nil {
			t.Fatal(err)
		}
	}
	putSecret(t, "payments", "unrelated", map[string][]byte{"k": []byte("unrelated-secret-value")})
	token := serviceAccountToken(t, "payments", "keyward-payments")
	p := integrationProvider(t, cluster.API.URL, token, Options{})
	values := [][]byte{[]byte("unrelated-secret-value"), []byte("change-me-db-password"), []byte(token)}
	check := func(err error) {
		t.Helper()
		if err != nil {
			providertest.AssertRedacted(t, err.Error(), values...)
		}
	}

	sec, err := p.Fetch(ctx, ref(t, "k8s://payments/payments-db"))
	check(err)
	if err != nil {
		t.Fatalf("Fetch of a Secret the Role names: %v", err)
	}
	if v, _ := sec.Field("password"); v.Reveal() != "change-me-db-password" {
		t.Error("payments-db#password came back different")
	}

	denials := []struct {
		name  string
		call  func() error
		words []string
	}{
		{"get of a Secret the Role does not name", func() error {
			_, err := p.Fetch(ctx, ref(t, "k8s://payments/unrelated"))
			return err
		}, []string{`verb "get"`, `resource "secrets"`, `namespace "payments"`, "system:serviceaccount:payments:keyward-payments"}},
		{"get in another namespace", func() error {
			_, err := p.Fetch(ctx, ref(t, "k8s://watch/steady"))
			return err
		}, []string{`verb "get"`, `namespace "watch"`}},
		{"watch including a Secret the Role does not name", func() error {
			return p.Watch(ctx, []providers.Ref{ref(t, "k8s://payments/payments-db"), ref(t, "k8s://payments/unrelated")}, func(providers.Ref) {})
		}, []string{`verb "list"`, `resource "secrets"`, `namespace "payments"`}},
		{"namespace-wide watch", func() error {
			q := integrationProvider(t, cluster.API.URL, token, Options{WatchScope: WatchNamespace})
			return q.Watch(ctx, []providers.Ref{ref(t, "k8s://payments/payments-db")}, func(providers.Ref) {})
		}, []string{`verb "list"`, "list secrets in namespace payments"}},
		{"user without any RBAC", func() error {
			q := integrationProvider(t, cluster.API.URL, cluster.Tokens["restricted"], Options{})
			_, err := q.Fetch(ctx, ref(t, "k8s://payments/payments-db"))
			return err
		}, []string{`verb "get"`, `namespace "payments"`, `"restricted"`}},
	}
	for _, d := range denials {
		err := d.call()
		check(err)
		if !errors.Is(err, providers.ErrPermissionDenied) {
			t.Errorf("%s: %v, want ErrPermissionDenied", d.name, err)
			continue
		}
		for _, w := range d.words {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %s", d.name, err, w)
			}
		}
	}

	// The per-Secret field-selector watch works under resourceNames.
	w := startWatch(t, p, "k8s://payments/payments-db", "k8s://payments/payments-api")
	putSecret(t, "payments", "payments-api", map[string][]byte{"api_key": []byte("rotated-api-key-value")})
	w.waitFor(t, "payments/payments-api", 1, 30*time.Second)
}

// TestIntegrationExamplesDryRun validates every manifest of
// examples/kubernetes with a server-side dry run and strict field
// validation, so that a misspelt or misplaced field fails; and checks
// that it does fail for a misspelt field.
func TestIntegrationExamplesDryRun(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// Pods need their namespace and ServiceAccount to exist.
	for _, f := range []string{"namespace.yaml", "rbac.yaml"} {
		if err := applyFile(ctx, filepath.Join(examplesDir, f), false); err != nil {
			t.Fatal(err)
		}
	}
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	validated := 0
	for _, f := range files {
		if filepath.Base(f) == "keyward.yaml" {
			continue // keyward's config, checked by internal/config
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			if err := applyFile(ctx, f, true); err != nil {
				t.Errorf("server-side dry run: %v", err)
			}
		})
		validated++
	}
	if validated < 6 {
		t.Errorf("validated %d manifest files, want the 6 of examples/kubernetes", validated)
	}

	// A typo must fail the dry run.
	b, err := os.ReadFile(filepath.Join(examplesDir, "sidecar-pod.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	typo := bytes.Replace(b, []byte("startupProbe:"), []byte("startupProbes:"), 1)
	if bytes.Equal(typo, b) {
		t.Fatal("sidecar-pod.yaml has no startupProbe to misspell")
	}
	_, err = apply(ctx, typo, true)
	if err == nil || !strings.Contains(err.Error(), "startupProbes") {
		t.Errorf("dry run of a manifest with a misspelt field: %v, want an error naming it", err)
	}
}

// TestIntegrationAPIServerRestart stops the API server under a running
// watch, changes a Secret through another API server on the same etcd
// while it is down, starts it again on the same port, and changes another
// Secret afterwards: both changes are reported, once each, and the
// Secret that did not change is not reported.
func TestIntegrationAPIServerRestart(t *testing.T) {
	t.Parallel()
	srv, err := cluster.NewAPIServer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	for _, n := range []string{"a", "b", "c"} {
		putSecret(t, "restart", n, map[string][]byte{"v": []byte(n + "-first-value")})
	}
	p := integrationProvider(t, srv.URL, cluster.Tokens["reader"], Options{})
	for _, n := range []string{"a", "b", "c"} {
		if _, err := p.Fetch(t.Context(), ref(t, "k8s://restart/"+n)); err != nil {
			t.Fatal(err)
		}
	}
	w := startWatch(t, p, "k8s://restart/a", "k8s://restart/b", "k8s://restart/c")
	putSecret(t, "restart", "a", map[string][]byte{"v": []byte("a-second-value")})
	w.waitFor(t, "restart/a", 1, 30*time.Second)

	srv.Stop()
	putSecret(t, "restart", "a", map[string][]byte{"v": []byte("a-changed-during-restart")})
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "restart/a", 2, 60*time.Second)
	sec, err := p.Fetch(t.Context(), ref(t, "k8s://restart/a"))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := sec.Field("v"); v.Reveal() != "a-changed-during-restart" {
		t.Error("Fetch after the restart returned an old value")
	}

	putSecret(t, "restart", "c", map[string][]byte{"v": []byte("c-changed-after-restart")})
	w.waitFor(t, "restart/c", 1, 30*time.Second)
	// The relist after the restart reports only what changed. (b would
	// have been reported by the relist, which happened before c's watch
	// delivered c's change; a is reported once per change.)
	if n := w.count("restart/b"); n != 0 {
		t.Errorf("unchanged Secret b reported %d times across the restart", n)
	}
	if n := w.count("restart/a"); n != 2 {
		t.Errorf("a reported %d times, want 2 (one per change)", n)
	}
}

// countingProxy is a TLS reverse proxy in front of the API server that
// counts the requests passing through it, by kind.
type countingProxy struct {
	srv                  *httptest.Server
	gets, lists, watches atomic.Int64
	openWatches          atomic.Int64

	mu     sync.Mutex
	bodies [][]byte // bodies of the responses to gets and lists
}

func newCountingProxy(t testing.TB, upstream string) *countingProxy {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cluster.CAData)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true}
	cp := &countingProxy{}
	rp.ModifyResponse = func(resp *http.Response) error {
		if q := resp.Request.URL.Query().Get("watch"); q == "true" || q == "1" {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		cp.mu.Lock()
		cp.bodies = append(cp.bodies, b)
		cp.mu.Unlock()
		return nil
	}
	cp.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query().Get("watch")
		switch {
		case q == "true" || q == "1":
			cp.watches.Add(1)
			cp.openWatches.Add(1)
			defer cp.openWatches.Add(-1)
		case strings.HasSuffix(r.URL.Path, "/secrets"):
			cp.lists.Add(1)
		default:
			cp.gets.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	cert, err := cluster.ServingCert()
	if err != nil {
		t.Fatal(err)
	}
	cp.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	cp.srv.EnableHTTP2 = true
	cp.srv.StartTLS()
	t.Cleanup(cp.srv.Close)
	return cp
}

func (cp *countingProxy) total() int64 { return cp.gets.Load() + cp.lists.Load() + cp.watches.Load() }

// waitWatches waits until n watches are open through the proxy.
func (cp *countingProxy) waitWatches(t testing.TB, n int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for cp.openWatches.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d watches open after %v, want %d", cp.openWatches.Load(), timeout, n)
		}
		<-tick.C
	}
}

// quietWatch sets up n Secrets in namespace bench, a provider reaching
// the API server through a counting proxy, and a Watch of all of them,
// and waits until the n watches are open.
func quietWatch(t testing.TB, n int) *countingProxy {
	t.Helper()
	cp := newCountingProxy(t, cluster.API.URL)
	var refs []string
	for i := range n {
		name := fmt.Sprintf("quiet-%03d", i)
		putSecret(t, "bench", name, map[string][]byte{"v": []byte("quiet-value")})
		refs = append(refs, "k8s://bench/"+name)
	}
	p := integrationProvider(t, cp.srv.URL, cluster.Tokens["reader"], Options{})
	startWatch(t, p, refs...)
	cp.waitWatches(t, int64(n), 60*time.Second)
	return cp
}

// TestIntegrationNoPolling: with 20 Secrets watched and nothing changing,
// no request at all reaches the API server for 3 s beyond the open
// watches (a regression guard for the quiet-minute benchmark).
func TestIntegrationNoPolling(t *testing.T) {
	t.Parallel()
	cp := quietWatch(t, 20)
	before := cp.total()
	time.Sleep(3 * time.Second) // observing the absence of requests over a window
	if d := cp.total() - before; d != 0 {
		t.Errorf("%d API requests in a quiet 3 s (gets %d, lists %d, watches %d in total)", d, cp.gets.Load(), cp.lists.Load(), cp.watches.Load())
	}
	if open := cp.openWatches.Load(); open != 20 {
		t.Errorf("%d watches open, want 20", open)
	}
}

// TestIntegrationProbeVersionMetadataOnly: ProbeVersion returns the
// resourceVersion Fetch reports, and the Secret's data never crosses the
// wire for it (a metadata-only read).
func TestIntegrationProbeVersionMetadataOnly(t *testing.T) {
	t.Parallel()
	marker := []byte("probe-marker-value-0123456789")
	rv := putSecret(t, "watch", "probed", map[string][]byte{"v": marker})
	cp := newCountingProxy(t, cluster.API.URL)
	p := integrationProvider(t, cp.srv.URL, cluster.Tokens["reader"], Options{})
	got, err := p.ProbeVersion(t.Context(), ref(t, "k8s://watch/probed"))
	if err != nil {
		t.Fatal(err)
	}
	if got != rv {
		t.Errorf("ProbeVersion = %q, want the resourceVersion %q", got, rv)
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if len(cp.bodies) != 1 {
		t.Fatalf("%d responses, want 1", len(cp.bodies))
	}
	if bytes.Contains(cp.bodies[0], marker) || !bytes.Contains(cp.bodies[0], []byte("PartialObjectMetadata")) {
		t.Errorf("the probe's response is not metadata only (%d bytes)", len(cp.bodies[0]))
	}
}
