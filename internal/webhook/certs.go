package webhook

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"slices"
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

// Generated certificates: valid for a year, replaced at start when less
// than renewBefore is left.
const (
	certLifetime = 365 * 24 * time.Hour
	renewBefore  = 30 * 24 * time.Hour
)

// kubeAPI is the slice of the Kubernetes API the webhook uses; tests fake it.
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
// Mutator and the certificate bootstrap. It is safe for concurrent use.
type Kube struct {
	api kubeAPI
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

// ConfigMapData implements ConfigMaps with a GET of the ConfigMap,
// reused for 5 seconds (a missing ConfigMap is never cached: the user
// creating it is not kept waiting). The returned map must not be modified.
func (k *Kube) ConfigMapData(ctx context.Context, namespace, name string) (map[string]string, error) {
	now := time.Now
	if k.now != nil {
		now = k.now
	}
	key := namespace + "/" + name
	k.mu.Lock()
	c, ok := k.cache[key]
	k.mu.Unlock()
	if ok && now().Sub(c.fetched) < configMapTTL {
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
	k.cache[key] = cachedConfigMap{data: cm.Data, fetched: now()}
	return cm.Data, nil
}

// SelfSigned configures Kube.Bootstrap.
type SelfSigned struct {
	// Namespace and SecretName locate the kubernetes.io/tls Secret that
	// holds the CA, certificate and key shared by every replica.
	Namespace, SecretName string
	// DNSNames and IPs are the serving certificate's names (the Service's
	// DNS names; 127.0.0.1 in tests).
	DNSNames []string
	IPs      []net.IP
	// WebhookConfig is the MutatingWebhookConfiguration whose webhooks'
	// clientConfig.caBundle is set to the CA; "" leaves it alone.
	WebhookConfig string
}

// Bootstrap returns the serving certificate kept in the Secret, creating
// (or replacing, when it expires within 30 days or misses a name) it
// first, and sets the caBundle of the webhook configuration. Replicas
// starting together agree: the first Secret created wins and the others
// read it. Errors name objects, never key material.
func (k *Kube) Bootstrap(ctx context.Context, o SelfSigned, logger *slog.Logger) (tls.Certificate, error) {
	caPEM, certPEM, keyPEM, err := k.loadOrCreate(ctx, o, logger)
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("secret %s/%s: %w", o.Namespace, o.SecretName, err)
	}
	if o.WebhookConfig != "" {
		if err := k.patchCABundle(ctx, o.WebhookConfig, caPEM); err != nil {
			return tls.Certificate{}, err
		}
		logger.Info("caBundle set", "mutatingwebhookconfiguration", o.WebhookConfig)
	}
	return cert, nil
}

func (k *Kube) loadOrCreate(ctx context.Context, o SelfSigned, logger *slog.Logger) (ca, cert, key []byte, err error) {
	s, err := k.api.getSecret(ctx, o.Namespace, o.SecretName)
	switch {
	case apierrors.IsNotFound(err):
		s = nil
	case err != nil:
		return nil, nil, nil, fmt.Errorf("get secret %s/%s: %w", o.Namespace, o.SecretName, err)
	case usable(s, o, time.Now()):
		return s.Data["ca.crt"], s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey], nil
	}
	ca, cert, key, err = GenerateCertificate(o.DNSNames, o.IPs, time.Now())
	if err != nil {
		return nil, nil, nil, err
	}
	data := map[string][]byte{"ca.crt": ca, corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key}
	if s == nil {
		err = k.api.createSecret(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: o.Namespace, Name: o.SecretName, Labels: map[string]string{"app.kubernetes.io/managed-by": "keyward-webhook"}},
			Type:       corev1.SecretTypeTLS,
			Data:       data,
		})
	} else {
		s = s.DeepCopy()
		s.Data = data
		err = k.api.updateSecret(ctx, s)
	}
	if apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) {
		// Another replica won: use its certificate.
		s, err = k.api.getSecret(ctx, o.Namespace, o.SecretName)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("get secret %s/%s: %w", o.Namespace, o.SecretName, err)
		}
		return s.Data["ca.crt"], s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey], nil
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("write secret %s/%s: %w", o.Namespace, o.SecretName, err)
	}
	logger.Info("generated webhook certificate", "secret", o.Namespace+"/"+o.SecretName, "dns_names", o.DNSNames)
	return ca, cert, key, nil
}

// usable reports whether s holds a pair covering o's names, valid for
// more than renewBefore.
func usable(s *corev1.Secret, o SelfSigned, now time.Time) bool {
	if len(s.Data["ca.crt"]) == 0 {
		return false
	}
	pair, err := tls.X509KeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return false
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || now.Add(renewBefore).After(leaf.NotAfter) {
		return false
	}
	for _, n := range o.DNSNames {
		if !slices.Contains(leaf.DNSNames, n) {
			return false
		}
	}
	for _, ip := range o.IPs {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func (k *Kube) patchCABundle(ctx context.Context, name string, ca []byte) error {
	var err error
	for range 5 {
		var c *admregv1.MutatingWebhookConfiguration
		c, err = k.api.getWebhookConfig(ctx, name)
		if err != nil {
			return fmt.Errorf("get mutatingwebhookconfiguration %s: %w", name, err)
		}
		changed := false
		for i := range c.Webhooks {
			if !bytes.Equal(c.Webhooks[i].ClientConfig.CABundle, ca) {
				c.Webhooks[i].ClientConfig.CABundle = ca
				changed = true
			}
		}
		if !changed {
			return nil
		}
		if err = k.api.updateWebhookConfig(ctx, c); !apierrors.IsConflict(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("set caBundle of mutatingwebhookconfiguration %s: %w", name, err)
	}
	return nil
}

// GenerateCertificate makes a CA and a serving certificate signed by it
// for dnsNames and ips, both ECDSA P-256, valid from an hour before now
// for a year. It returns PEM blocks: the CA certificate, the serving
// certificate and its private key.
func GenerateCertificate(dnsNames []string, ips []net.IP, now time.Time) (caPEM, certPEM, keyPEM []byte, err error) {
	if len(dnsNames) == 0 && len(ips) == 0 {
		return nil, nil, nil, errors.New("generate certificate: no DNS name or IP")
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate certificate: %w", err)
	}
	serial := func() *big.Int {
		n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
		return n
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "keyward-webhook-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certLifetime),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate certificate: %w", err)
	}
	cn := "keyward-webhook"
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
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
