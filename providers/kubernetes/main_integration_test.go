//go:build integration

package kubernetes

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers"
)

// The integration tests run against a real etcd and kube-apiserver started
// once for the package by TestMain (internal/testenv). Static-token users:
// "admin" (system:masters) for setup, "reader" (get/list/watch on Secrets
// of the namespaces named in readerNamespaces, by RoleBinding) as the
// provider's usual identity, and "restricted" (no RBAC rule at all).

var (
	cluster *testenv.Kube
	adminRC *rest.Config
	dyn     dynamic.Interface
)

var readerNamespaces = []string{"conformance", "watch", "restart", "bench"}

var (
	secretsGVR = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	nsGVR      = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	saGVR      = schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "keyward-k8s-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	k, err := testenv.StartKube(ctx, dir, testenv.KubeUser{Name: "reader"}, testenv.KubeUser{Name: "restricted"})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubernetes integration tests: cannot start etcd and kube-apiserver: %v\n", err)
		return 1
	}
	defer k.Stop()
	cluster = k
	if err := setup(); err != nil {
		fmt.Fprintf(os.Stderr, "kubernetes integration tests: setup: %v\n", err)
		return 1
	}
	return m.Run()
}

// restConfig returns a client config for server with token.
func restConfig(server *testenv.APIServer, token string) *rest.Config {
	return &rest.Config{
		Host:            server.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: cluster.CAData},
		QPS:             100,
		Burst:           200,
	}
}

func setup() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adminRC = restConfig(cluster.API, cluster.AdminToken)
	var err error
	if dyn, err = dynamic.NewForConfig(adminRC); err != nil {
		return err
	}
	for _, ns := range append(readerNamespaces, "denied") {
		if err := ensureNamespace(ctx, ns); err != nil {
			return err
		}
	}
	for _, ns := range readerNamespaces {
		for _, doc := range []string{
			`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"secret-reader","namespace":"%s"},
			  "rules":[{"apiGroups":[""],"resources":["secrets"],"verbs":["get","list","watch"]}]}`,
			`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"secret-reader","namespace":"%s"},
			  "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"secret-reader"},
			  "subjects":[{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"reader"}]}`,
		} {
			if _, err := apply(ctx, []byte(fmt.Sprintf(doc, ns)), false); err != nil {
				return err
			}
		}
	}
	return nil
}

