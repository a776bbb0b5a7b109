package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/keyward/keyward/internal/version"
)

// secretsAPI is the part of the Kubernetes API the provider uses. The real
// one is a client-go REST client (restSecrets); unit tests fake it.
type secretsAPI interface {
	// Get reads one Secret.
	Get(ctx context.Context, namespace, name string) (*corev1.Secret, error)
	// GetMeta reads one Secret's metadata only (no data).
	GetMeta(ctx context.Context, namespace, name string) (*metav1.PartialObjectMetadata, error)
	// List lists the Secrets of a namespace matching opts.
	List(ctx context.Context, namespace string, opts metav1.ListOptions) (*corev1.SecretList, error)
	// Watch watches the Secrets of a namespace matching opts.
	Watch(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error)
}

// scheme knows only core/v1 Secrets and the meta types of their API calls,
// so the binary does not carry client-go's registry of every API group.
var (
	scheme         = runtime.NewScheme()
	codecs         = serializer.NewCodecFactory(scheme)
	parameterCodec = runtime.NewParameterCodec(scheme)
)

func init() {
	scheme.AddKnownTypes(corev1.SchemeGroupVersion, &corev1.Secret{}, &corev1.SecretList{})
	metav1.AddToGroupVersion(scheme, corev1.SchemeGroupVersion)
	if err := metav1.AddMetaToScheme(scheme); err != nil {
		panic(err)
	}
}

// acceptMetadata asks the API server for an object's metadata only
// (PartialObjectMetadata), as client-go's metadata client does.
const acceptMetadata = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1," +
	"application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"

// restSecrets implements secretsAPI with a client-go REST client.
type restSecrets struct {
	c *rest.RESTClient
}

// newRESTSecrets builds a REST client for core/v1 from cfg, speaking
// protobuf (JSON as a fallback).
func newRESTSecrets(cfg *rest.Config) (*restSecrets, error) {
	c := rest.CopyConfig(cfg)
	gv := corev1.SchemeGroupVersion
	c.GroupVersion = &gv
	c.APIPath = "/api"
	c.NegotiatedSerializer = codecs.WithoutConversion()
	c.ContentType = runtime.ContentTypeProtobuf
	c.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	if c.UserAgent == "" {
		c.UserAgent = "keyward/" + version.Get().Version
	}
	// client-go's default of 5 requests per second (burst 10) would make
	// the start of 100 per-Secret watches take 40 s; the API server's own
	// priority and fairness protects it.
	if c.QPS == 0 {
		c.QPS = 50
	}
	if c.Burst == 0 {
		c.Burst = 200
	}
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper { return recordingTransport{rt} })
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, err
	}
	return &restSecrets{c: rc}, nil
}

// Every request is made once (MaxRetries(0)): client-go would otherwise
// re-issue a request that met a reset connection or a timeout up to ten
// times by itself, unseen, and a watch would then come back empty rather
// than failed. The provider's own retries record each failed attempt.

func (r *restSecrets) Get(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	out := &corev1.Secret{}
	err := r.c.Get().MaxRetries(0).Namespace(namespace).Resource("secrets").Name(name).Do(ctx).Into(out)
	return out, err
}

func (r *restSecrets) GetMeta(ctx context.Context, namespace, name string) (*metav1.PartialObjectMetadata, error) {
	out := &metav1.PartialObjectMetadata{}
	err := r.c.Get().MaxRetries(0).Namespace(namespace).Resource("secrets").Name(name).SetHeader("Accept", acceptMetadata).Do(ctx).Into(out)
	if err == nil && out.ResourceVersion == "" {
		err = fmt.Errorf("metadata of secret %s/%s has no resourceVersion", namespace, name)
	}
	return out, err
}

func (r *restSecrets) List(ctx context.Context, namespace string, opts metav1.ListOptions) (*corev1.SecretList, error) {
	out := &corev1.SecretList{}
	err := r.c.Get().MaxRetries(0).Namespace(namespace).Resource("secrets").VersionedParams(&opts, parameterCodec).Do(ctx).Into(out)
	return out, err
}

// Watch opens a watch. A request that fails with a reset connection or a
// timeout is returned as that error (client-go's Request.Watch returns an
// empty watch for it), and the watch returned reports, through Err, the
// error that broke its stream, if one did (client-go closes the result
// channel without an event then).
func (r *restSecrets) Watch(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	rec := &attempt{}
	w, err := r.c.Get().MaxRetries(0).Namespace(namespace).Resource("secrets").VersionedParams(&opts, parameterCodec).
		Watch(context.WithValue(ctx, attemptKey{}, rec))
	if err != nil {
		return nil, err
	}
	if err := rec.roundTripErr(); err != nil {
		// Request.Watch answers a round trip that failed only with an
		// empty watch.
		w.Stop()
		return nil, err
	}
	return &recordedWatch{Interface: w, rec: rec}, nil
}

// attempt records how one request failed below client-go: its round trip,
// or the reading of its response body.
type attempt struct {
	mu        sync.Mutex
	roundTrip error
	body      error
}

// attemptKey is the context key of a request's *attempt.
type attemptKey struct{}

func (a *attempt) roundTripErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.roundTrip
}

