// Package gcp implements the "gcpsm" provider kind: secrets read from
// Google Cloud Secret Manager with the official client library and
// Application Default Credentials (GKE workload identity, a service
// account key named by GOOGLE_APPLICATION_CREDENTIALS, gcloud's user
// credentials, or the metadata server).
//
// A reference names a secret and optionally a version: gcpsm://PROJECT/SECRET,
// gcpsm://SECRET (the instance's project), gcpsm://projects/P/secrets/S,
// gcpsm://projects/P/secrets/S/versions/V, ?version=N|latest|ALIAS, plus the
// berglas (sm://P/S#V) and secrets-init (gcp:secretmanager:projects/P/…)
// spellings. A #field selects a key of a JSON payload. Every payload's CRC32C
// is checked against the one the service reports.
//
// Importing the package registers the kind with providers.Register.
package gcp

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/keyward/keyward/internal/backoff"
	"github.com/keyward/keyward/internal/tlsclient"
	"github.com/keyward/keyward/providers"
)

// KindName is the name of the provider kind and of its default instance.
const KindName = "gcpsm"

func init() {
	providers.Register(providers.Kind{
		Name:     KindName,
		Params:   []string{ParamVersion},
		CheckRef: CheckRef,
		New:      newInstance,
	})
}

// Errors beside the providers sentinels. They are wrapped with the version's
// name; test with errors.Is.
var (
	// ErrVersionDisabled: the version exists but is disabled, so it
	// cannot be read until it is enabled again.
	ErrVersionDisabled = errors.New("secret version is disabled")
	// ErrVersionDestroyed: the version's payload was destroyed. It also
	// matches providers.ErrNotFound.
	ErrVersionDestroyed = fmt.Errorf("secret version is destroyed: %w", providers.ErrNotFound)
	// ErrChecksumMismatch: the payload does not match the CRC32C the
	// service sent with it; it was corrupted on the way and is dropped.
	ErrChecksumMismatch = errors.New("payload does not match its CRC32C checksum")
)

// Options are an instance's configuration keys (beside kind).
type Options struct {
	// Project is the project of references that name none
	// (gcpsm://SECRET). Default: $GOOGLE_CLOUD_PROJECT, then
	// $CLOUDSDK_CORE_PROJECT.
	Project string `yaml:"project"`
	// Endpoint overrides the service address, as HOST:PORT (a private
	// service connect endpoint, or a local test server).
	Endpoint string `yaml:"endpoint"`
	// Insecure talks plaintext gRPC without credentials (acting as a pod:
	// with the pod's token). It is only accepted with a loopback
	// Endpoint, for local test servers.
	Insecure bool `yaml:"insecure"`
	// TLS sets the CA bundle the connections to Endpoint (and, acting as a
	// pod, to STSEndpoint and IAMCredentialsEndpoint) trust instead of the
	// system's roots, and the name their certificates must carry: a
	// private service connect endpoint behind a corporate CA, a test
	// server on a node address. Relative paths are relative to the
	// config file's directory.
	TLS tlsclient.Options `yaml:"tls"`

	// The options of a provider acting as a pod (keyward csi-provider),
	// through workload identity federation (workload.go).

	// WorkloadIdentityProvider is the audience of the exchange of the
	// pod's ServiceAccount token at Google's Security Token Service:
	// //iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER.
	WorkloadIdentityProvider string `yaml:"workload_identity_provider"`
	// TokenAudience is the audience of the pod's ServiceAccount token
	// that is exchanged (default: WorkloadIdentityProvider).
	TokenAudience string `yaml:"token_audience"`
	// ServiceAccount is the Google service account the federated
	// identity impersonates (default: the pod's ServiceAccount's
	// iam.gke.io/gcp-service-account annotation; neither: the federated
	// token is used itself).
	ServiceAccount string `yaml:"service_account"`
	// STSEndpoint overrides the token exchange's URL (default
	// https://sts.googleapis.com/v1/token).
	STSEndpoint string `yaml:"sts_endpoint"`
	// IAMCredentialsEndpoint overrides the IAM Credentials API's base URL
	// (default https://iamcredentials.googleapis.com).
	IAMCredentialsEndpoint string `yaml:"iam_credentials_endpoint"`
}

