// Package vault implements the "vault" provider kind: secrets read from
// HashiCorp Vault with its official client library. A reference names a path
// (vault://secret/payments/db#password): on a KV mount (version 1 or 2,
// detected per mount as `vault kv get` does) it reads the KV entry, pinned
// with ?version=N on KV v2; any other path is a dynamic secret (a database
// credential, a PKI certificate) whose lease the caller renews through
// Renew. The bank-vaults form vault:secret/data/path#key is accepted.
//
// keyward's own token comes from VAULT_TOKEN, a token file, or a login
// (AppRole, Kubernetes, JWT/OIDC); it is renewed lazily before use once 2/3
// of its TTL has passed, or when the agent calls RenewToken, and obtained
// again when Vault refuses to renew it or forgets it.
//
// Importing the package registers the kind with providers.Register.
package vault

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/keyward/keyward/providers"
)

// KindName is the name of the provider kind and of its default instance.
const KindName = "vault"

// ParamVersion pins a KV v2 reference to one version (?version=3).
const ParamVersion = "version"

// WriteParams are the query parameters a dynamic-secret reference may
// carry; they become the body of a write to the path (for example
// vault://pki/issue/web?common_name=web.internal&ttl=1h). A reference with
// none of them reads the path.
var WriteParams = []string{
	// pki issue / sign
	"common_name", "alt_names", "ip_sans", "uri_sans", "other_sans", "ttl",
	"format", "private_key_format", "exclude_cn_from_sans", "not_after", "user_ids",
	"remove_roots_from_chain",
	// aws, gcp, azure, kubernetes credentials
	"role_arn", "role_session_name", "kubernetes_namespace", "cluster_role_binding", "audiences",
	// ssh one-time passwords
	"ip", "username",
}

func init() {
	providers.Register(providers.Kind{
		Name:     KindName,
		Params:   append([]string{ParamVersion}, WriteParams...),
		CheckRef: CheckRef,
		New:      func(in providers.Instance) (providers.Provider, error) { return New(in) },
	})
}

var (
	_ providers.Provider      = (*Provider)(nil)
	_ providers.VersionProber = (*Provider)(nil)
	_ providers.LeaseRenewer  = (*Provider)(nil)
	_ providers.Pinner        = (*Provider)(nil)
)

// Pinned implements providers.Pinner: a KV v2 reference with ?version=N
// names one version, which never changes.
func (p *Provider) Pinned(ref providers.Ref) bool {
	_, ok := ref.Params[ParamVersion]
	return ok
}

// Provider reads secrets from one Vault (one address and namespace) with
// one identity. It starts no goroutines and is safe for concurrent use.
type Provider struct {
	name    string
	set     settings
	api     vaultAPI
	log     *slog.Logger
	getenv  func(string) string
	baseDir string
	now     func() time.Time

	// authLock is held (a buffered channel, so waiting honours ctx) while
	// a token is read, renewed or obtained by login.
	authLock chan struct{}
	mu       sync.Mutex // guards tok
	tok      token

	mounts mountCache

	retries *providers.Retries

	// workloadJWT, when set, is the JWT of the workload the provider acts
	// for (providers.Workload), presented instead of jwt_file.
	workloadJWT func() (string, error)
}

// New builds a provider for the instance: its options (Options, decoded
// with in.Decode) over the VAULT_* variables of in.Getenv. It reads the TLS
// files it is given but does not contact Vault; the token is read or
// obtained on the first Fetch. Errors name the option at fault.
func New(in providers.Instance) (*Provider, error) {
	var o Options
	if in.Decode != nil {
		if err := in.Decode(&o); err != nil {
			return nil, fmt.Errorf("vault provider options: %w", err)
		}
	}
	getenv := in.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	log := in.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	name := in.Name
	if name == "" {
		name = KindName
	}
	s, err := resolveSettings(o, getenv, in.BaseDir)
	if err != nil {
		return nil, fmt.Errorf("vault provider %s: %w", name, err)
	}
	c, err := newClient(s)
	if err != nil {
		return nil, fmt.Errorf("vault provider %s: %w", name, err)
	}
	warnInsecure(log, name, s)
	p := newProvider(name, s, c, log, getenv, in.BaseDir)
	in.Name, in.Logger = name, log
	p.retries = providers.NewRetries(in)
	if in.Workload != nil {
		if err := p.actAs(in.Workload); err != nil {
			return nil, fmt.Errorf("vault provider %s: %w", name, err)
		}
	}
	return p, nil
}

func newProvider(name string, s settings, c vaultAPI, log *slog.Logger, getenv func(string) string, baseDir string) *Provider {
	return &Provider{
		name: name, set: s, api: c, log: log, getenv: getenv, baseDir: baseDir,
		now:      time.Now,
		authLock: make(chan struct{}, 1),
		mounts:   mountCache{inflight: map[string]chan struct{}{}},
		retries:  providers.NewRetries(providers.Instance{Name: name, Logger: log}),
	}
}

