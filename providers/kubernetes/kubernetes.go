// Package kubernetes implements the "k8s" provider kind: secrets read from
// Kubernetes Secrets through the API server with k8s.io/client-go. A
// reference names a Secret and optionally one of its keys:
// k8s://NAMESPACE/SECRET#key; without #key the whole Secret is returned as a
// map of its keys. Rotation arrives through a watch (Provider.Watch), not by
// polling.
//
// Importing the package registers the kind with providers.Register.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/backoff"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/keyward/keyward/providers"
)

// KindName is the name of the provider kind and of its default instance.
const KindName = "k8s"

func init() {
	providers.Register(providers.Kind{
		Name:     KindName,
		CheckRef: CheckRef,
		New:      newInstance,
	})
}

// Compile-time checks of the capabilities the provider offers.
var (
	_ providers.Provider      = (*Provider)(nil)
	_ providers.Watcher       = (*Provider)(nil)
	_ providers.VersionProber = (*Provider)(nil)
)

// WatchScope values for Options.WatchScope.
const (
	// WatchSecret runs one watch per referenced Secret, restricted with the
	// field selector metadata.name=NAME. It needs get, list and watch on
	// the named Secrets only, so a Role can restrict all three verbs with
	// resourceNames. The default.
	WatchSecret = "secret"
	// WatchNamespace runs one watch per namespace over all of its Secrets
	// and ignores the ones not referenced. It needs list and watch on every
	// Secret of the namespace (resourceNames cannot restrict an
	// unselected list), which also lets the agent read their contents.
	WatchNamespace = "namespace"
)

// Options are the instance options of a k8s provider in the config file:
//
//	providers:
//	  k8s-prod: {kind: k8s, context: prod, kubeconfig: ~/.kube/prod}
type Options struct {
	// Kubeconfig is the kubeconfig file to use instead of in-cluster
	// config, $KUBECONFIG or ~/.kube/config. A relative path is relative
	// to the config file's directory; a leading ~/ is $HOME.
	Kubeconfig string `yaml:"kubeconfig"`
	// Context selects a context of the kubeconfig instead of its
	// current-context. Setting it (or Kubeconfig) makes the provider use
	// a kubeconfig even inside a cluster.
	Context string `yaml:"context"`
	// WatchScope is WatchSecret (default) or WatchNamespace.
	WatchScope string `yaml:"watch_scope"`
}

// Validate checks the options without I/O.
func (o Options) Validate() error {
	switch o.WatchScope {
	case "", WatchSecret, WatchNamespace:
		return nil
	}
	return fmt.Errorf("watch_scope %q is not one of %s, %s", o.WatchScope, WatchSecret, WatchNamespace)
}

// Provider reads Kubernetes Secrets. Its API client is built on first use,
// so a provider that resolves nothing needs no cluster and no credentials.
// It is safe for concurrent use; Fetch starts no goroutines, Watch starts
// one per watched stream and waits for them before it returns.
type Provider struct {
	opts   Options
	logger *slog.Logger
	// connect builds the API client; set by New, replaced by tests.
	connect func() (secretsAPI, error)
	// sleep waits d or until ctx is done (backoff); tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
	// bounds are the watches' timeouts (defaultWatchBounds; tests
	// shorten them).
	bounds watchBounds

	mu      sync.Mutex
	api     secretsAPI
	fetched map[string]observed // Secret key (ns/name) -> what Fetch last saw

	// retries records the failures that calls and watches retry.
	retries *providers.Retries
}

// New returns a Provider configured by opts, env (the ecosystem's variables:
// KUBERNETES_SERVICE_HOST/PORT, KUBECONFIG, HOME; nil means os.Getenv) and
// baseDir (for a relative Kubeconfig). It does not contact the cluster and
// does not read the kubeconfig: that happens on the first Fetch or Watch.
// A nil logger discards log lines.
func New(opts Options, env func(string) string, baseDir string, logger *slog.Logger) (*Provider, error) {
	return newProvider(configSource{opts: opts, getenv: env, baseDir: baseDir, saDir: serviceAccountDir}, logger)
}

