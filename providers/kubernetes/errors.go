package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keyward/keyward/internal/backoff"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/keyward/keyward/providers"
)

// apiError turns an API error of verb on the Secret namespace/name (name
// may be empty for list and watch) into the provider's error: the
// sentinels where they apply, the verb, resource and namespace in the
// message, and the API server's own reason (which names the user, never a
// value or a token), clipped (providers.ClipMessage).
func apiError(ctx context.Context, verb, namespace, name string, err error) error {
	what := fmt.Sprintf("%s secret %s/%s", verb, namespace, name)
	if name == "" {
		what = fmt.Sprintf("%s secrets in namespace %s", verb, namespace)
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return fmt.Errorf("%s: %w", what, err)
	}
	reason := providers.ClipMessage(status.Status().Message)
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s: %w", what, providers.ErrNotFound)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s: %w: RBAC does not allow verb %q on resource \"secrets\" in namespace %q (%s)",
			what, providers.ErrPermissionDenied, verb, namespace, reason)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s: %w: the API server rejected the credentials (401 Unauthorized)", what, providers.ErrPermissionDenied)
	}
	return fmt.Errorf("%s: %s (HTTP %d)", what, reason, status.Status().Code)
}

// retryCause is how a failed attempt is recorded (logged, and quoted by
// an error once the caller's deadline ends the retries): an API server's
// answer as its clipped message and status code, anything else (a
// network error) as it is.
func retryCause(err error) error {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return err
	}
	st := status.Status()
	return fmt.Errorf("%s (HTTP %d)", providers.ClipMessage(st.Message), st.Code)
}

// apiNotFound reports whether err is the API server's 404.
func apiNotFound(err error) bool { return apierrors.IsNotFound(err) }

// transient reports whether a failed call may succeed when retried:
// throttling, 5xx answers, timeouts and network errors. Denials, not-found
// and bad requests are permanent.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return true // network error, EOF, TLS handshake timeout, …
	}
	code := status.Status().Code
	return code == http.StatusTooManyRequests || code >= 500 ||
		apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err)
}

// permanent reports whether err means the watch cannot work as configured
// (denied, credentials rejected, malformed request) rather than a passing
// failure.
func permanent(err error) bool {
	return apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) || apierrors.IsBadRequest(err) || apierrors.IsInvalid(err)
}

// retryAfter returns the delay the API server asked for, or 0.
func retryAfter(err error) time.Duration {
	if s, ok := apierrors.SuggestsClientDelay(err); ok && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

// newBackoff is the project's capped exponential backoff with full jitter
// (internal/backoff), with Retry-After hints capped at a minute.
func newBackoff(base, cap time.Duration) *backoff.Backoff {
	return &backoff.Backoff{Base: base, Max: cap, MaxRetryAfter: time.Minute}
}
