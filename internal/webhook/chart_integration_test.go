//go:build integration

package webhook

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/keyward/keyward/internal/testenv"
)

// resources maps the kinds of the chart and the examples to their
// resource and whether they are namespaced.
var resources = map[string]struct {
	gvr        schema.GroupVersionResource
	namespaced bool
}{
	"Namespace":                    {nsGVR, false},
	"ServiceAccount":               {saGVR, true},
	"Secret":                       {schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, true},
	"ConfigMap":                    {schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, true},
	"Service":                      {schema.GroupVersionResource{Version: "v1", Resource: "services"}, true},
	"Role":                         {schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"}, true},
	"RoleBinding":                  {schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"}, true},
	"ClusterRole":                  {schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}, false},
	"ClusterRoleBinding":           {schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"}, false},
	"Deployment":                   {deploymentsGVR, true},
	"DaemonSet":                    {schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}, true},
	"Job":                          {jobsGVR, true},
	"CronJob":                      {schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"}, true},
	"PodDisruptionBudget":          {schema.GroupVersionResource{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"}, true},
	"MutatingWebhookConfiguration": {mwcGVR, false},
}

// decodeDocs splits multi-document YAML into objects.
func decodeDocs(t *testing.T, b []byte) []*unstructured.Unstructured {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var out []*unstructured.Unstructured
	for {
		d, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := sigsyaml.Unmarshal(d, &m); err != nil {
			t.Fatal(err)
		}
		if len(m) > 0 {
			out = append(out, &unstructured.Unstructured{Object: m})
		}
	}
}

// apply creates obj (in namespace ns when it has none and is namespaced),
// with a server-side dry run when dryRun, and strict field validation.
func apply(ctx context.Context, obj *unstructured.Unstructured, ns string, dryRun bool) (*unstructured.Unstructured, error) {
	res, ok := resources[obj.GetKind()]
	if !ok {
		return nil, fmt.Errorf("unexpected kind %s", obj.GetKind())
	}
	opts := metav1.CreateOptions{FieldValidation: "Strict"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	if !res.namespaced {
		return dyn.Resource(res.gvr).Create(ctx, obj, opts)
	}
	if obj.GetNamespace() != "" {
		ns = obj.GetNamespace()
	}
	return dyn.Resource(res.gvr).Namespace(ns).Create(ctx, obj, opts)
}

func applyFile(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range decodeDocs(t, b) {
		if _, err := apply(t.Context(), obj, "", false); err != nil {
			t.Fatalf("%s: %v", filepath.Base(path), err)
		}
	}
}

// TestE2EExamples sends the pod of each example workload through the API
// server and the webhook (a dry-run create: nothing is stored) and checks
// what was injected.
func TestE2EExamples(t *testing.T) {
	t.Parallel()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "examples", "kubernetes")
	for _, f := range []string{"namespace.yaml", "rbac.yaml", "configmap.yaml"} {
		applyFile(t, filepath.Join(dir, f))
	}
	for _, tt := range []struct {
		file      string
		template  []string
		wantInits string
	}{
		{"deployment.yaml", []string{"spec", "template"}, "keyward-init,keyward-agent"},
		{"job.yaml", []string{"spec", "template"}, "keyward-init,keyward-agent"},
		{"cronjob.yaml", []string{"spec", "jobTemplate", "spec", "template"}, "keyward-install"},
	} {
		b, err := os.ReadFile(filepath.Join(dir, "webhook", tt.file))
		if err != nil {
			t.Fatal(err)
		}
		docs := decodeDocs(t, b)
		if len(docs) != 1 {
			t.Fatalf("%s: %d documents, want 1", tt.file, len(docs))
		}
		if _, err := apply(t.Context(), docs[0], "", true); err != nil {
			t.Errorf("%s: server-side dry run: %v", tt.file, err)
		}
		tmpl, ok, _ := unstructured.NestedMap(docs[0].Object, tt.template...)
		if !ok {
			t.Fatalf("%s: no pod template", tt.file)
		}
		pod := &unstructured.Unstructured{Object: tmpl}
		pod.SetAPIVersion("v1")
		pod.SetKind("Pod")
		pod.SetGenerateName(docs[0].GetName() + "-")
		u, err := dyn.Resource(podsGVR).Namespace(docs[0].GetNamespace()).Create(t.Context(), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
		if err != nil {
			t.Errorf("%s: the webhook or the API server refused its pod: %v", tt.file, err)
			continue
		}
		inits, _, _ := unstructured.NestedSlice(u.Object, "spec", "initContainers")
		var got []string
		for _, c := range inits {
			got = append(got, c.(map[string]any)["name"].(string))
		}
		if strings.Join(got, ",") != tt.wantInits {
			t.Errorf("%s: injected init containers %v, want %s", tt.file, got, tt.wantInits)
		}
		// The Deployment's keyward.io/memory-limit reaches keyward's containers.
		if want := pod.GetAnnotations()[AnnotationMemoryLimit]; tt.file == "deployment.yaml" {
			for _, c := range inits {
				if lim, _, _ := unstructured.NestedString(c.(map[string]any), "resources", "limits", "memory"); lim != want {
					t.Errorf("%s: %s's memory limit %q, want the annotation's %q", tt.file, c.(map[string]any)["name"], lim, want)
				}
			}
		}
	}
}

// helm runs the helm binary of test/servers/helm.sh.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, err := testenv.Binary("helm.sh")
	if err != nil {
		t.Fatalf("helm: %v", err)
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// TestChart lints the chart, checks that values.schema.json rejects a
// wrong value, renders it with several value sets and has the real API
// server accept every rendered object (server-side dry run, strict field
// validation). cert-manager's Issuer and Certificate are only rendered:
// this API server has no cert-manager CRDs.
func TestChart(t *testing.T) {
	t.Parallel()
	const chart, ns = "charts/keyward", "keyward-chart"
	if _, err := helm(t, "lint", "--strict", "--kube-version", "1.36.3", chart); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"webhook.failurePolicy=Maybe", "replicaCount=0", "unknownKey=1", "tls.lifetime=1year",
		"injector.resources.limits.memory=lots", "injector.resources.limits.gpu=1", "serviceMonitor.interval=soon", "extraArgs={verbose}", "extraEnv[0].value=1"} {
		if _, err := helm(t, "lint", "--kube-version", "1.36.3", chart, "--set", bad); err == nil {
			t.Errorf("helm lint accepted --set %s", bad)
		}
	}
	if err := createObj(t.Context(), nsGVR, "", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name   string
		set    []string
		policy string
		kinds  string
	}{
		{"defaults", nil, "Fail", "ClusterRole,ClusterRoleBinding,Deployment,MutatingWebhookConfiguration,PodDisruptionBudget,Role,RoleBinding,Service,ServiceAccount"},
		{"cert-manager", []string{"certManager.enabled=true"}, "Fail", "Certificate,ClusterRole,ClusterRoleBinding,Deployment,Issuer,MutatingWebhookConfiguration,PodDisruptionBudget,Service,ServiceAccount"},
		{"ignore and object selector", []string{"webhook.failurePolicy=Ignore", "string:webhook.objectSelector.matchLabels.keyward\\.io/inject=true", "podDisruptionBudget.enabled=false", "image.tag=v9.9.9"}, "Ignore", "ClusterRole,ClusterRoleBinding,Deployment,MutatingWebhookConfiguration,Role,RoleBinding,Service,ServiceAccount"},
		{"operations", []string{"serviceMonitor.enabled=true", "string:serviceMonitor.labels.release=prometheus", "extraArgs={--log-level=debug}", "extraEnv[0].name=GOMAXPROCS", "string:extraEnv[0].value=2",
			"injector.resources.limits.cpu=500m", "injector.resources.requests.memory=32Mi"}, "Fail", "ClusterRole,ClusterRoleBinding,Deployment,MutatingWebhookConfiguration,PodDisruptionBudget,Role,RoleBinding,Service,ServiceAccount,ServiceMonitor"},
		{"no metrics", []string{"metrics.enabled=false"}, "Fail", "ClusterRole,ClusterRoleBinding,Deployment,MutatingWebhookConfiguration,PodDisruptionBudget,Role,RoleBinding,Service,ServiceAccount"},
		{"csi provider", []string{"csiProvider.enabled=true", "csiProvider.nodeIdentityKinds={file}"}, "Fail", "ClusterRole,ClusterRole,ClusterRoleBinding,ClusterRoleBinding,ClusterRoleBinding,DaemonSet,Deployment,MutatingWebhookConfiguration,PodDisruptionBudget,Role,RoleBinding,Service,ServiceAccount,ServiceAccount"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"template", "kw", chart, "--namespace", ns, "--kube-version", "1.36.3"}
			for _, s := range tt.set {
				if v, ok := strings.CutPrefix(s, "string:"); ok {
					args = append(args, "--set-string", v)
					continue
				}
				args = append(args, "--set", s)
			}
			out, err := helm(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			docs := decodeDocs(t, []byte(out))
			var kinds []string
			for _, d := range docs {
				kinds = append(kinds, d.GetKind())
				switch d.GetKind() {
				case "Certificate", "Issuer", "ServiceMonitor":
					continue // no CRDs on this API server
				case "Deployment":
					if r, _, _ := unstructured.NestedFieldNoCopy(d.Object, "spec", "replicas"); fmt.Sprint(r) != "2" {
						t.Errorf("replicas %v, want 2", r)
					}
					if tsc, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "topologySpreadConstraints"); len(tsc) == 0 {
						t.Error("no topologySpreadConstraints")
					}
					cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
					c := cs[0].(map[string]any)
					if strings.Contains(strings.Join(tt.set, " "), "image.tag=v9.9.9") && c["image"] != "keyward:v9.9.9" {
						t.Errorf("image %v, want the tag value", c["image"])
					}
					checkWebhookArgs(t, c)
				case "DaemonSet":
					cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
					var args []string
					for _, a := range cs[0].(map[string]any)["args"].([]any) {
						args = append(args, a.(string))
					}
					cmd := exec.CommandContext(t.Context(), keywardBin, append(args, "--help")...)
					cmd.Env = []string{"PATH=/usr/bin:/bin"}
					if out, err := cmd.CombinedOutput(); err != nil {
						t.Errorf("keyward %s --help: %v\n%s", strings.Join(args, " "), err, out)
					}
				case "MutatingWebhookConfiguration":
					whs, _, _ := unstructured.NestedSlice(d.Object, "webhooks")
					wh := whs[0].(map[string]any)
					if wh["failurePolicy"] != tt.policy {
						t.Errorf("failurePolicy %v, want %s", wh["failurePolicy"], tt.policy)
					}
					exprs, _, _ := unstructured.NestedSlice(wh, "namespaceSelector", "matchExpressions")
					if len(exprs) == 0 || fmt.Sprint(exprs[0]) != fmt.Sprint(map[string]any{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": []any{ns}}) {
						t.Errorf("namespaceSelector %v does not exclude %s", exprs, ns)
					}
				}
				if _, err := apply(t.Context(), d, ns, true); err != nil {
					t.Errorf("%s %s: server-side dry run: %v", d.GetKind(), d.GetName(), err)
				}
			}
			slices.Sort(kinds)
			if got := strings.Join(kinds, ","); got != tt.kinds {
				t.Errorf("rendered kinds %s, want %s", got, tt.kinds)
			}
		})
	}
}

// TestChartUnittest runs the chart's helm-unittest suites (charts/keyward/tests).
func TestChartUnittest(t *testing.T) {
	t.Parallel()
	bin, err := testenv.Binary("helm-unittest.sh")
	if err != nil {
		t.Fatalf("helm-unittest: %v", err)
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), bin, "charts/keyward")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helm-unittest: %v\n%s", err, out)
	}
}

// checkWebhookArgs runs the built keyward with the rendered container's
// arguments and --help, which parses every flag (an unknown flag, a bad
// duration or IP fails) and stops before anything starts; and it checks
// the injected containers' resources the chart passes as the webhook
// will at start.
func checkWebhookArgs(t *testing.T, c map[string]any) {
	t.Helper()
	var args []string
	var r Resources
	fields := map[string]*string{
		"--injector-cpu-request=": &r.CPURequest, "--injector-memory-request=": &r.MemoryRequest,
		"--injector-cpu-limit=": &r.CPULimit, "--injector-memory-limit=": &r.MemoryLimit,
	}
	for _, a := range c["args"].([]any) {
		args = append(args, a.(string))
		for prefix, f := range fields {
			if v, ok := strings.CutPrefix(a.(string), prefix); ok {
				*f = v
			}
		}
	}
	cmd := exec.CommandContext(t.Context(), keywardBin, append(args, "--help")...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("keyward %s --help: %v\n%s", strings.Join(args, " "), err, out)
	}
	if _, err := r.Requirements(); err != nil {
		t.Errorf("the chart's injector resources: %v", err)
	}
}