// secretClient is the part of the Secret Manager client the provider uses;
// unit tests fake it.
type secretClient interface {
	AccessSecretVersion(context.Context, *secretmanagerpb.AccessSecretVersionRequest, ...gax.CallOption) (*secretmanagerpb.AccessSecretVersionResponse, error)
	GetSecretVersion(context.Context, *secretmanagerpb.GetSecretVersionRequest, ...gax.CallOption) (*secretmanagerpb.SecretVersion, error)
	Close() error
}

var (
	_ providers.Provider      = (*Provider)(nil)
	_ providers.VersionProber = (*Provider)(nil)
	_ providers.Pinner        = (*Provider)(nil)
	_ secretClient            = (*secretmanager.Client)(nil)
)

// Pinned implements providers.Pinner: a reference to a version number
// (?version=3, .../versions/3, berglas #3) names one version, whose payload
// never changes; latest and aliases move.
func (p *Provider) Pinned(ref providers.Ref) bool {
	t, err := parseTarget(ref)
	return err == nil && t.Version != "" && t.Version[0] >= '1' && t.Version[0] <= '9'
}

// Retry pacing of transient errors (UNAVAILABLE, RESOURCE_EXHAUSTED):
// capped exponential with full jitter (internal/backoff), until the
// caller's context ends.
const (
	retryBase = 250 * time.Millisecond
	retryMax  = 8 * time.Second
)

// Provider reads secrets from Secret Manager. Its client is created on the
// first Fetch or ProbeVersion, so an unused Provider needs no credentials
// and makes no connection. It starts no goroutines of its own and is safe
// for concurrent use.
type Provider struct {
	project string
	logger  *slog.Logger
	dial    func(ctx context.Context) (secretClient, error)
	// sent, when set, hides the access token the client last sent (a
	// pod's; see workload.go) in a server's message.
	sent    func() providers.Scrubber
	retries *providers.Retries
	// rand draws the jitter of retries; tests set it.
	rand func() float64

	mu     sync.Mutex
	client secretClient
	closed bool

	// workload is set when the provider acts as a pod (workload.go):
	// Credential then refuses, rather than hand out Application Default
	// Credentials.
	workload bool

	// readOnly is set once GetSecretVersion was denied while
	// AccessSecretVersion was allowed (a role with
	// secretmanager.versions.access only): from then on Fetch reads
	// without GetSecretVersion, and ProbeVersion reads the payload.
	readOnly atomic.Bool
}

// New returns a Provider configured by o; logger may be nil. It validates
// o but contacts nothing.
func New(o Options, logger *slog.Logger) (*Provider, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	clientOpts, err := o.clientOptions()
	if err != nil {
		return nil, err
	}
	p := &Provider{project: o.Project, logger: logger, retries: providers.NewRetries(providers.Instance{Name: KindName, Logger: logger})}
	p.dial = func(ctx context.Context) (secretClient, error) {
		c, err := secretmanager.NewClient(ctx, clientOpts...)
		if err != nil {
			return nil, err
		}
		logger.Debug("gcpsm client created", "endpoint", endpointName(o.Endpoint), "insecure", o.Insecure)
		return c, nil
	}
	return p, nil
}

func endpointName(e string) string {
	if e == "" {
		return "default"
	}
	return e
}

