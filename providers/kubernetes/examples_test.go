package kubernetes

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/keyward/keyward/internal/config"
)

// examplesDir holds the Kubernetes example: keyward.yaml and manifests.
const examplesDir = "../../examples/kubernetes"

// exampleManifests decodes every document of every *.yaml file in
// examples/kubernetes except keyward.yaml (which is keyward's config).
func exampleManifests(t *testing.T) map[string][]*unstructured.Unstructured {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*unstructured.Unstructured{}
	for _, f := range files {
		if filepath.Base(f) == "keyward.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for {
			var obj map[string]any
			if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if obj == nil {
				continue
			}
			out[filepath.Base(f)] = append(out[filepath.Base(f)], &unstructured.Unstructured{Object: obj})
		}
	}
	if len(out) == 0 {
		t.Fatal("no manifests in " + examplesDir)
	}
	return out
}

// TestExampleConsistent checks what a server-side dry run cannot: the
// ConfigMap carries keyward.yaml verbatim, every Secret that keyward.yaml
// references is one the Role names in resourceNames (and only those), in
// the Role's namespace, and the pods mount the ConfigMap and run as the
// ServiceAccount the RoleBinding binds.
func TestExampleConsistent(t *testing.T) {
	t.Parallel()
	cfgPath := filepath.Join(examplesDir, "keyward.yaml")
	cfg, err := config.Load(t.Context(), cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	docs := exampleManifests(t)
	find := func(file, kind string) *unstructured.Unstructured {
		t.Helper()
		for _, d := range docs[file] {
			if d.GetKind() == kind {
				return d
			}
		}
		t.Fatalf("%s has no %s", file, kind)
		return nil
	}

	cm := find("configmap.yaml", "ConfigMap")
	if got, _, _ := unstructured.NestedString(cm.Object, "data", "keyward.yaml"); got != string(raw) {
		t.Errorf("configmap.yaml's keyward.yaml differs from keyward.yaml")
	}

	var referenced []string
	for name, s := range cfg.Secrets {
		if s.Ref.Scheme != KindName {
			continue
		}
		ns, secret, err := SplitRef(s.Ref)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if ns != "payments" {
			t.Errorf("%s: namespace %s, the Role is for payments", name, ns)
		}
		if !slices.Contains(referenced, secret) {
			referenced = append(referenced, secret)
		}
	}
	role := find("rbac.yaml", "Role")
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	if len(rules) != 1 {
		t.Fatalf("Role has %d rules, want exactly 1", len(rules))
	}
	rule := rules[0].(map[string]any)
	names, _, _ := unstructured.NestedStringSlice(rule, "resourceNames")
	verbs, _, _ := unstructured.NestedStringSlice(rule, "verbs")
	slices.Sort(names)
	slices.Sort(referenced)
	slices.Sort(verbs)
	if !slices.Equal(names, referenced) {
		t.Errorf("Role resourceNames %v, keyward.yaml references %v", names, referenced)
	}
	if !slices.Equal(verbs, []string{"get", "list", "watch"}) {
		t.Errorf("Role verbs %v, want exactly get, list, watch", verbs)
	}

	sa := find("rbac.yaml", "ServiceAccount").GetName()
	subjects, _, _ := unstructured.NestedSlice(find("rbac.yaml", "RoleBinding").Object, "subjects")
	if len(subjects) != 1 || subjects[0].(map[string]any)["name"] != sa {
		t.Errorf("RoleBinding subjects %v, want the ServiceAccount %s", subjects, sa)
	}
	for _, file := range []string{"init-pod.yaml", "sidecar-pod.yaml"} {
		pod := find(file, "Pod")
		if got, _, _ := unstructured.NestedString(pod.Object, "spec", "serviceAccountName"); got != sa {
			t.Errorf("%s runs as ServiceAccount %q, want %q", file, got, sa)
		}
		vols, _, _ := unstructured.NestedSlice(pod.Object, "spec", "volumes")
		var usesCM, memory bool
		for _, v := range vols {
			m := v.(map[string]any)
			if n, _, _ := unstructured.NestedString(m, "configMap", "name"); n == cm.GetName() {
				usesCM = true
			}
			if med, _, _ := unstructured.NestedString(m, "emptyDir", "medium"); med == "Memory" {
				memory = true
			}
		}
		if !usesCM || !memory {
			t.Errorf("%s: mounts ConfigMap %s: %v; has an in-memory emptyDir: %v", file, cm.GetName(), usesCM, memory)
		}
	}
}
