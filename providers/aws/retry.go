package aws

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// backoff is the SDK retryer's delay between attempts: capped exponential
// with full jitter, a longer base for throttling than for 5xx and network
// errors, and at least the server's x-amz-retry-after or Retry-After
// when it sends one (still capped). It implements retry.BackoffDelayer.
type backoff struct {
	// base is the ceiling of the first delay after a 5xx or network error.
	base time.Duration
	// throttleBase is the ceiling of the first delay after throttling.
	throttleBase time.Duration
	// max caps every delay.
	max time.Duration
	// jitter returns a number in [0, 1); tests replace it.
	jitter func() float64
}

func newBackoff() *backoff {
	return &backoff{
		base:         100 * time.Millisecond,
		throttleBase: 500 * time.Millisecond,
		max:          20 * time.Second,
		jitter:       rand.Float64,
	}
}

var throttles = retry.IsErrorThrottles(retry.DefaultThrottles)

// BackoffDelay returns the delay before retry number attempt (1 for the
// first retry) after err.
func (b *backoff) BackoffDelay(attempt int, err error) (time.Duration, error) {
	base := b.base
	if throttles.IsErrorThrottle(err).Bool() {
		base = b.throttleBase
	}
	ceiling := b.max
	if attempt < 1 {
		attempt = 1
	}
	if attempt <= 30 {
		if c := base << (attempt - 1); c > 0 && c < b.max {
			ceiling = c
		}
	}
	d := time.Duration(b.jitter() * float64(ceiling))
	if ra := retryAfter(err); ra > d {
		d = ra
	}
	return min(d, b.max), nil
}

// retryAfter returns the delay the server asked for in the response to
// err: x-amz-retry-after in milliseconds, else Retry-After in seconds.
func retryAfter(err error) time.Duration {
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.Response == nil || re.Response.Response == nil {
		return 0
	}
	h := re.Response.Header
	if v := h.Get("X-Amz-Retry-After"); v != "" {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms > 0 {
			return time.Duration(ms) * time.Millisecond
		}
	}
	if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil && s > 0 {
			return time.Duration(s) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			return time.Until(t)
		}
	}
	return 0
}