// clientOptions turns o into client options. The client library's own
// logger is silenced: at debug level (GOOGLE_SDK_GO_LOGGING_LEVEL) it would
// log response payloads, which are secrets.
func (o Options) clientOptions() ([]option.ClientOption, error) {
	opts := []option.ClientOption{option.WithLogger(slog.New(slog.DiscardHandler))}
	if o.Endpoint != "" {
		if strings.Contains(o.Endpoint, "://") || strings.Contains(o.Endpoint, "/") {
			return nil, fmt.Errorf("endpoint %q: want HOST:PORT, without a scheme or path", o.Endpoint)
		}
		if _, _, err := net.SplitHostPort(o.Endpoint); err != nil {
			return nil, fmt.Errorf("endpoint %q: want HOST:PORT", o.Endpoint)
		}
		opts = append(opts, option.WithEndpoint(o.Endpoint))
	}
	if o.Insecure {
		if !isLoopback(o.Endpoint) {
			return nil, fmt.Errorf("insecure is only allowed with a loopback endpoint (127.0.0.1:PORT, [::1]:PORT or localhost:PORT), got %q; for a server with a private CA set tls.ca_cert", o.Endpoint)
		}
		if !o.TLS.IsZero() {
			return nil, errors.New("insecure (plaintext) and tls exclude each other")
		}
		opts = append(opts,
			option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	}
	tlsOpts, err := o.tlsOptions()
	if err != nil {
		return nil, err
	}
	return append(opts, tlsOpts...), nil
}

// tlsOptions are the client options of o.TLS: the gRPC connection's
// credentials with its CA bundle and server name; none when it is empty.
func (o Options) tlsOptions() ([]option.ClientOption, error) {
	if o.TLS.IsZero() {
		return nil, nil
	}
	c, err := o.TLS.Config(context.Background())
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return []option.ClientOption{option.WithGRPCDialOption(grpc.WithTransportCredentials(credentials.NewTLS(c)))}, nil
}

// isLoopback reports whether HOST:PORT names a loopback address.
func isLoopback(endpoint string) bool {
	host, _, err := net.SplitHostPort(endpoint)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func newInstance(in providers.Instance) (providers.Provider, error) {
	var o Options
	if in.Decode != nil {
		if err := in.Decode(&o); err != nil {
			return nil, fmt.Errorf("gcpsm provider options: %w", err)
		}
	}
	o.TLS = o.TLS.Abs(in.BaseDir)
	if o.Project == "" && in.Getenv != nil {
		for _, k := range []string{"GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT"} {
			if v := in.Getenv(k); v != "" {
				o.Project = v
				break
			}
		}
	}
	logger := in.Logger
	if logger != nil {
		logger = logger.With("provider", in.Name)
	}
	p, err := New(o, logger)
	if err != nil {
		return nil, err
	}
	p.retries = providers.NewRetries(in)
	if in.Workload != nil {
		if err := p.actAs(in.Workload, o); err != nil {
			return nil, fmt.Errorf("gcpsm provider %s: %w", in.Name, err)
		}
	} else if o.WorkloadIdentityProvider != "" || o.ServiceAccount != "" || o.TokenAudience != "" {
		return nil, fmt.Errorf("gcpsm provider %s: workload_identity_provider, token_audience and service_account are for keyward csi-provider, which acts as each pod (elsewhere, Application Default Credentials are used)", in.Name)
	}
	return p, nil
}

// target resolves ref to the version it names, with the default project
// filled in.
func (p *Provider) target(ref providers.Ref) (target, error) {
	t, err := parseTarget(ref)
	if err != nil {
		return t, err
	}
	if t.Project == "" {
		if p.project == "" {
			return t, fmt.Errorf("secret %q names no project and the instance has none: write gcpsm://PROJECT/%s, or set the instance's project option or GOOGLE_CLOUD_PROJECT: %w", t.Secret, t.Secret, providers.ErrInvalidReference)
		}
		t.Project = p.project
	}
	return t, nil
}

// clientFor returns the client, creating it on first use. Creation does
// not inherit ctx's cancellation: the client outlives this call.
func (p *Provider) clientFor(ctx context.Context) (secretClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("gcpsm provider is closed")
	}
	if p.client == nil {
		c, err := p.dial(context.WithoutCancel(ctx))
		if err != nil {
			return nil, fmt.Errorf("creating Secret Manager client: %w", err)
		}
		p.client = c
	}
	return p.client, nil
}

// scrub hides the access token the client sends, when the provider knows
// it, in a server's message.
func (p *Provider) scrub() providers.Scrubber {
	if p.sent == nil {
		return providers.Scrubber{}
	}
	return p.sent()
}

// callOptions returns the options of one call of op on the version name:
// a gax.Retryer over internal/backoff that retries transient codes and
// records each failure in the returned Attempts.
func (p *Provider) callOptions(op, name string) ([]gax.CallOption, *providers.Attempts) {
	att := p.retries.Call(op, name)
	rnd := p.rand
	return []gax.CallOption{gax.WithRetry(func() gax.Retryer {
		return &retryer{bo: backoff.Backoff{Base: retryBase, Max: retryMax, Rand: rnd}, att: att, op: op, name: name, scrub: p.scrub}
	})}, att
}

// retryer is the gax.Retryer of one call.
type retryer struct {
	bo       backoff.Backoff
	att      *providers.Attempts
	op, name string
	scrub    func() providers.Scrubber
}

// Retry retries UNAVAILABLE and RESOURCE_EXHAUSTED after the next delay
// of its backoff, recording the failure (described as callError would,
// so that no credential source's output is repeated); other errors are
// final.
func (r *retryer) Retry(err error) (time.Duration, bool) {
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted:
	default:
		return 0, false
	}
	d := r.bo.Next()
	r.att.Failed(errors.New(statusText(err, r.scrub())), d)
	return d, true
}