func newProvider(src configSource, logger *slog.Logger) (*Provider, error) {
	if err := src.opts.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Provider{opts: src.opts, logger: logger, sleep: backoff.Wait, bounds: defaultWatchBounds, fetched: map[string]observed{},
		retries: providers.NewRetries(providers.Instance{Name: KindName, Logger: logger})}
	p.connect = func() (secretsAPI, error) {
		cfg, how, err := src.restConfig()
		if err != nil {
			return nil, err
		}
		api, err := newRESTSecrets(cfg)
		if err != nil {
			return nil, err
		}
		logger.Debug("kubernetes client configured", "source", how, "host", cfg.Host)
		return api, nil
	}
	return p, nil
}

func newInstance(in providers.Instance) (providers.Provider, error) {
	var opts Options
	if in.Decode != nil {
		if err := in.Decode(&opts); err != nil {
			return nil, fmt.Errorf("k8s provider options: %w", err)
		}
	}
	logger := in.Logger
	if logger != nil {
		logger = logger.With("provider", in.Name)
	}
	if in.Workload != nil {
		p, err := newForWorkload(opts, in.Workload, logger)
		if err != nil {
			return nil, fmt.Errorf("k8s provider options: %w", err)
		}
		p.retries = providers.NewRetries(in)
		return p, nil
	}
	p, err := New(opts, in.Getenv, in.BaseDir, logger)
	if err != nil {
		return nil, fmt.Errorf("k8s provider options: %w", err)
	}
	p.retries = providers.NewRetries(in)
	return p, nil
}

// client returns the API client, building it on first use. A failure is
// not remembered: the next call tries again.
func (p *Provider) client() (secretsAPI, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.api != nil {
		return p.api, nil
	}
	api, err := p.connect()
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	p.api = api
	return api, nil
}

// SplitRef returns the namespace and Secret name a k8s reference names.
// Errors wrap providers.ErrInvalidReference.
func SplitRef(ref providers.Ref) (namespace, name string, err error) {
	ns, name, ok := strings.Cut(ref.Path, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("expected k8s://NAMESPACE/SECRET[#key]: %w", providers.ErrInvalidReference)
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return "", "", fmt.Errorf("namespace %q: %s: %w", ns, strings.Join(errs, "; "), providers.ErrInvalidReference)
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return "", "", fmt.Errorf("secret name %q: %s: %w", name, strings.Join(errs, "; "), providers.ErrInvalidReference)
	}
	return ns, name, nil
}

// CheckRef validates a k8s reference without I/O: its path is
// NAMESPACE/SECRET with a valid namespace and Secret name, and its #key,
// if any, is a valid Secret key. Errors wrap providers.ErrInvalidReference.
func CheckRef(ref providers.Ref) error {
	if _, _, err := SplitRef(ref); err != nil {
		return err
	}
	if ref.Field != "" {
		if errs := validation.IsConfigMapKey(ref.Field); len(errs) > 0 {
			return fmt.Errorf("secret key %q: %s: %w", ref.Field, strings.Join(errs, "; "), providers.ErrInvalidReference)
		}
	}
	return nil
}

// Fetch gets the Secret ref names. Secret.Data holds each of its keys with
// the bytes stored ([]byte, binary data stays binary), Secret.Value is
// empty (Secret.Whole gives the JSON of the keys), and Secret.Version is
// the Secret's resourceVersion.
//
// Errors name the Secret, never a value, and wrap providers.ErrNotFound
// (no such Secret or namespace) or providers.ErrPermissionDenied (the API
// server refused the credentials or RBAC denied "get" on the Secret; the
// message names the verb, resource and namespace). Throttling, 5xx
// answers and network errors are retried with backoff while ctx allows.
func (p *Provider) Fetch(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
	ns, name, err := SplitRef(ref)
	if err != nil {
		return providers.Secret{}, fmt.Errorf("%s: %w", ref.String(), err)
	}
	if err := ctx.Err(); err != nil {
		return providers.Secret{}, fmt.Errorf("get secret %s/%s: %w", ns, name, err)
	}
	api, err := p.client()
	if err != nil {
		return providers.Secret{}, err
	}
	var sec *corev1.Secret
	err = p.retry(ctx, "get", ns, name, func() (err error) {
		sec, err = api.Get(ctx, ns, name)
		return err
	})
	if err != nil {
		if apiNotFound(err) {
			p.remember(ns+"/"+name, observed{})
		}
		return providers.Secret{}, apiError(ctx, "get", ns, name, err)
	}
	p.remember(ns+"/"+name, observed{present: true, rv: sec.ResourceVersion})
	return toSecret(sec), nil
}

