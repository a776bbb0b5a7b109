package csiprovider

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

const examplesDir = "../../examples/kubernetes/csi"

// exampleDocs decodes every document of the examples' manifests.
func exampleDocs(t testing.TB) map[string][]map[string]any {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples in %s (%v)", examplesDir, err)
	}
	out := map[string][]map[string]any{}
	for _, f := range files {
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
			if len(obj) > 0 {
				out[filepath.Base(f)] = append(out[filepath.Base(f)], obj)
			}
		}
	}
	return out
}

// exampleConfig is the keyward config of a SecretProviderClass.
func exampleConfig(obj map[string]any) (string, bool) {
	if obj["kind"] != "SecretProviderClass" {
		return "", false
	}
	spec, _ := obj["spec"].(map[string]any)
	params, _ := spec["parameters"].(map[string]any)
	cfg, _ := params[ConfigKey].(string)
	return cfg, spec["provider"] == "keyward"
}

// TestExamples: every SecretProviderClass of examples/kubernetes/csi is
// for provider keyward and carries a config that csi-provider accepts,
// and every pod mounts one of them through the driver.
func TestExamples(t *testing.T) {
	classes := map[string]bool{}
	for file, docs := range exampleDocs(t) {
		for _, obj := range docs {
			cfg, ok := exampleConfig(obj)
			if obj["kind"] != "SecretProviderClass" {
				continue
			}
			if !ok {
				t.Errorf("%s: a SecretProviderClass not for provider keyward", file)
				continue
			}
			attrs, _ := json.Marshal(map[string]string{ConfigKey: cfg})
			if _, err := parseRequest(string(attrs), ""); err != nil {
				t.Errorf("%s: %v", file, err)
			}
			classes[obj["metadata"].(map[string]any)["name"].(string)] = true
		}
	}
	for file, docs := range exampleDocs(t) {
		for _, obj := range docs {
			if obj["kind"] != "Pod" {
				continue
			}
			b, _ := json.Marshal(obj)
			var pod struct {
				Spec struct {
					Volumes []struct {
						CSI *struct {
							Driver           string            `json:"driver"`
							VolumeAttributes map[string]string `json:"volumeAttributes"`
						} `json:"csi"`
					} `json:"volumes"`
				} `json:"spec"`
			}
			if err := json.Unmarshal(b, &pod); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, v := range pod.Spec.Volumes {
				if v.CSI != nil && v.CSI.Driver == "secrets-store.csi.k8s.io" && classes[v.CSI.VolumeAttributes["secretProviderClass"]] {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: a pod without a secrets-store volume of an example SecretProviderClass", file)
			}
		}
	}
}
