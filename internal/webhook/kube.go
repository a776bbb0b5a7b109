package webhook

import (
	"context"
	"fmt"
	"sync"
	"time"

	admregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// kubeAPI is the slice of the Kubernetes API the webhook uses; tests fake
// it. Updates are conditional on the object's resourceVersion (a stale
// object gets a Conflict error), as the API server does.
type kubeAPI interface {
	getConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error)
	getSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
	createSecret(ctx context.Context, s *corev1.Secret) error
	updateSecret(ctx context.Context, s *corev1.Secret) error
	getWebhookConfig(ctx context.Context, name string) (*admregv1.MutatingWebhookConfiguration, error)
	updateWebhookConfig(ctx context.Context, c *admregv1.MutatingWebhookConfiguration) error
}

// configMapTTL is how long Kube.ConfigMapData reuses a ConfigMap it read:
// a rollout of many pods costs one GET, and an edit of the ConfigMap
// reaches new pods within this time.
const configMapTTL = 5 * time.Second

// Kube is the webhook's Kubernetes client: ConfigMap lookups for the
// Mutator and the self-generated certificate (Bootstrap). It is safe for
// concurrent use.
type Kube struct {
	api kubeAPI
	// now is the clock; nil means time.Now (tests inject one).
	now func() time.Time

	mu    sync.Mutex
	cache map[string]cachedConfigMap
}

type cachedConfigMap struct {
	data    map[string]string
	fetched time.Time
}

// NewKube returns a Kube talking to the API server of rc.
func NewKube(rc *rest.Config) (*Kube, error) {
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return &Kube{api: clientAPI{dyn: dyn}}, nil
}

func (k *Kube) clock() time.Time {
	if k.now != nil {
		return k.now()
	}
	return time.Now()
}

// ConfigMapData implements ConfigMaps with a GET of the ConfigMap,
// reused for 5 seconds (a missing ConfigMap is never cached: the user
// creating it is not kept waiting). The returned map must not be modified.
func (k *Kube) ConfigMapData(ctx context.Context, namespace, name string) (map[string]string, error) {
	key := namespace + "/" + name
	k.mu.Lock()
	c, ok := k.cache[key]
	k.mu.Unlock()
	if ok && k.clock().Sub(c.fetched) < configMapTTL {
		return c.data, nil
	}
	cm, err := k.api.getConfigMap(ctx, namespace, name)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("configmap %s/%s: %w", namespace, name, ErrConfigMapNotFound)
	}
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cache == nil || len(k.cache) > 10000 {
		k.cache = map[string]cachedConfigMap{}
	}
	k.cache[key] = cachedConfigMap{data: cm.Data, fetched: k.clock()}
	return cm.Data, nil
}

// clientAPI implements kubeAPI with client-go's dynamic client (the
// typed clientsets would pull in much more of client-go).
type clientAPI struct{ dyn dynamic.Interface }

var (
	configMapsGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	secretsGVR    = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	mwcGVR        = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"}
)

func get[T any](ctx context.Context, r dynamic.ResourceInterface, name string) (*T, error) {
	u, err := r.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), out); err != nil {
		return nil, fmt.Errorf("decode %s: %w", name, err)
	}
	return out, nil
}

func toUnstructured(obj any, apiVersion, kind string) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	return u, nil
}

func (c clientAPI) getConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error) {
	return get[corev1.ConfigMap](ctx, c.dyn.Resource(configMapsGVR).Namespace(namespace), name)
}

func (c clientAPI) getSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	return get[corev1.Secret](ctx, c.dyn.Resource(secretsGVR).Namespace(namespace), name)
}

func (c clientAPI) createSecret(ctx context.Context, s *corev1.Secret) error {
	u, err := toUnstructured(s, "v1", "Secret")
	if err != nil {
		return err
	}
	_, err = c.dyn.Resource(secretsGVR).Namespace(s.Namespace).Create(ctx, u, metav1.CreateOptions{})
	return err
}

func (c clientAPI) updateSecret(ctx context.Context, s *corev1.Secret) error {
	u, err := toUnstructured(s, "v1", "Secret")
	if err != nil {
		return err
	}
	_, err = c.dyn.Resource(secretsGVR).Namespace(s.Namespace).Update(ctx, u, metav1.UpdateOptions{})
	return err
}

func (c clientAPI) getWebhookConfig(ctx context.Context, name string) (*admregv1.MutatingWebhookConfiguration, error) {
	return get[admregv1.MutatingWebhookConfiguration](ctx, c.dyn.Resource(mwcGVR), name)
}

func (c clientAPI) updateWebhookConfig(ctx context.Context, cfg *admregv1.MutatingWebhookConfiguration) error {
	u, err := toUnstructured(cfg, "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")
	if err != nil {
		return err
	}
	_, err = c.dyn.Resource(mwcGVR).Update(ctx, u, metav1.UpdateOptions{})
	return err
}
