package webhook

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Annotations that set, for one pod, the requests and limits of the
// containers keyward adds (each a Kubernetes quantity: "50m", "128Mi").
const (
	AnnotationCPURequest    = "keyward.io/cpu-request"
	AnnotationMemoryRequest = "keyward.io/memory-request"
	AnnotationCPULimit      = "keyward.io/cpu-limit"
	AnnotationMemoryLimit   = "keyward.io/memory-limit"
)

// Resources are the requests and limits of keyward's containers, as
// Kubernetes quantities; "" means none.
type Resources struct {
	CPURequest, MemoryRequest, CPULimit, MemoryLimit string
}

// DefaultResources are what keyward's containers get unless the webhook
// or the pod says otherwise: a render uses a few MiB.
var DefaultResources = Resources{CPURequest: "10m", MemoryRequest: "16Mi", MemoryLimit: "64Mi"}

// resourceField is one of the four quantities.
type resourceField struct {
	what       string // "cpu request", in errors
	annotation string
	name       corev1.ResourceName
	limit      bool
	value      func(Resources) string
}

var resourceFields = []resourceField{
	{"cpu request", AnnotationCPURequest, corev1.ResourceCPU, false, func(r Resources) string { return r.CPURequest }},
	{"memory request", AnnotationMemoryRequest, corev1.ResourceMemory, false, func(r Resources) string { return r.MemoryRequest }},
	{"cpu limit", AnnotationCPULimit, corev1.ResourceCPU, true, func(r Resources) string { return r.CPULimit }},
	{"memory limit", AnnotationMemoryLimit, corev1.ResourceMemory, true, func(r Resources) string { return r.MemoryLimit }},
}

func (f resourceField) list(rr *corev1.ResourceRequirements) *corev1.ResourceList {
	if f.limit {
		return &rr.Limits
	}
	return &rr.Requests
}

// parseQuantity parses a positive quantity.
func parseQuantity(v string) (resource.Quantity, error) {
	q, err := resource.ParseQuantity(v)
	if err != nil {
		return q, fmt.Errorf("%q is not a quantity (like 50m, 0.5, 64Mi, 1G)", v)
	}
	if q.Sign() <= 0 {
		return q, fmt.Errorf("%q is not positive", v)
	}
	return q, nil
}

// Requirements parses r into container resources, checking that no
// request is above its limit. Errors name the field and the value.
func (r Resources) Requirements() (corev1.ResourceRequirements, error) {
	var rr corev1.ResourceRequirements
	for _, f := range resourceFields {
		v := f.value(r)
		if v == "" {
			continue
		}
		q, err := parseQuantity(v)
		if err != nil {
			return rr, fmt.Errorf("%s: %w", f.what, err)
		}
		l := f.list(&rr)
		if *l == nil {
			*l = corev1.ResourceList{}
		}
		(*l)[f.name] = q
	}
	return rr, checkRequestsWithinLimits(rr, func(f resourceField) string { return f.what })
}

// checkRequestsWithinLimits names, with name, the first request above
// its limit.
func checkRequestsWithinLimits(rr corev1.ResourceRequirements, name func(resourceField) string) error {
	for _, f := range resourceFields[:2] {
		req, okReq := rr.Requests[f.name]
		lim, okLim := rr.Limits[f.name]
		if okReq && okLim && req.Cmp(lim) > 0 {
			limField := resourceFields[2]
			if f.name == corev1.ResourceMemory {
				limField = resourceFields[3]
			}
			return fmt.Errorf("%s %s is above the %s %s", name(f), req.String(), name(limField), lim.String())
		}
	}
	return nil
}

// podResources returns the resources of keyward's containers for pod:
// base with the pod's resource annotations applied, or a *Denial naming
// the annotation at fault.
func podResources(base corev1.ResourceRequirements, pod *corev1.Pod) (corev1.ResourceRequirements, error) {
	rr := *base.DeepCopy()
	set := map[string]bool{}
	for _, f := range resourceFields {
		v, ok := pod.Annotations[f.annotation]
		if !ok {
			continue
		}
		q, err := parseQuantity(v)
		if err != nil {
			return rr, deny("annotation %s: %v", f.annotation, err)
		}
		l := f.list(&rr)
		if *l == nil {
			*l = corev1.ResourceList{}
		}
		(*l)[f.name] = q
		set[f.annotation] = true
	}
	err := checkRequestsWithinLimits(rr, func(f resourceField) string {
		if set[f.annotation] {
			return "annotation " + f.annotation
		}
		return "webhook's default " + f.what
	})
	if err != nil {
		return rr, deny("%v: raise the limit with %s or %s, or lower the request", err, AnnotationCPULimit, AnnotationMemoryLimit)
	}
	return rr, nil
}
