package providers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/backoff"
)

// RetryLogEvery is how often a provider instance logs that its calls fail
// and are retried, while they keep failing.
const RetryLogEvery = time.Minute

// Retries reports the failed attempts a provider retries, so that an
// outage shows from its first failure rather than when the caller's
// deadline runs out: each one is passed to the instance's OnRetry (the
// agent counts it in keyward_errors_total) and logged as a warning, at
// most once per RetryLogEvery per instance, with the number of failures
// not logged since. A provider makes one Retries when it is built and one
// Attempts per call. A nil *Retries logs and counts nothing. It is safe
// for concurrent use.
type Retries struct {
	instance string
	log      *slog.Logger
	onRetry  func(error)
	every    backoff.Every
}

// NewRetries returns the Retries of instance in: failures are logged to
// in.Logger, naming in.Name, and passed to in.OnRetry.
func NewRetries(in Instance) *Retries {
	log := in.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Retries{instance: in.Name, log: log, onRetry: in.OnRetry, every: backoff.Every{Interval: RetryLogEvery}}
}

// Call starts the record of one call: op is what it does ("access",
// "GetSecretValue", "read") and what it concerns (a secret's name or
// path), for the log line.
func (r *Retries) Call(op, what string) *Attempts {
	return &Attempts{r: r, op: op, what: what}
}

// Attempts is the record of one provider call that may be retried: how
// many of its attempts failed, and how the last one did. It is safe for
// concurrent use (an SDK may call back from its own goroutine).
type Attempts struct {
	r        *Retries
	op, what string

	mu   sync.Mutex
	n    int
	last error
}

// Failed records that an attempt failed with err and is retried after
// wait (negative when the caller does not know it yet). err must be safe
// to print: it may name the secret and the endpoint, never hold a value
// or a credential.
func (a *Attempts) Failed(err error, wait time.Duration) {
	if a == nil || err == nil {
		return
	}
	a.mu.Lock()
	a.n++
	a.last = err
	n := a.n
	a.mu.Unlock()
	r := a.r
	if r == nil {
		return
	}
	if r.onRetry != nil {
		r.onRetry(err)
	}
	if ok, suppressed := r.every.Allow(); ok {
		attrs := []any{"provider", r.instance, "op", a.op, "secret", a.what, "attempt", n, "err", err.Error()}
		if wait >= 0 {
			attrs = append(attrs, "retry_in", wait.Round(time.Millisecond))
		}
		r.log.Warn("provider call failed; retrying", append(attrs, "suppressed", suppressed)...)
	}
}

// Count returns how many attempts failed so far.
func (a *Attempts) Count() int {
	if a == nil {
		return 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

// Expired returns the error of a call whose context ended (ctxErr is its
// Err) while it was being attempted: ctxErr, wrapped, with what the
// attempts saw, so that the message names the cause rather than only
// "context deadline exceeded":
//
//	context deadline exceeded after 4 failed attempts, the last: dial tcp 127.0.0.1:8200: connect: connection refused
//	context deadline exceeded: no answer before the deadline
//
// The last failure is quoted, not wrapped: it was transient, and its
// sentinels (if any) do not describe the call's outcome.
func (a *Attempts) Expired(ctxErr error) error {
	n, last := 0, error(nil)
	if a != nil {
		a.mu.Lock()
		n, last = a.n, a.last
		a.mu.Unlock()
	}
	switch {
	case last == nil && errors.Is(ctxErr, context.DeadlineExceeded):
		return fmt.Errorf("%w: no answer before the deadline", ctxErr)
	case last == nil:
		return ctxErr
	case n == 1:
		return fmt.Errorf("%w after 1 failed attempt: %v", ctxErr, last)
	}
	return fmt.Errorf("%w after %d failed attempts, the last: %v", ctxErr, n, last)
}
