package providers

import "errors"

// Sentinel errors every provider maps its store's answers to. Providers wrap
// them (fmt.Errorf("...: %w", ErrNotFound)); callers test with errors.Is.
var (
	// ErrNotFound: the secret, its version or the requested field does not exist.
	ErrNotFound = errors.New("not found")
	// ErrPermissionDenied: the store refused access with the credentials in use.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrUnavailable: the provider kind is known but not compiled into this
	// build (a build tag left it out; see RegisterNotInBuild).
	ErrUnavailable = errors.New("not in this build")
	// ErrInvalidReference: a reference is malformed or names an unknown scheme or option.
	ErrInvalidReference = errors.New("invalid reference")
)

// ErrLeaseNotRenewable: a lease cannot be extended further; fetch the secret again.
var ErrLeaseNotRenewable = errors.New("lease not renewable")
