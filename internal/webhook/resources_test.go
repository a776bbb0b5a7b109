package webhook

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func quantities(rr corev1.ResourceRequirements) string {
	q := func(l corev1.ResourceList, n corev1.ResourceName) string {
		if v, ok := l[n]; ok {
			return v.String()
		}
		return "-"
	}
	return strings.Join([]string{q(rr.Requests, corev1.ResourceCPU), q(rr.Requests, corev1.ResourceMemory), q(rr.Limits, corev1.ResourceCPU), q(rr.Limits, corev1.ResourceMemory)}, " ")
}

func TestResourcesRequirements(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		r       Resources
		want    string // cpu request, memory request, cpu limit, memory limit
		wantErr string
	}{
		{DefaultResources, "10m 16Mi - 64Mi", ""},
		{Resources{CPURequest: "0.1", MemoryLimit: "1Gi"}, "100m - - 1Gi", ""},
		{Resources{}, "- - - -", ""},
		{Resources{CPURequest: "lots"}, "", `cpu request: "lots" is not a quantity`},
		{Resources{MemoryLimit: "0"}, "", `memory limit: "0" is not positive`},
		{Resources{MemoryRequest: "128Mi", MemoryLimit: "64Mi"}, "", "memory request 128Mi is above the memory limit 64Mi"},
		{Resources{CPURequest: "2", CPULimit: "500m"}, "", "cpu request 2 is above the cpu limit 500m"},
	} {
		rr, err := tt.r.Requirements()
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%+v: error %v, want %q", tt.r, err, tt.wantErr)
		case tt.wantErr == "" && err != nil:
			t.Errorf("%+v: %v", tt.r, err)
		case tt.wantErr == "" && quantities(rr) != tt.want:
			t.Errorf("%+v: %s, want %s", tt.r, quantities(rr), tt.want)
		}
	}
}

// TestMutateResources: the webhook's resources, and a pod's annotations
// overriding them one by one, reach every container keyward adds; a bad
// annotation is denied, naming it.
func TestMutateResources(t *testing.T) {
	t.Parallel()
	custom, err := Resources{CPURequest: "20m", MemoryRequest: "32Mi", CPULimit: "1", MemoryLimit: "256Mi"}.Requirements()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name        string
		opts        *corev1.ResourceRequirements
		annotations map[string]string
		want        string
		deny        []string
	}{
		{name: "defaults", want: "10m 16Mi - 64Mi"},
		{name: "webhook's resources", opts: &custom, want: "20m 32Mi 1 256Mi"},
		{name: "every annotation", annotations: map[string]string{
			AnnotationCPURequest: "50m", AnnotationMemoryRequest: "64Mi", AnnotationCPULimit: "500m", AnnotationMemoryLimit: "128Mi",
		}, want: "50m 64Mi 500m 128Mi"},
		{name: "one annotation over the webhook's", opts: &custom, annotations: map[string]string{AnnotationMemoryLimit: "1Gi"}, want: "20m 32Mi 1 1Gi"},
		{name: "exec mode", annotations: map[string]string{AnnotationMode: "exec", AnnotationCPURequest: "5m"}, want: "5m 16Mi - 64Mi"},
		{name: "not a quantity", annotations: map[string]string{AnnotationMemoryLimit: "lots"}, deny: []string{"annotation " + AnnotationMemoryLimit, `"lots" is not a quantity`}},
		{name: "not positive", annotations: map[string]string{AnnotationCPURequest: "-1"}, deny: []string{"annotation " + AnnotationCPURequest, "not positive"}},
		{name: "request above the default limit", annotations: map[string]string{AnnotationMemoryRequest: "128Mi"}, deny: []string{
			"annotation " + AnnotationMemoryRequest + " 128Mi is above the webhook's default memory limit 64Mi", "raise the limit with " + AnnotationCPULimit + " or " + AnnotationMemoryLimit}},
		{name: "request above the annotated limit", annotations: map[string]string{AnnotationCPURequest: "2", AnnotationCPULimit: "1"}, deny: []string{
			"annotation " + AnnotationCPURequest + " 2 is above the annotation " + AnnotationCPULimit + " 1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pod := testPod(inject(tt.annotations))
			patch, err := NewMutator(Options{Namespace: "keyward", Resources: tt.opts}, testConfigMaps()).Mutate(context.Background(), "app", pod)
			if tt.deny != nil {
				var d *Denial
				if !errors.As(err, &d) {
					t.Fatalf("Mutate = %v, want a denial", err)
				}
				for _, w := range tt.deny {
					if !strings.Contains(d.Msg, w) {
						t.Errorf("denial %q does not say %q", d.Msg, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			out := applyPatch(t, pod, patch)
			var n int
			for _, c := range out.Spec.InitContainers {
				if !strings.HasPrefix(c.Name, "keyward-") {
					if got := quantities(c.Resources); got != "- - - -" {
						t.Errorf("the app's own init container %s got resources %s", c.Name, got)
					}
					continue
				}
				n++
				if got := quantities(c.Resources); got != tt.want {
					t.Errorf("%s: resources %s, want %s", c.Name, got, tt.want)
				}
			}
			if n == 0 {
				t.Fatal("no keyward container injected")
			}
			if got := quantities(out.Spec.Containers[0].Resources); got != "- - - -" {
				t.Errorf("the app container's resources were changed: %s", got)
			}
		})
	}
}