// recordingTransport fills in the *attempt a request's context carries.
type recordingTransport struct{ rt http.RoundTripper }

func (t recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec, _ := req.Context().Value(attemptKey{}).(*attempt)
	resp, err := t.rt.RoundTrip(req)
	if rec == nil {
		return resp, err
	}
	if err != nil {
		rec.mu.Lock()
		rec.roundTrip = err
		rec.mu.Unlock()
		return resp, err
	}
	resp.Body = &recordingBody{ReadCloser: resp.Body, rec: rec}
	return resp, nil
}

// CloseIdleConnections forwards to the wrapped transport.
func (t recordingTransport) CloseIdleConnections() {
	if c, ok := t.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// recordingBody records the first error other than io.EOF that reading a
// response body met.
type recordingBody struct {
	io.ReadCloser
	rec *attempt
}

func (b *recordingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.rec.mu.Lock()
		if b.rec.body == nil {
			b.rec.body = err
		}
		b.rec.mu.Unlock()
	}
	return n, err
}

// recordedWatch is a watch whose stream's failure is known.
type recordedWatch struct {
	watch.Interface
	rec *attempt
}

// Err returns the error that ended the watch's stream, or nil if it ended
// normally or has not ended.
func (w *recordedWatch) Err() error {
	w.rec.mu.Lock()
	defer w.rec.mu.Unlock()
	return w.rec.body
}

// closeIdle closes the client's idle connections (Provider.Close).
func (r *restSecrets) closeIdle() {
	if t, ok := r.c.Client.Transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// serviceAccountDir is where the kubelet mounts a pod's service-account
// token, CA certificate and namespace.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// configSource finds the REST config: a kubeconfig when the instance
// options name one (kubeconfig or context); otherwise in-cluster config
// when KUBERNETES_SERVICE_HOST and _PORT are set; otherwise $KUBECONFIG or
// ~/.kube/config.
type configSource struct {
	opts    Options
	getenv  func(string) string
	baseDir string
	saDir   string
}

func (s configSource) env(k string) string {
	if s.getenv == nil {
		return os.Getenv(k)
	}
	return s.getenv(k)
}

// restConfig returns the config and a word on where it came from, for logs.
func (s configSource) restConfig() (*rest.Config, string, error) {
	if s.opts.Kubeconfig == "" && s.opts.Context == "" {
		host, port := s.env("KUBERNETES_SERVICE_HOST"), s.env("KUBERNETES_SERVICE_PORT")
		if host != "" && port != "" {
			cfg, err := s.inCluster(host, port)
			return cfg, "in-cluster", err
		}
	}
	rules := &clientcmd.ClientConfigLoadingRules{}
	switch {
	case s.opts.Kubeconfig != "":
		rules.ExplicitPath = s.path(s.opts.Kubeconfig)
	case s.env("KUBECONFIG") != "":
		// As for kubectl: the listed files, merged, paths as given.
		for _, p := range filepath.SplitList(s.env("KUBECONFIG")) {
			if p != "" {
				rules.Precedence = append(rules.Precedence, p)
			}
		}
	default:
		home := s.env("HOME")
		if home == "" {
			return nil, "", errNoConfig
		}
		p := filepath.Join(home, ".kube", "config")
		if _, err := os.Stat(p); err != nil {
			return nil, "", errNoConfig
		}
		rules.Precedence = []string{p}
	}
	// A kubeconfig is never merged with in-cluster defaults here: the
	// choice of source is made above.
	rules.WarnIfAllMissing = false
	overrides := &clientcmd.ConfigOverrides{CurrentContext: s.opts.Context}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		where := rules.ExplicitPath
		if where == "" {
			where = strings.Join(rules.Precedence, string(filepath.ListSeparator))
		}
		if s.opts.Context != "" {
			return nil, "", fmt.Errorf("kubeconfig %s, context %q: %w", where, s.opts.Context, err)
		}
		return nil, "", fmt.Errorf("kubeconfig %s: %w", where, err)
	}
	return cfg, "kubeconfig", nil
}

// inCluster builds the config of a pod's service account, like
// rest.InClusterConfig but reading the environment through getenv. The
// token is named by file so client-go re-reads it as the kubelet rotates
// it.
func (s configSource) inCluster(host, port string) (*rest.Config, error) {
	tokenFile := filepath.Join(s.saDir, "token")
	if _, err := os.Stat(tokenFile); err != nil {
		return nil, fmt.Errorf("in-cluster config: service-account token: %w", err)
	}
	caFile := filepath.Join(s.saDir, "ca.crt")
	tls := rest.TLSClientConfig{}
	if _, err := os.Stat(caFile); err == nil {
		tls.CAFile = caFile
	}
	return &rest.Config{
		Host:            "https://" + net.JoinHostPort(host, port),
		TLSClientConfig: tls,
		BearerTokenFile: tokenFile,
	}, nil
}

// path expands a leading ~/ to $HOME and makes a relative path relative
// to the config file's directory.
func (s configSource) path(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home := s.env("HOME"); home != "" {
			return filepath.Join(home, rest)
		}
	}
	if !filepath.IsAbs(p) && s.baseDir != "" {
		return filepath.Join(s.baseDir, p)
	}
	return p
}
