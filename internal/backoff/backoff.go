// Package backoff is keyward's one retry-delay helper: capped exponential
// backoff with full jitter that honours a server's Retry-After, a
// context-aware wait, and Every, which lets a persisting error be logged at
// most once per interval.
//
// Nothing here starts a goroutine or reads the clock except through the
// time package, so code using it is testable with testing/synctest.
package backoff

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for a zero Backoff.
const (
	DefaultBase = time.Second
	DefaultMax  = 5 * time.Minute
	// DefaultMaxRetryAfter bounds how long a Retry-After hint may make
	// a caller wait, so a misbehaving server cannot stall it for days.
	DefaultMaxRetryAfter = 15 * time.Minute
)

// Backoff computes successive retry delays. Attempt n (0-based) waits a
// uniformly random duration in [0, min(Max, Base·2ⁿ)) ("full jitter"), or the
// server's Retry-After when that is longer. Reset starts over after a
// success.
//
// The zero value is usable (DefaultBase, DefaultMax). A Backoff is not safe
// for concurrent use; give each retry loop its own.
type Backoff struct {
	// Base is the cap of the first delay; 0 means DefaultBase.
	Base time.Duration
	// Max caps every delay drawn from the exponential; 0 means DefaultMax.
	Max time.Duration
	// MaxRetryAfter caps a Retry-After hint; 0 means DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
	// Rand returns a number in [0, 1); nil uses math/rand/v2. Tests set it.
	Rand func() float64

	attempt int
}

// Attempt returns how many delays were drawn since the last Reset.
func (b *Backoff) Attempt() int { return b.attempt }

// Reset makes the next delay the first again. Call it after a success.
func (b *Backoff) Reset() { b.attempt = 0 }

// Ceiling returns the cap of the delay the next call to Next draws from,
// min(Max, Base·2^attempt).
func (b *Backoff) Ceiling() time.Duration { return b.ceilingAt(b.attempt) }

func (b *Backoff) ceilingAt(attempt int) time.Duration {
	base, max := b.Base, b.Max
	if base <= 0 {
		base = DefaultBase
	}
	if max <= 0 {
		max = DefaultMax
	}
	d := base
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// Next returns the delay before the next attempt and counts it.
func (b *Backoff) Next() time.Duration {
	return b.NextAfter(0)
}

// NextAfter is Next for an attempt after which the server asked to wait
// retryAfter (0 when it did not): the delay is the longer of the jittered
// exponential and retryAfter, the latter capped at MaxRetryAfter.
func (b *Backoff) NextAfter(retryAfter time.Duration) time.Duration {
	d := b.Delay(b.attempt, retryAfter)
	b.attempt++
	return d
}

// Delay returns the delay before retry number attempt (0-based) after
// which the server asked to wait retryAfter (0 when it did not), as
// NextAfter would draw it at that attempt, without counting it: for
// callers (an SDK's retryer) that keep the attempt number themselves. It
// is safe for concurrent use when Rand is.
func (b *Backoff) Delay(attempt int, retryAfter time.Duration) time.Duration {
	ceil := b.ceilingAt(max(attempt, 0))
	r := b.Rand
	if r == nil {
		r = rand.Float64
	}
	d := time.Duration(r() * float64(ceil))
	if retryAfter > 0 {
		limit := b.MaxRetryAfter
		if limit <= 0 {
			limit = DefaultMaxRetryAfter
		}
		d = max(d, min(retryAfter, limit))
	}
	return d
}

// Wait blocks for d or until ctx is done, whichever comes first, and
// returns ctx.Err() in the latter case.
func Wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// RetryAfterError is implemented by errors that carry a server's request
// to wait before retrying (HTTP 429/503 Retry-After, a gRPC RetryInfo).
type RetryAfterError interface {
	error
	RetryAfter() time.Duration
}

// RetryAfter returns the wait requested by the first error in err's chain
// that implements RetryAfterError, or 0.
func RetryAfter(err error) time.Duration {
	var ra RetryAfterError
	if errors.As(err, &ra) {
		return max(ra.RetryAfter(), 0)
	}
	return 0
}

// ParseRetryAfter reads an HTTP Retry-After header value: delay-seconds or
// an HTTP-date (RFC 9110 §10.2.3), relative to now. It returns false for an
// empty or malformed value; a date in the past gives 0, true.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		const maxSecs = int64(1<<63-1) / int64(time.Second)
		return time.Duration(min(secs, maxSecs)) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// Retry calls fn until it returns nil, a permanent error (see Permanent),
// or ctx is done, waiting b's delays (and any RetryAfter of the error)
// in between. It returns nil, the permanent error (unwrapped when fn
// returned Permanent(err) itself; as fn returned it when the mark is
// deeper, so that the context fn's wrapping added stays), or the last
// error joined with ctx's. b is Reset on success.
func Retry(ctx context.Context, b *Backoff, fn func(context.Context) error) error {
	for {
		err := fn(ctx)
		if err == nil {
			b.Reset()
			return nil
		}
		var p *permanentError
		if errors.As(err, &p) {
			if err == error(p) {
				return p.err
			}
			return err
		}
		if werr := Wait(ctx, b.NextAfter(RetryAfter(err))); werr != nil {
			return errors.Join(err, werr)
		}
	}
}

// Permanent marks err as not worth retrying: Retry returns it at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent: whatever failed will fail again until something outside the
// process changes (a file refused for what it is, say), so a retry
// decision must not retry it.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Every limits how often something happens (typically: logging that an
// error persists) to at most once per Interval. The zero Interval allows
// every call. It is safe for concurrent use.
type Every struct {
	// Interval is the minimum time between two allowed calls.
	Interval time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// Allow reports whether the caller may act now, and how many calls were
// refused since the last allowed one (so a log line can say "and N more").
func (e *Every) Allow() (ok bool, suppressed int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	if !e.last.IsZero() && now.Sub(e.last) < e.Interval {
		e.suppressed++
		return false, 0
	}
	e.last = now
	n := e.suppressed
	e.suppressed = 0
	return true, n
}

// Reset forgets the last allowed call, so the next Allow is allowed: call
// it when the condition being logged has cleared.
func (e *Every) Reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.last = time.Time{}
	e.suppressed = 0
}