// Fetch reads the version ref names (latest by default) and returns its
// payload as Value (Data is nil: a #field is taken from a JSON object
// payload) and the version's identity as Version:
// projects/NUMBER/secrets/SECRET/versions/N@CREATE_TIME.
//
// The version number alone does not identify a payload: a secret deleted
// and created again starts at versions/1 again. So Fetch first asks
// GetSecretVersion which version ref resolves to and when that version
// was created, then reads exactly that version with AccessSecretVersion
// (so the payload always belongs to the identity reported). When the
// credentials may access payloads but not get version metadata
// (secretmanager.versions.get, in roles/secretmanager.viewer but not in
// secretAccessor), the provider logs it once and from then on reads with
// AccessSecretVersion alone, with the version's name and a keyed hash of
// the payload as Version.
//
// The payload's CRC32C must match the checksum sent with it, else the
// error wraps ErrChecksumMismatch and no value is returned. Transient
// errors (UNAVAILABLE, RESOURCE_EXHAUSTED) are retried with capped
// exponential backoff and full jitter until ctx ends. Errors name the
// version and the gRPC code and wrap providers.ErrNotFound (NOT_FOUND, or
// a destroyed version: ErrVersionDestroyed), providers.ErrPermissionDenied
// (PERMISSION_DENIED, UNAUTHENTICATED), ErrVersionDisabled,
// providers.ErrInvalidReference, or ctx's error.
func (p *Provider) Fetch(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
	t, err := p.target(ref)
	if err != nil {
		return providers.Secret{}, err
	}
	name := t.Name()
	if err := ctx.Err(); err != nil {
		return providers.Secret{}, fmt.Errorf("access %s: %w", name, err)
	}
	c, err := p.clientFor(ctx)
	if err != nil {
		return providers.Secret{}, fmt.Errorf("access %s: %w", name, err)
	}
	if p.readOnly.Load() {
		return p.accessOnly(ctx, c, name)
	}
	v, err := p.getVersion(ctx, c, name)
	if err != nil {
		if status.Code(err) != codes.PermissionDenied || ctx.Err() != nil {
			return providers.Secret{}, versionError(ctx, name, err, p.scrub())
		}
		return p.getDenied(ctx, c, name)
	}
	resolved := v.GetName()
	if resolved == "" {
		resolved = name
	}
	label := name
	if resolved != name {
		label = name + " (" + resolved + ")"
	}
	data, _, err := p.access(ctx, c, resolved, label)
	if err != nil {
		return providers.Secret{}, err
	}
	return providers.Secret{Value: providers.NewValue(data), Version: versionID(resolved, v)}, nil
}

var _ providers.VersionFetcher = (*Provider)(nil)