// CheckRef validates a vault reference without I/O: the path is relative,
// has no empty, "." or ".." segment, ?version is a positive integer, and
// ?version is not combined with write parameters. Errors wrap
// providers.ErrInvalidReference.
func CheckRef(ref providers.Ref) error {
	p := ref.Path
	switch {
	case p == "":
		return fmt.Errorf("empty vault path: %w", providers.ErrInvalidReference)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("vault path must not start with '/' (write vault://secret/app, not vault:///secret/app): %w", providers.ErrInvalidReference)
	}
	for _, seg := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
		switch seg {
		case "":
			return fmt.Errorf("vault path %q has an empty segment: %w", p, providers.ErrInvalidReference)
		case ".", "..":
			return fmt.Errorf("vault path %q has a %q segment: %w", p, seg, providers.ErrInvalidReference)
		}
	}
	for i := 0; i < len(p); i++ {
		if p[i] < 0x20 || p[i] == 0x7f {
			return fmt.Errorf("vault path has a control character: %w", providers.ErrInvalidReference)
		}
	}
	if v, ok := ref.Params[ParamVersion]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("version %q is not a positive integer: %w", v, providers.ErrInvalidReference)
		}
		if len(ref.Params) > 1 {
			return fmt.Errorf("version pins a KV v2 secret and cannot be combined with write parameters: %w", providers.ErrInvalidReference)
		}
	}
	return nil
}

// Fetch reads the secret ref names. On a KV v2 mount it reads the latest
// version, or the one ?version= pins, and sets Version to its number and
// created_time ("3@2026-01-02T03:04:05.123456789Z", see ProbeVersion); on a
// KV v1 mount it sets Version to a fingerprint of the content. Any other
// path is read (or, with write parameters, written) and its lease, if
// Vault returned one, is in Secret.Lease with Version set to the lease ID.
// Secret.Data holds the fields; Value is empty.
//
// Errors name the Vault path, the operation and, where useful, a hint (the
// policy capability needed, a KV v2 path given with or without data/); they
// wrap providers.ErrNotFound or providers.ErrPermissionDenied where those
// apply and ctx's error after cancellation. They never hold a secret value
// or a token. Transient failures were already retried.
func (p *Provider) Fetch(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
	if err := ctx.Err(); err != nil {
		return providers.Secret{}, fmt.Errorf("vault read %s: %w", ref.Path, err)
	}
	if err := CheckRef(ref); err != nil {
		return providers.Secret{}, err
	}
	m, err := p.mountOf(ctx, ref.Path)
	if err != nil {
		return providers.Secret{}, err
	}
	switch m.kv {
	case 2:
		return p.readKV2(ctx, ref, m)
	case 1:
		return p.readKV1(ctx, ref, m)
	}
	return p.readDynamic(ctx, ref, m)
}

// Close releases idle connections. It does not revoke keyward's token.
func (p *Provider) Close() error {
	p.api.closeIdle()
	return nil
}

// tokenRejected is returned by call when Vault does not know keyward's
// token (revoked, expired, lost by a restarted dev server) and no new one
// could be had. It deliberately does not unwrap to Vault's 403, which
// callers read as a policy denial.
type tokenRejected struct {
	source string
}

func (e *tokenRejected) Error() string { return "vault rejects the token from " + e.source }

// call sends req with keyward's token. When Vault answers 403, it asks
// Vault whether it still knows the token: if not, it obtains a new one
// (login or token file) and tries once more; if the token is fine, the 403
// is a policy denial and is returned as it is.
//
// The client retries transient failures; each one is recorded (logged at
// most once a minute, counted by the agent), and when ctx ends during the
// call the error wraps ctx's error with how those attempts failed.
func (p *Provider) call(ctx context.Context, req request) (*api.Secret, error) {
	req.attempts = p.retries.Call(strings.ToLower(req.method), req.path)
	for attempt := 0; ; attempt++ {
		tok, err := p.currentToken(ctx)
		if err != nil {
			return nil, err
		}
		req.token = tok
		sec, err := p.api.do(ctx, req)
		if err != nil && ctx.Err() != nil {
			return nil, req.attempts.Expired(ctx.Err())
		}
		if err == nil || statusOf(err) != http.StatusForbidden {
			return sec, err
		}
		if _, lerr := p.lookupSelf(ctx, tok); statusOf(lerr) != http.StatusForbidden {
			return sec, err // the token is valid: a policy denial
		}
		p.mu.Lock()
		source := p.tok.source
		p.mu.Unlock()
		p.dropToken(tok)
		if attempt > 0 || !p.canReobtain() {
			return nil, &tokenRejected{source: source}
		}
		p.log.Info("vault no longer accepts keyward's token; obtaining a new one",
			"provider", p.name, "method", p.set.auth.Method)
	}
}

