//go:build linux

package kubenode

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// What the node's missing controllers would do, done on request.

// PodFromTemplate returns the pod a ReplicaSet or Job controller would
// create from template: named name, in namespace, bound to the node (the
// scheduler's part).
func PodFromTemplate(name, namespace string, template corev1.PodTemplateSpec) *corev1.Pod {
	pod := &corev1.Pod{ObjectMeta: *template.ObjectMeta.DeepCopy(), Spec: *template.Spec.DeepCopy()}
	pod.Name, pod.Namespace = name, namespace
	pod.Spec.NodeName = Name
	return pod
}

// PublishEndpoints writes the EndpointSlice of Service namespace/service
// from its Ready pods, as the endpoint-slice controller would. The API
// server calls webhooks at a Service's endpoints, which it reads from
// EndpointSlices (--enable-aggregator-routing).
func (n *Node) PublishEndpoints(ctx context.Context, namespace, service string) error {
	svc, err := Get[corev1.Service](ctx, n.Client, "Service", namespace, service)
	if err != nil {
		return err
	}
	pods, err := List[corev1.Pod](ctx, n.Client, "Pod", namespace, labels.SelectorFromSet(svc.Spec.Selector).String())
	if err != nil {
		return err
	}
	var eps []discoveryv1.Endpoint
	var ports []discoveryv1.EndpointPort
	for _, p := range pods {
		if p.Status.PodIP == "" || !podReady(&p) {
			continue
		}
		ref := &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID}
		eps = append(eps, discoveryv1.Endpoint{Addresses: []string{p.Status.PodIP}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}, NodeName: &p.Spec.NodeName, TargetRef: ref})
		if ports != nil {
			continue
		}
		for _, sp := range svc.Spec.Ports {
			port, err := targetPort(&p, sp.TargetPort)
			if err != nil {
				return fmt.Errorf("service %s/%s: %w", namespace, service, err)
			}
			ports = append(ports, discoveryv1.EndpointPort{Name: ptr(sp.Name), Port: ptr(port), Protocol: ptr(sp.Protocol)})
		}
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: service + "-kubenode", Namespace: namespace, Labels: map[string]string{
			discoveryv1.LabelServiceName: service,
			discoveryv1.LabelManagedBy:   "kubenode",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
		Ports:       ports,
	}
	return upsert(ctx, n.Client, "EndpointSlice", namespace, slice)
}

func upsert[T any](ctx context.Context, c *Client, kind, namespace string, obj *T) error {
	u, err := toUnstructured(kind, obj)
	if err != nil {
		return err
	}
	return c.Apply(ctx, namespace, u)
}

func targetPort(p *corev1.Pod, tp intstr.IntOrString) (int32, error) {
	if tp.Type == intstr.Int {
		return tp.IntVal, nil
	}
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == tp.StrVal {
				return cp.ContainerPort, nil
			}
		}
	}
	return 0, fmt.Errorf("pod %s has no port named %s", p.Name, tp.StrVal)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// DeletePods deletes every pod of namespace (the tests' pods are not
// owned by controllers that would make new ones).
func (n *Node) DeletePods(ctx context.Context, namespace string) error {
	pods, err := List[corev1.Pod](ctx, n.Client, "Pod", namespace, "")
	if err != nil {
		return err
	}
	var errs []string
	for _, p := range pods {
		if err := n.Client.Delete(ctx, "Pod", namespace, p.Name, ptr(int64(0))); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("delete pods: %s", strings.Join(errs, "; "))
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