// FetchVersion implements providers.VersionFetcher: after a ProbeVersion
// of ref returned version (RESOLVED@CREATE_TIME), it reads RESOLVED, the
// version the probe's GetSecretVersion found, with AccessSecretVersion
// alone, and reports version as the Version. That is the Fetch's second
// call without its first: Fetch too reads the version a GetSecretVersion
// named, moments after. A version that is not one of ref's secret's
// versions as ProbeVersion spells them, or a provider that reads payloads
// only (its probe is a Fetch), makes it Fetch.
func (p *Provider) FetchVersion(ctx context.Context, ref providers.Ref, version string) (providers.Secret, error) {
	t, err := p.target(ref)
	if err != nil {
		return providers.Secret{}, err
	}
	resolved, _, _ := strings.Cut(version, "@")
	if p.readOnly.Load() || !versionOf(resolved, t.Secret) {
		return p.Fetch(ctx, ref)
	}
	name := t.Name()
	if err := ctx.Err(); err != nil {
		return providers.Secret{}, fmt.Errorf("access %s: %w", name, err)
	}
	c, err := p.clientFor(ctx)
	if err != nil {
		return providers.Secret{}, fmt.Errorf("access %s: %w", name, err)
	}
	label := name
	if resolved != name {
		label = name + " (" + resolved + ")"
	}
	data, _, err := p.access(ctx, c, resolved, label)
	if err != nil {
		return providers.Secret{}, err
	}
	return providers.Secret{Value: providers.NewValue(data), Version: version}, nil
}

// versionOf reports whether name is a version name of the secret secret:
// projects/P/secrets/SECRET/versions/N, N a number.
func versionOf(name, secret string) bool {
	parts := strings.Split(name, "/")
	if len(parts) != 6 || parts[0] != "projects" || parts[1] == "" || parts[2] != "secrets" || parts[3] != secret || parts[4] != "versions" || parts[5] == "" {
		return false
	}
	for _, c := range parts[5] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// getDenied reads name after GetSecretVersion was denied: with
// AccessSecretVersion alone, and if that is allowed, the provider says so
// once and reads payloads only from then on.
func (p *Provider) getDenied(ctx context.Context, c secretClient, name string) (providers.Secret, error) {
	sec, err := p.accessOnly(ctx, c, name)
	if err == nil && p.readOnly.CompareAndSwap(false, true) {
		p.logger.Warn("gcpsm: reading version metadata (secretmanager.versions.get) is denied; reading payloads only from now on, so every rotation check reads the payload (grant roles/secretmanager.viewer for cheaper checks)")
	}
	return sec, err
}

// accessOnly reads name with AccessSecretVersion alone; Version is the
// resolved name and a keyed hash of the payload.
func (p *Provider) accessOnly(ctx context.Context, c secretClient, name string) (providers.Secret, error) {
	data, resolved, err := p.access(ctx, c, name, name)
	if err != nil {
		return providers.Secret{}, err
	}
	return providers.Secret{Value: providers.NewValue(data), Version: resolved + "@" + providers.ContentVersion(data)}, nil
}

// access reads the payload of version name and checks its CRC32C. It
// returns the version's resolved name (name when the answer has none).
// Errors call the version label.
func (p *Provider) access(ctx context.Context, c secretClient, name, label string) ([]byte, string, error) {
	opts, att := p.callOptions("access", label)
	resp, err := c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: name}, opts...)
	if err != nil {
		return nil, "", callError(ctx, "access", label, err, att, p.scrub())
	}
	data := resp.GetPayload().GetData()
	if want := resp.GetPayload().DataCrc32C; want != nil {
		if got := int64(crc32.Checksum(data, castagnoli)); got != *want {
			clear(data)
			return nil, "", fmt.Errorf("access %s: %w", label, ErrChecksumMismatch)
		}
	} else {
		p.logger.Debug("gcpsm payload came without a CRC32C checksum; not verified", "version", resp.GetName())
	}
	resolved := resp.GetName()
	if resolved == "" {
		resolved = name
	}
	return data, resolved, nil
}

