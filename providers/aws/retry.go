package aws

import (
	"errors"
	"strconv"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/keyward/keyward/internal/backoff"
	"github.com/keyward/keyward/providers"
)

// Retry pacing: the ceiling of the first delay after a 5xx or network
// error, after throttling, and the cap of every delay (a server's
// Retry-After included).
const (
	retryBase     = 100 * time.Millisecond
	throttleBase  = 500 * time.Millisecond
	maxRetryDelay = 20 * time.Second
)

// delays is the SDK retryer's BackoffDelayer, a thin adapter over
// internal/backoff: capped exponential with full jitter, from a longer
// base after throttling, and at least the server's x-amz-retry-after or
// Retry-After when it sends one (still capped).
type delays struct {
	normal, throttled backoff.Backoff
}

func newDelays() *delays {
	return &delays{
		normal:    backoff.Backoff{Base: retryBase, Max: maxRetryDelay, MaxRetryAfter: maxRetryDelay},
		throttled: backoff.Backoff{Base: throttleBase, Max: maxRetryDelay, MaxRetryAfter: maxRetryDelay},
	}
}

// setRand makes both backoffs draw their jitter from r; tests set it.
func (d *delays) setRand(r func() float64) { d.normal.Rand, d.throttled.Rand = r, r }

var throttles = retry.IsErrorThrottles(retry.DefaultThrottles)

// BackoffDelay implements retry.BackoffDelayer: the delay before retry
// number attempt (1 for the first retry) after err.
func (d *delays) BackoffDelay(attempt int, err error) (time.Duration, error) {
	b := &d.normal
	if throttles.IsErrorThrottle(err).Bool() {
		b = &d.throttled
	}
	return b.Delay(attempt-1, retryAfter(err)), nil
}

// retryAfter returns the delay the server asked for in the response to
// err: x-amz-retry-after in milliseconds, else Retry-After.
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
	if d, ok := backoff.ParseRetryAfter(h.Get("Retry-After"), time.Now()); ok {
		return d
	}
	return 0
}

// observed is the client's retryer for one call: it decides and paces as
// the client's does, and records each failure it retries in the call's
// Attempts (logged at most once a minute, counted by the agent, quoted
// when the call runs out of time).
type observed struct {
	awssdk.RetryerV2
	att   *providers.Attempts
	scrub func() providers.Scrubber
}

// RetryDelay implements aws.Retryer; the SDK calls it once per retry.
func (r observed) RetryDelay(attempt int, err error) (time.Duration, error) {
	d, derr := r.RetryerV2.RetryDelay(attempt, err)
	if derr == nil {
		r.att.Failed(causeOf(err, r.scrub()), d)
	}
	return d, derr
}

// observe returns the per-call option that records the call's retries in
// att, their service messages scrubbed of the credentials the client signs
// with.
func (p *Provider) observe(att *providers.Attempts) func(*secretsmanager.Options) {
	return func(o *secretsmanager.Options) {
		if v2, ok := o.Retryer.(awssdk.RetryerV2); ok {
			o.Retryer = observed{RetryerV2: v2, att: att, scrub: p.sent.scrubber}
		}
	}
}
