//go:build linux

package kubenode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// Client is a cluster-admin client of the node's API server: the dynamic
// client with typed helpers (Get, Create, Update, List), manifests
// (Apply) and pod logs. It uses no generated typed clients, which would
// make every test binary that links it much larger.
type Client struct {
	// Dynamic is the dynamic client.
	Dynamic dynamic.Interface
	config  *rest.Config
	http    *http.Client
}

// Resources of the kinds the tests use, by kind.
var Resources = map[string]schema.GroupVersionResource{
	"Namespace":                      {Version: "v1", Resource: "namespaces"},
	"Node":                           {Version: "v1", Resource: "nodes"},
	"Pod":                            {Version: "v1", Resource: "pods"},
	"Secret":                         {Version: "v1", Resource: "secrets"},
	"ConfigMap":                      {Version: "v1", Resource: "configmaps"},
	"ServiceAccount":                 {Version: "v1", Resource: "serviceaccounts"},
	"Service":                        {Version: "v1", Resource: "services"},
	"EndpointSlice":                  {Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"},
	"Role":                           {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
	"RoleBinding":                    {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
	"ClusterRole":                    {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
	"ClusterRoleBinding":             {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
	"Deployment":                     {Group: "apps", Version: "v1", Resource: "deployments"},
	"Job":                            {Group: "batch", Version: "v1", Resource: "jobs"},
	"CronJob":                        {Group: "batch", Version: "v1", Resource: "cronjobs"},
	"PodDisruptionBudget":            {Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"},
	"MutatingWebhookConfiguration":   {Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"},
	"ValidatingWebhookConfiguration": {Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations"},
	"Event":                          {Version: "v1", Resource: "events"},
	"CustomResourceDefinition":       {Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"},
	"CSIDriver":                      {Group: "storage.k8s.io", Version: "v1", Resource: "csidrivers"},
	"CSINode":                        {Group: "storage.k8s.io", Version: "v1", Resource: "csinodes"},
	// The Secrets Store CSI Driver's kinds.
	"SecretProviderClass":          {Group: "secrets-store.csi.x-k8s.io", Version: "v1", Resource: "secretproviderclasses"},
	"SecretProviderClassPodStatus": {Group: "secrets-store.csi.x-k8s.io", Version: "v1", Resource: "secretproviderclasspodstatuses"},
}

// clusterScoped are the kinds without a namespace.
var clusterScoped = map[string]bool{
	"Namespace": true, "Node": true, "ClusterRole": true, "ClusterRoleBinding": true,
	"MutatingWebhookConfiguration": true, "ValidatingWebhookConfiguration": true,
	"CustomResourceDefinition": true, "CSIDriver": true, "CSINode": true,
}

func newClient(cfg *rest.Config) (*Client, error) {
	d, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	h, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	return &Client{Dynamic: d, config: cfg, http: h}, nil
}

func (c *Client) resource(kind, namespace string) (dynamic.ResourceInterface, error) {
	gvr, ok := Resources[kind]
	if !ok {
		return nil, fmt.Errorf("kind %s is not in kubenode.Resources", kind)
	}
	if clusterScoped[kind] {
		return c.Dynamic.Resource(gvr), nil
	}
	return c.Dynamic.Resource(gvr).Namespace(namespace), nil
}

func toUnstructured(kind string, obj any) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	gvr := Resources[kind]
	u.SetAPIVersion(schema.GroupVersion{Group: gvr.Group, Version: gvr.Version}.String())
	u.SetKind(kind)
	return u, nil
}

func fromUnstructured[T any](u *unstructured.Unstructured) (*T, error) {
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Get reads the object kind namespace/name into a T (a k8s.io/api type).
func Get[T any](ctx context.Context, c *Client, kind, namespace, name string) (*T, error) {
	r, err := c.resource(kind, namespace)
	if err != nil {
		return nil, err
	}
	u, err := r.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return fromUnstructured[T](u)
}

// List lists the objects of kind in namespace (all namespaces if empty)
// matching the label selector.
func List[T any](ctx context.Context, c *Client, kind, namespace, selector string) ([]T, error) {
	r, err := c.resource(kind, namespace)
	if err != nil {
		return nil, err
	}
	l, err := r.List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(l.Items))
	for i := range l.Items {
		t, err := fromUnstructured[T](&l.Items[i])
		if err != nil {
			return nil, err
		}
		out = append(out, *t)
	}
	return out, nil
}

// Create creates obj (a pointer to a k8s.io/api type of kind) in
// namespace and returns what the API server stored (or, with
// opts.DryRun, would store).
func Create[T any](ctx context.Context, c *Client, kind, namespace string, obj *T, opts ...metav1.CreateOptions) (*T, error) {
	r, err := c.resource(kind, namespace)
	if err != nil {
		return nil, err
	}
	u, err := toUnstructured(kind, obj)
	if err != nil {
		return nil, err
	}
	var o metav1.CreateOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	u, err = r.Create(ctx, u, o)
	if err != nil {
		return nil, err
	}
	return fromUnstructured[T](u)
}

// Update replaces obj (with its resourceVersion) in namespace.
func Update[T any](ctx context.Context, c *Client, kind, namespace string, obj *T) (*T, error) {
	r, err := c.resource(kind, namespace)
	if err != nil {
		return nil, err
	}
	u, err := toUnstructured(kind, obj)
	if err != nil {
		return nil, err
	}
	u, err = r.Update(ctx, u, metav1.UpdateOptions{})
	if err != nil {
		return nil, err
	}
	return fromUnstructured[T](u)
}

// Patch applies a JSON merge patch to kind namespace/name; subresource
// is "" or, say, "status".
func (c *Client) Patch(ctx context.Context, kind, namespace, name string, patch []byte, subresource ...string) error {
	r, err := c.resource(kind, namespace)
	if err != nil {
		return err
	}
	_, err = r.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}, subresource...)
	return err
}

// Delete deletes kind namespace/name with the grace period given in
// seconds (nil for the object's own).
func (c *Client) Delete(ctx context.Context, kind, namespace, name string, grace *int64) error {
	r, err := c.resource(kind, namespace)
	if err != nil {
		return err
	}
	return r.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: grace})
}

// Decode splits a YAML or JSON stream of manifests into objects, leaving
// out empty documents.
func Decode(manifests []byte) ([]*unstructured.Unstructured, error) {
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifests), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// Apply creates obj, or replaces it when it exists (keeping its
// resourceVersion), in its own namespace or, when it names none,
// namespace.
func (c *Client) Apply(ctx context.Context, namespace string, obj *unstructured.Unstructured) error {
	ns := obj.GetNamespace()
	if ns == "" && !clusterScoped[obj.GetKind()] {
		ns = namespace
		obj.SetNamespace(ns)
	}
	r, err := c.resource(obj.GetKind(), ns)
	if err != nil {
		return err
	}
	cur, err := r.Get(ctx, obj.GetName(), metav1.GetOptions{})
	if err == nil {
		obj.SetResourceVersion(cur.GetResourceVersion())
		_, err = r.Update(ctx, obj, metav1.UpdateOptions{})
	} else {
		_, err = r.Create(ctx, obj, metav1.CreateOptions{})
	}
	if err != nil {
		return fmt.Errorf("apply %s %s/%s: %w", obj.GetKind(), ns, obj.GetName(), err)
	}
	return nil
}

// Logs returns the log of a container of a pod (previous: of its last
// terminated instance).
func (c *Client) Logs(ctx context.Context, namespace, pod, container string, previous bool) (string, error) {
	q := url.Values{"container": {container}}
	if previous {
		q.Set("previous", "true")
	}
	u := strings.TrimSuffix(c.config.Host, "/") + "/api/v1/namespaces/" + url.PathEscape(namespace) + "/pods/" + url.PathEscape(pod) + "/log?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("logs of %s/%s container %s: %s: %s", namespace, pod, container, resp.Status, bytes.TrimSpace(b))
	}
	return string(b), nil
}
