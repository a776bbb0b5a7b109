package rotate

import (
	"time"

	"github.com/keyward/keyward/providers"
)

// When to look at a secret again, and how: pure functions of the
// source's state, the time and a random number, with no lock and no I/O.
// The engine's loop owns the sources and applies what they return.

// op is what a check of a source does.
type op int

const (
	opFetch op = iota
	opProbe
	opRenew
)

func (o op) String() string {
	switch o {
	case opProbe:
		return "probe"
	case opRenew:
		return "renew"
	}
	return "fetch"
}

// schedule is what the next look at a healthy source depends on beside
// the source: the configured interval and jitter.
type schedule struct {
	interval time.Duration // Options.Interval; 0: by the provider's powers
	jitter   float64       // Options.Jitter
}

// pollInterval is how long after a successful look s is looked at again:
// the polling interval, or the safety interval while its provider's watch
// is running (watched).
func (sc schedule) pollInterval(s *source, watched bool) time.Duration {
	d := DefaultPollInterval
	switch {
	case sc.interval > 0:
		d = sc.interval
	case s.prober:
		d = DefaultProbeInterval
	}
	if watched {
		d = max(safetyFactor*d, minSafetyInterval)
	}
	return d
}

// never is the next look of a source that is not looked at again.
var never = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// next returns when a healthy s, looked at successfully at now, is looked
// at again: at about 2/3 of its lease, else after the interval, both with
// jitter (rand gives a number in [0, 1), drawn once); never, for a pinned
// version without a lease (it cannot change, so neither a probe nor a
// poll can find anything).
func (sc schedule) next(s *source, watched bool, now time.Time, rand func() float64) time.Time {
	if s.pinned && s.lease == nil {
		return never
	}
	if l := s.lease; l != nil && l.Duration > 0 {
		frac := leaseFraction * (1 - sc.jitter*rand())
		at := l.Obtained.Add(time.Duration(frac * float64(l.Duration)))
		return later(at, now.Add(minRecheck))
	}
	j := 1 + sc.jitter*(2*rand()-1)
	return now.Add(time.Duration(j * float64(sc.pollInterval(s, watched))))
}

// retryAt returns when a source that failed at now is looked at again:
// after delay (its backoff), but no later than the expiry of a lease that
// is still valid.
func retryAt(lease *providers.Lease, now time.Time, delay time.Duration) time.Time {
	at := now.Add(delay)
	if lease != nil && now.Before(lease.Expires()) && at.After(lease.Expires()) {
		return lease.Expires()
	}
	return at
}

// opFor chooses how to look at s now: renew a renewable lease that has not
// expired, fetch a leased secret, probe the version when the provider can
// and the last look succeeded, else fetch.
func opFor(s *source, now time.Time) op {
	switch l := s.lease; {
	case l != nil && l.Renewable && s.renewer && now.Before(l.Expires()):
		return opRenew
	case l != nil:
		return opFetch
	case s.prober && s.secret.Version != "" && s.failing == nil:
		return opProbe
	}
	// A source whose last look failed is read in full: what made it fail
	// (a deletion, a store restored from a backup) may have reset the
	// version a probe would compare, as a re-created GCP secret or Vault
	// KV v2 secret starts again at version 1.
	return opFetch
}

// leaseOf returns a copy of sec's lease with Obtained set (now when the
// provider left it zero), or nil.
func leaseOf(sec providers.Secret, now time.Time) *providers.Lease {
	if sec.Lease == nil {
		return nil
	}
	l := *sec.Lease
	if l.Obtained.IsZero() {
		l.Obtained = now
	}
	return &l
}

// earliest returns the earlier of a and b, ignoring a zero time.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