func ensureNamespace(ctx context.Context, ns string) error {
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}
	_, err := dyn.Resource(nsGVR).Create(ctx, obj, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// resources maps the kinds the tests and examples use to their API
// resource (instead of a discovery-based RESTMapper).
var resources = map[string]struct {
	name          string
	clusterScoped bool
}{
	"Namespace":      {"namespaces", true},
	"Secret":         {"secrets", false},
	"ConfigMap":      {"configmaps", false},
	"ServiceAccount": {"serviceaccounts", false},
	"Role":           {"roles", false},
	"RoleBinding":    {"rolebindings", false},
	"Pod":            {"pods", false},
}

// apply server-side-applies one manifest (JSON or YAML) as admin, with
// strict field validation, for real or as a dry run.
func apply(ctx context.Context, doc []byte, dryRun bool) (*unstructured.Unstructured, error) {
	obj := &unstructured.Unstructured{}
	if err := yamlToObject(doc, &obj.Object); err != nil {
		return nil, err
	}
	return applyObject(ctx, obj, dryRun)
}

func applyObject(ctx context.Context, obj *unstructured.Unstructured, dryRun bool) (*unstructured.Unstructured, error) {
	gvk := obj.GroupVersionKind()
	res, ok := resources[gvk.Kind]
	if !ok {
		return nil, fmt.Errorf("%s: kind not in the test's resource table; add it", gvk)
	}
	gvr := gvk.GroupVersion().WithResource(res.name)
	body, err := obj.MarshalJSON()
	if err != nil {
		return nil, err
	}
	opts := metav1.PatchOptions{FieldManager: "keyward-test", Force: new(true), FieldValidation: "Strict"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	var ri dynamic.ResourceInterface = dyn.Resource(gvr)
	if !res.clusterScoped {
		ri = dyn.Resource(gvr).Namespace(obj.GetNamespace())
	}
	return ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, body, opts)
}

// putSecret creates or replaces a Secret as admin and returns its
// resourceVersion.
func putSecret(t testing.TB, ns, name string, data map[string][]byte) string {
	t.Helper()
	enc := map[string]any{}
	for k, v := range data {
		enc[k] = base64.StdEncoding.EncodeToString(v)
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"type":     "Opaque",
		"data":     enc,
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ri := dyn.Resource(secretsGVR).Namespace(ns)
	out, err := ri.Create(ctx, obj, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// Replace, not merge: a key left out is removed.
		out, err = ri.Update(ctx, obj, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatalf("put secret %s/%s: %v", ns, name, err)
	}
	return out.GetResourceVersion()
}

func deleteSecret(t testing.TB, ns, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := dyn.Resource(secretsGVR).Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("delete secret %s/%s: %v", ns, name, err)
	}
}

// kubeconfigFor writes a kubeconfig for the API server at url and token
// into t's temp directory and returns its path.
func kubeconfigFor(t testing.TB, url, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(p, cluster.Kubeconfig(url, token), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// integrationProvider returns a provider configured through a kubeconfig,
// as a user would, for the API server at url and token; closed when t
// ends.
func integrationProvider(t testing.TB, url, token string, opts Options) *Provider {
	t.Helper()
	opts.Kubeconfig = kubeconfigFor(t, url, token)
	p, err := New(opts, func(string) string { return "" }, "", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// testLogger logs at debug level through t.Log (shown with -v or when the
// test fails).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// watchRecorder runs Watch in the background and records what it reports,
// with the time of each report.
type watchRecorder struct {
	mu     sync.Mutex
	events []watchEvent
	notify chan struct{}
	done   chan error
	cancel context.CancelFunc
}

type watchEvent struct {
	path string
	at   time.Time
}

func startWatch(t testing.TB, p *Provider, refs ...string) *watchRecorder {
	t.Helper()
	var rs []providers.Ref
	for _, s := range refs {
		r, err := providers.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &watchRecorder{notify: make(chan struct{}, 1), done: make(chan error, 1), cancel: cancel}
	go func() {
		w.done <- p.Watch(ctx, rs, func(r providers.Ref) {
			w.mu.Lock()
			w.events = append(w.events, watchEvent{r.Path, time.Now()})
			w.mu.Unlock()
			select {
			case w.notify <- struct{}{}:
			default:
			}
		})
	}()
	t.Cleanup(func() { _ = w.stop() })
	return w
}

// stop cancels the watch and returns Watch's error.
func (w *watchRecorder) stop() error {
	w.cancel()
	select {
	case err := <-w.done:
		w.done <- err
		return err
	case <-time.After(30 * time.Second):
		return errors.New("Watch did not return within 30s of cancellation")
	}
}

// count returns how many times path was reported.
func (w *watchRecorder) count(path string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, e := range w.events {
		if e.path == path {
			n++
		}
	}
	return n
}

// waitFor waits until path has been reported at least n times in total,
// and returns when the n-th report arrived; it fails t after timeout, or
// when Watch returns.
func (w *watchRecorder) waitFor(t testing.TB, path string, n int, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		seen := 0
		for _, e := range w.events {
			if e.path == path {
				seen++
				if seen == n {
					w.mu.Unlock()
					return e.at
				}
			}
		}
		w.mu.Unlock()
		select {
		case <-w.notify:
		case err := <-w.done:
			w.done <- err
			t.Fatalf("Watch returned while waiting for %s: %v", path, err)
		case <-deadline.C:
			t.Fatalf("%s reported %d times, want %d, after %v", path, seen, n, timeout)
		}
	}
}

// yamlToObject decodes one YAML or JSON document.
func yamlToObject(doc []byte, into *map[string]any) error {
	return sigsyaml.Unmarshal(doc, into)
}