// getVersion asks GetSecretVersion for the metadata of the version name
// resolves to, and checks that it is enabled (readable). On an error from
// the call, it returns the call's error as it is, for versionError; on a
// version that is not enabled, the version and an error that already
// names it.
func (p *Provider) getVersion(ctx context.Context, c secretClient, name string) (*secretmanagerpb.SecretVersion, error) {
	opts, att := p.callOptions("get", name)
	v, err := c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: name}, opts...)
	if err != nil {
		return nil, &getError{err: err, att: att}
	}
	switch v.GetState() {
	case secretmanagerpb.SecretVersion_ENABLED:
		return v, nil
	case secretmanagerpb.SecretVersion_DISABLED:
		return v, &stateError{fmt.Errorf("get %s: %s is DISABLED: %w", name, v.GetName(), ErrVersionDisabled)}
	case secretmanagerpb.SecretVersion_DESTROYED:
		return v, &stateError{fmt.Errorf("get %s: %s is DESTROYED: %w", name, v.GetName(), ErrVersionDestroyed)}
	}
	return v, &stateError{fmt.Errorf("get %s: %s is in state %s", name, v.GetName(), v.GetState())}
}

// stateError is getVersion's error for a version that is not enabled.
type stateError struct{ err error }

func (e *stateError) Error() string { return e.err.Error() }
func (e *stateError) Unwrap() error { return e.err }

// getError is getVersion's error from the call, with its attempts.
type getError struct {
	err error
	att *providers.Attempts
}

func (e *getError) Error() string { return e.err.Error() }
func (e *getError) Unwrap() error { return e.err }

// versionError maps an error of getVersion.
func versionError(ctx context.Context, name string, err error, scrub providers.Scrubber) error {
	var se *stateError
	if errors.As(err, &se) {
		return se.err
	}
	var ge *getError
	if errors.As(err, &ge) {
		return callError(ctx, "get", name, ge.err, ge.att, scrub)
	}
	return callError(ctx, "get", name, err, nil, scrub)
}

// versionID is the identity of version v (resolved name resolved):
// NAME@CREATE_TIME, the creation time in RFC 3339 with the service's
// microseconds. Without a create_time (not sent), it is the name alone.
func versionID(resolved string, v *secretmanagerpb.SecretVersion) string {
	if ct := v.GetCreateTime(); ct != nil && ct.IsValid() {
		return resolved + "@" + ct.AsTime().UTC().Format(time.RFC3339Nano)
	}
	return resolved
}

// castagnoli is the CRC32C table Secret Manager's checksums use.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ProbeVersion asks GetSecretVersion which version ref resolves to
// (latest, an alias, or the pinned number) and when it was created,
// without reading the payload. It returns the identity a Fetch reports
// as Secret.Version, so a changed result means "latest" moved or the
// secret was deleted and created again. A version that is disabled or
// destroyed is an error (ErrVersionDisabled, ErrVersionDestroyed), as a
// Fetch of it would be; other errors are as for Fetch. When version
// metadata may not be read (see Fetch), it reads the payload instead.
func (p *Provider) ProbeVersion(ctx context.Context, ref providers.Ref) (string, error) {
	t, err := p.target(ref)
	if err != nil {
		return "", err
	}
	name := t.Name()
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("get %s: %w", name, err)
	}
	if p.readOnly.Load() {
		sec, err := p.Fetch(ctx, ref)
		return sec.Version, err
	}
	c, err := p.clientFor(ctx)
	if err != nil {
		return "", fmt.Errorf("get %s: %w", name, err)
	}
	v, err := p.getVersion(ctx, c, name)
	if err != nil {
		if status.Code(err) == codes.PermissionDenied && ctx.Err() == nil {
			// Reading the payload tells a role without versions.get
			// from one that may not read the secret at all.
			sec, ferr := p.getDenied(ctx, c, name)
			return sec.Version, ferr
		}
		return "", versionError(ctx, name, err, p.scrub())
	}
	resolved := v.GetName()
	if resolved == "" {
		resolved = name
	}
	return versionID(resolved, v), nil
}

// Close closes the client if one was created. Later calls fail.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.client == nil {
		return nil
	}
	err := p.client.Close()
	p.client = nil
	if err != nil {
		return fmt.Errorf("closing Secret Manager client: %w", err)
	}
	return nil
}