// ProbeVersion implements providers.VersionProber: it returns the
// Secret's resourceVersion (what Fetch reports as Version) from a
// metadata-only read, so the Secret's data does not cross the wire. It
// needs the same RBAC as Fetch ("get") and maps errors like Fetch.
// Rotation uses it only where no watch runs.
func (p *Provider) ProbeVersion(ctx context.Context, ref providers.Ref) (string, error) {
	ns, name, err := SplitRef(ref)
	if err != nil {
		return "", fmt.Errorf("%s: %w", ref.String(), err)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("get secret %s/%s metadata: %w", ns, name, err)
	}
	api, err := p.client()
	if err != nil {
		return "", err
	}
	var rv string
	err = p.retry(ctx, "get", ns, name, func() error {
		m, err := api.GetMeta(ctx, ns, name)
		if err == nil {
			rv = m.ResourceVersion
		}
		return err
	})
	if err != nil {
		return "", apiError(ctx, "get", ns, name, err)
	}
	return rv, nil
}

// retry calls call until it succeeds, fails permanently, ctx is done or
// fetchAttempts calls were made, backing off between transient failures,
// each recorded in the provider's Retries (logged at most once a minute,
// counted by the agent). It returns call's last error or, when ctx ended,
// ctx's error with how the attempts before failed.
func (p *Provider) retry(ctx context.Context, verb, ns, name string, call func() error) error {
	b := newBackoff(fetchBackoffBase, fetchBackoffCap)
	att := p.retries.Call(verb, ns+"/"+name)
	for attempt := 1; ; attempt++ {
		err := call()
		if err != nil && ctx.Err() != nil {
			return att.Expired(ctx.Err())
		}
		if err == nil || attempt == fetchAttempts || !transient(err) {
			return err
		}
		d := b.NextAfter(retryAfter(err))
		att.Failed(retryCause(err), d)
		if p.sleep(ctx, d) != nil {
			return att.Expired(ctx.Err())
		}
	}
}

// toSecret converts an API Secret: each data key as []byte.
func toSecret(s *corev1.Secret) providers.Secret {
	data := make(map[string]any, len(s.Data))
	for k, v := range s.Data {
		if v == nil {
			v = []byte{}
		}
		data[k] = v
	}
	return providers.Secret{Data: data, Version: s.ResourceVersion}
}

// remember records what Fetch saw of a Secret; Watch compares its first
// listing with it, so a change between the caller's Fetch and the start of
// the watch is reported.
func (p *Provider) remember(key string, o observed) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fetched[key] = o
}

func (p *Provider) lastFetched(key string) (observed, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o, ok := p.fetched[key]
	return o, ok
}

// Close releases the client's idle connections. Watches end with their
// contexts, not with Close.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.api.(interface{ closeIdle() }); ok {
		c.closeIdle()
	}
	p.api = nil
	return nil
}

// Retry policy of Fetch.
const (
	fetchAttempts    = 4
	fetchBackoffBase = 200 * time.Millisecond
	fetchBackoffCap  = 2 * time.Second
)

// errNoConfig is returned when neither in-cluster config nor a kubeconfig
// can be found.
var errNoConfig = errors.New("no in-cluster config (KUBERNETES_SERVICE_HOST unset) and no kubeconfig ($KUBECONFIG, ~/.kube/config)")
