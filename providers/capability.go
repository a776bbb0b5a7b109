package providers

import (
	"context"
	"errors"
	"time"
)

// Optional provider capabilities. The rotation engine (rotate/) finds them
// by type assertion on a Provider; a provider implements only those its
// store supports. Like Fetch, each is safe for concurrent use.

// VersionProber is a provider that can learn a secret's current version
// more cheaply than reading it (Vault KV v2 metadata, AWS DescribeSecret,
// GCP GetSecretVersion of "latest"). The version string is comparable with
// Secret.Version of a Fetch of the same ref; when it differs, the secret
// changed and is fetched again. Errors follow Fetch's rules.
type VersionProber interface {
	ProbeVersion(ctx context.Context, ref Ref) (string, error)
}

// VersionFetcher is a VersionProber that can read the version a probe
// returned without learning again which version the reference resolves
// to (GCP: AccessSecretVersion of the version name the probe's
// GetSecretVersion answered, without a second GetSecretVersion).
// FetchVersion returns what Fetch would, with Version equal to version; a
// version it cannot use that way (not one its ProbeVersion returns) makes
// it Fetch. Errors follow Fetch's rules.
type VersionFetcher interface {
	FetchVersion(ctx context.Context, ref Ref, version string) (Secret, error)
}

// Watcher is a provider whose store can push changes (Kubernetes watch,
// fsnotify). Watch blocks until ctx is done or the watch fails for good,
// calling changed (never concurrently with itself) with each ref whose
// secret may have changed; the caller then fetches it again. refs are
// whole-secret refs (no Field). Watch returns ctx.Err() after cancellation
// and releases everything it started before returning.
type Watcher interface {
	Watch(ctx context.Context, refs []Ref, changed func(Ref)) error
}

// HealthWatcher is a Watcher that keeps its watch going through failures
// by itself (reconnecting with backoff) instead of returning, so that its
// caller cannot tell from Watch alone that changes go unseen. WatchHealth
// is Watch that also calls healthy, never concurrently with itself or with
// changed, with false when the watch stops covering some of refs (a
// connection failed and is being re-established) and with true once it
// covers them all again; changes made in between are then reported
// through changed. The watch counts as healthy when WatchHealth is called.
// A nil healthy is allowed.
type HealthWatcher interface {
	Watcher
	WatchHealth(ctx context.Context, refs []Ref, changed func(Ref), healthy func(bool)) error
}

// Lease describes a secret that expires (Vault dynamic secrets): it must be
// renewed or fetched again before Obtained+Duration.
type Lease struct {
	ID        string
	Duration  time.Duration
	Renewable bool
	Obtained  time.Time
}

// Expires is when the lease runs out.
func (l Lease) Expires() time.Time { return l.Obtained.Add(l.Duration) }

// LeaseRenewer is a provider that can extend a Lease. Renew returns the
// renewed lease; an error wrapping ErrLeaseNotRenewable (or any error once
// the lease has expired) tells the caller to Fetch a fresh secret instead.
type LeaseRenewer interface {
	Renew(ctx context.Context, ref Ref, lease Lease) (Lease, error)
}

// Pinner is a provider whose references can name one version of a secret
// that never changes (Vault ?version=3, AWS ?version-id=, a GCP version
// number): a rotation check of such a reference is pointless, so the
// engine neither probes nor polls it. Pinned is pure: no I/O.
type Pinner interface {
	Pinned(ref Ref) bool
}

// IsPinned reports whether p says ref names a version that never changes.
func IsPinned(p Provider, ref Ref) bool {
	pn, ok := p.(Pinner)
	return ok && pn.Pinned(ref)
}

// Canonicalizer is a provider whose references can spell one secret in
// more than one way (a default project or base directory left out, the
// default version named or not). Canonical returns ref (which has no
// Field) in one spelling per secret and version, its defaults filled in,
// so that the Set fetches two spellings of one secret once and gives all
// names of it the fields of one version. Two references whose canonical
// forms differ may still name one secret (when telling would need I/O);
// two whose forms are equal must not name different ones. It does no I/O,
// keeps the Scheme, and fails (wrapping ErrInvalidReference) for a
// reference the instance cannot serve, as Fetch would.
type Canonicalizer interface {
	Canonical(ref Ref) (Ref, error)
}

// Writer is a provider that can store a new value in a secret, guarded by
// the version it was read at (compare-and-set): keyward writes back a
// rotated OAuth2 refresh token with it. Write stores value at ref, which
// names a field of a structured secret (the secret's other fields are
// kept) or, where the store holds plain values, the whole secret. from is
// the Version of the Fetch of ref that value replaces; the write succeeds
// only while the secret is still at that version, and returns the new
// version (comparable with Secret.Version).
//
// Write is idempotent: when the secret has moved on from from and already
// holds value at ref (a write whose answer was lost, retried), it returns
// the current version. When it holds anything else, the error wraps
// ErrConflict and nothing is written. A reference the store cannot write
// (a pinned version, a store without a compare-and-set, a field of a file)
// wraps errors.ErrUnsupported. Other errors follow Fetch's rules; value
// never appears in an error.
type Writer interface {
	Write(ctx context.Context, ref Ref, value []byte, from string) (version string, err error)
}

// ErrConflict is wrapped by Writer.Write when the secret changed since the
// version the write was based on.
var ErrConflict = errors.New("the secret changed since it was read")

// CredentialSource is a provider that can hand out a short-lived
// credential for a workload that talks to the store's platform itself:
// keyward's own Vault token (as Vault Agent's token sink does), temporary
// AWS credentials, a Google access or ID token. keyward's tokens with
// source: vault, aws or gcp serve it. Credential returns it as a Secret:
// Value is the credential as a workload presents it, Data holds its parts
// where it has several (AWS: AccessKeyId, SecretAccessKey, SessionToken),
// and Lease (Obtained and Duration) says when it expires; nil when it does
// not, or nobody knows. A request field the kind does not use is an error
// wrapping ErrInvalidReference. Errors follow Fetch's rules.
type CredentialSource interface {
	Credential(ctx context.Context, req CredentialRequest) (Secret, error)
}

// CredentialRequest says which credential a CredentialSource hands out.
type CredentialRequest struct {
	// RoleARN (AWS) is a role to assume with STS AssumeRole, under
	// SessionName; without it, the credentials of the default chain, made
	// temporary with STS GetSessionToken when they are long-lived.
	RoleARN, SessionName string
	// Scopes (GCP) are the OAuth2 scopes of an access token.
	Scopes []string
	// Audience (GCP) asks for an ID token for this audience instead.
	Audience string
	// Duration is the lifetime asked for; 0 leaves it to the store.
	Duration time.Duration
}