// callError turns a failed call on the version name into an error that
// names it and the gRPC code and wraps the matching sentinel. Secret
// Manager's messages name resources, never payloads; they are included
// (shortened) where they say more than the code. When ctx ended during
// the call, the error wraps ctx's error and says how the attempts before
// it failed (connection refused, a TLS handshake, …), from att.
func callError(ctx context.Context, op, name string, err error, att *providers.Attempts, scrub providers.Scrubber) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s %s: %w", op, name, att.Expired(ctxErr))
	}
	st, _ := status.FromError(err)
	code, msg := st.Code(), st.Message()
	if i := strings.Index(msg, workloadPrefix); i >= 0 {
		// The pod's identity could not be obtained (workload.go says
		// why, never with a token).
		if code == codes.PermissionDenied || code == codes.Unauthenticated {
			return fmt.Errorf("%s %s: %s: %w", op, name, scrub.Clip(msg[i:]), providers.ErrPermissionDenied)
		}
		return fmt.Errorf("%s %s: gRPC %s: %s", op, name, code, scrub.Clip(msg[i:]))
	}
	if credentialFailure(code, msg) {
		return fmt.Errorf("%s %s: %s: %w", op, name, statusText(err, scrub), providers.ErrPermissionDenied)
	}
	msg = scrub.Clip(msg)
	switch code {
	case codes.NotFound:
		return fmt.Errorf("%s %s: secret or version %w (gRPC NotFound)", op, name, providers.ErrNotFound)
	case codes.PermissionDenied:
		perm, role := "secretmanager.versions.access", "roles/secretmanager.secretAccessor"
		if op == "get" {
			perm, role = "secretmanager.versions.get", "roles/secretmanager.viewer"
		}
		return fmt.Errorf("%s %s: %w (gRPC PermissionDenied): the credentials in use lack %s on it (role %s grants it), or the secret does not exist",
			op, name, providers.ErrPermissionDenied, perm, role)
	case codes.Unauthenticated:
		return fmt.Errorf("%s %s: %w (gRPC Unauthenticated): the credentials were refused; check Application Default Credentials (workload identity, GOOGLE_APPLICATION_CREDENTIALS)",
			op, name, providers.ErrPermissionDenied)
	case codes.FailedPrecondition:
		switch {
		case strings.Contains(msg, "DISABLED"):
			return fmt.Errorf("%s %s: %w (gRPC FailedPrecondition: %s)", op, name, ErrVersionDisabled, msg)
		case strings.Contains(msg, "DESTROYED"):
			return fmt.Errorf("%s %s: %w (gRPC FailedPrecondition: %s)", op, name, ErrVersionDestroyed, msg)
		}
	case codes.InvalidArgument:
		return fmt.Errorf("%s %s: %w (gRPC InvalidArgument: %s)", op, name, providers.ErrInvalidReference, msg)
	case codes.Canceled:
		return fmt.Errorf("%s %s: %w (gRPC Canceled)", op, name, context.Canceled)
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s %s: %w (gRPC DeadlineExceeded)", op, name, context.DeadlineExceeded)
	}
	return fmt.Errorf("%s %s: %s", op, name, statusText(err, scrub))
}

// credentialFailure reports whether a status says that obtaining
// credentials failed (an executable or file source that printed something
// unexpected), whose message may quote what the source printed, which can
// be a token.
func credentialFailure(code codes.Code, msg string) bool {
	return strings.Contains(msg, "per-RPC creds") || strings.Contains(msg, "credentials") && code != codes.PermissionDenied && code != codes.Unauthenticated
}

// statusText describes a failed call's status for an error or a log line:
// "gRPC Unavailable: connection error: … connect: connection refused".
// A credential failure says what failed, never what the source printed.
func statusText(err error, scrub providers.Scrubber) string {
	st, _ := status.FromError(err)
	code, msg := st.Code(), st.Message()
	switch {
	case strings.Contains(msg, workloadPrefix):
		return "gRPC " + code.String() + ": " + scrub.Clip(msg[strings.Index(msg, workloadPrefix):])
	case credentialFailure(code, msg):
		return fmt.Sprintf("gRPC %s: getting Google credentials failed (details not shown; check Application Default Credentials)", code)
	case msg == "":
		return "gRPC " + code.String()
	}
	return "gRPC " + code.String() + ": " + scrub.Clip(msg)
}