// tokenSource says where the current token came from, for messages.
func (p *Provider) tokenSource() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tok.source != "" {
		return p.tok.source
	}
	return "auth method " + p.set.auth.Method
}

// readDynamic reads (or writes, with parameters) a non-KV path.
func (p *Provider) readDynamic(ctx context.Context, ref providers.Ref, m mount) (providers.Secret, error) {
	if _, ok := ref.Params[ParamVersion]; ok {
		return providers.Secret{}, fmt.Errorf("vault %s: ?version applies to KV v2 mounts only, and %s is a %s mount: %w",
			ref.Path, m.describe(), m.typ, providers.ErrInvalidReference)
	}
	req := request{method: http.MethodGet, path: ref.Path}
	op := "read"
	if len(ref.Params) > 0 {
		req.method, op = http.MethodPut, "write"
		req.body = make(map[string]any, len(ref.Params))
		for k, v := range ref.Params {
			req.body[k] = v
		}
	}
	obtained := p.now()
	sec, err := p.call(ctx, req)
	if err != nil {
		return providers.Secret{}, p.apiError(ctx, op, ref.Path, err, "")
	}
	if sec == nil {
		return providers.Secret{}, fmt.Errorf("vault %s %s: no secret at this path: %w", op, ref.Path, providers.ErrNotFound)
	}
	data := sec.Data
	if data == nil {
		data = map[string]any{}
	}
	out := providers.Secret{Data: data}
	if sec.LeaseID != "" || sec.LeaseDuration > 0 {
		out.Lease = &providers.Lease{
			ID:        sec.LeaseID,
			Duration:  time.Duration(sec.LeaseDuration) * time.Second,
			Renewable: sec.Renewable && sec.LeaseID != "",
			Obtained:  obtained,
		}
	}
	if sec.LeaseID != "" {
		out.Version = sec.LeaseID
	} else {
		out.Version = fingerprint(data)
	}
	return out, nil
}

// Renew extends a dynamic secret's lease by its original duration
// (sys/leases/renew). The returned Lease starts now; it is marked not
// renewable when Vault granted less than was asked (the lease reached its
// max TTL), so the caller fetches a fresh secret before it expires. Errors
// wrap providers.ErrLeaseNotRenewable when the lease cannot be extended
// (not renewable, expired, revoked, unknown to Vault),
// providers.ErrPermissionDenied when the token's policies do not allow it,
// and ctx's error after cancellation; other errors are transient.
func (p *Provider) Renew(ctx context.Context, ref providers.Ref, lease providers.Lease) (providers.Lease, error) {
	const path = "sys/leases/renew"
	switch {
	case lease.ID == "":
		return providers.Lease{}, fmt.Errorf("vault renew %s: the secret has no lease ID: %w", ref.Path, providers.ErrLeaseNotRenewable)
	case !lease.Renewable:
		return providers.Lease{}, fmt.Errorf("vault renew lease %s: not renewable: %w", lease.ID, providers.ErrLeaseNotRenewable)
	case !p.now().Before(lease.Expires()):
		return providers.Lease{}, fmt.Errorf("vault renew lease %s: expired at %s: %w", lease.ID, lease.Expires().Format(time.RFC3339), providers.ErrLeaseNotRenewable)
	}
	inc := int64(lease.Duration / time.Second)
	if inc < 1 {
		inc = 1
	}
	obtained := p.now()
	sec, err := p.call(ctx, request{
		method: http.MethodPut, path: path,
		body: map[string]any{"lease_id": lease.ID, "increment": inc},
	})
	if err != nil {
		if ctx.Err() == nil {
			if re := responseError(err); re != nil && re.StatusCode == http.StatusBadRequest {
				return providers.Lease{}, fmt.Errorf("vault renew lease %s: %s: %w", lease.ID, providers.ClipMessage(p.scrubbed(vaultMessage(re))), providers.ErrLeaseNotRenewable)
			}
		}
		return providers.Lease{}, p.apiError(ctx, "renew lease "+lease.ID+" at", path, err, "")
	}
	if sec == nil {
		return providers.Lease{}, fmt.Errorf("vault renew lease %s: empty answer", lease.ID)
	}
	nl := providers.Lease{
		ID:        lease.ID,
		Duration:  time.Duration(sec.LeaseDuration) * time.Second,
		Renewable: sec.Renewable,
		Obtained:  obtained,
	}
	if sec.LeaseID != "" {
		nl.ID = sec.LeaseID
	}
	if nl.Duration < time.Duration(inc)*time.Second {
		nl.Renewable = false
		p.log.Debug("vault lease reached its max TTL", "provider", p.name, "lease", nl.ID, "ttl", nl.Duration)
	}
	return nl, nil
}

// queryOf returns the ?version query of a KV v2 read.
func queryOf(version string) url.Values {
	if version == "" {
		return nil
	}
	return url.Values{"version": {version}}
}
