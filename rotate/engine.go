package rotate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/backoff"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/render"
)

// Defaults for Options.
const (
	// DefaultProbeInterval is the polling interval of a secret whose
	// provider has a cheap version probe.
	DefaultProbeInterval = 30 * time.Second
	// DefaultPollInterval is the polling interval of a secret whose
	// provider has none (a full read each time).
	DefaultPollInterval = 5 * time.Minute
	// DefaultDebounce is the quiet time after a watch event before the
	// secrets it concerns are fetched.
	DefaultDebounce = 40 * time.Millisecond
	// DefaultMaxDelay bounds the debounce of a continuous stream of events.
	DefaultMaxDelay = time.Second
	// DefaultLogEvery is how often a persisting failure is logged.
	DefaultLogEvery = time.Minute

	// leaseFraction is the share of a lease's duration after which it is
	// renewed (or the secret fetched again).
	leaseFraction = 2.0 / 3
	// minRecheck is the shortest time between two scheduled looks at one
	// secret, a guard against a provider handing out leases already spent.
	minRecheck = time.Second
	// retryBase and retryMax bound the backoff of a failing secret.
	retryBase = time.Second
	retryMax  = 5 * time.Minute

	// A secret whose provider's native watch is running is polled only as
	// a safety net, against an event the watch missed (a bug, a dropped
	// inotify event, a store that lost a change): every
	// max(safetyFactor × its polling interval, minSafetyInterval) ±
	// jitter. With the defaults that is 10 min for a provider with a
	// version probe (Kubernetes) and 50 min for one without (files). Ten
	// times the interval keeps the cost of watched secrets a tenth of
	// polling them; the 10 min floor keeps a short Interval, chosen for
	// the secrets that are polled, from making the safety net busy. While
	// the watch is down (between a failure and its restart) the provider's
	// secrets are polled at the normal interval.
	safetyFactor      = 10
	minSafetyInterval = 10 * time.Minute
)

// File is one file the engine renders, with its own on_change action.
type File struct {
	render.File
	// OnChange is the action after a rotation rewrote this file; nil
	// means Options.OnChange, and none when that is nil too.
	OnChange *Action
}

// Options configure an Engine.
type Options struct {
	// Providers is the provider set every look at a secret goes through
	// (its plan groups the secrets by identity; its per-instance
	// concurrency limit and timeout bound every call). Required.
	Providers *providers.Set
	// Secrets maps each secret name to its reference. Required.
	Secrets map[string]providers.Ref
	// Files are rendered by Init and re-rendered when a secret they use
	// changes.
	Files []File
	// EnvSecrets are the secret names the child gets through its
	// environment: a change of one of them runs Options.OnChange (a
	// restart when that is nil; never a signal, which cannot change a
	// running child's environment) once every file using it rendered.
	EnvSecrets []string
	// OnChange is the top-level on_change action; nil means restart for
	// a change in EnvSecrets and none for files.
	OnChange *Action
	// Child is the workload that signal and restart actions act on; nil
	// when there is none (the actions then fail and are counted).
	Child Child
	// RunCommand runs command actions; nil uses ChildCommandRunner with
	// keyward's environment and standard output and error.
	RunCommand CommandRunner
	// BeforeApply, when set, is called with every current value after a
	// rotation and before its files are written or its action runs, and by
	// Init with the values it fetched before the first render (the masker
	// learns new values before the child, a file or an error can show
	// them). It runs on the engine's apply goroutine (Init's caller's for
	// Init) and must not block.
	BeforeApply func(values map[string]providers.Resolved)

	// Interval is the polling interval; 0 uses DefaultProbeInterval or
	// DefaultPollInterval depending on the provider. A secret whose
	// provider's watch is running is polled only every max(10 × this,
	// 10 min), as a safety net.
	Interval time.Duration
	// Jitter is the fraction (0..1) by which each interval is varied at
	// random, and by which a lease renewal is brought forward.
	Jitter float64
	// Debounce is the quiet time after a watch event before fetching;
	// 0 uses DefaultDebounce.
	Debounce time.Duration
	// MaxDelay bounds the debounce of a continuous stream of watch
	// events; 0 uses DefaultMaxDelay.
	MaxDelay time.Duration
	// LogEvery is how often a persisting failure is logged again; 0 uses
	// DefaultLogEvery.
	LogEvery time.Duration

	// Logger receives the engine's lines; nil discards them. No line
	// carries a value.
	Logger *slog.Logger
	// Metrics records the engine's metrics; nil records none. Every call
	// of Providers is counted in them (providers.Set.ObserveCalls), and so
	// are the failed attempts its providers retry (ObserveRetries).
	Metrics *Metrics
	// Rand returns numbers in [0, 1) for jitter and backoff; nil uses
	// math/rand/v2. Tests set it.
	Rand func() float64
}

// Engine keeps a configuration's secrets fresh. Create it with New, call
// Init once successfully, then Run. Values and Ready are safe to call from
// any goroutine at any time.
//
// The engine is four parts, each with its own state: the loop of Run
// (this file), which owns the sources and decides with the pure functions
// of schedule.go when and how to look at each; the watches (watches.go),
// whose lock guards what the providers' watches report; the applier
// (apply.go), whose lock guards the changes handed to it, and which
// renders and runs the on_change actions on its own goroutine; and the
// published state below (values, leases), guarded by mu.
type Engine struct {
	opts    Options
	log     *slog.Logger
	rand    func() float64
	sched   schedule
	watches *watches
	applier *applier

	// Loop state, owned by Init and then by Run's goroutine.
	plan    *providers.Plan
	sources map[string]*source
	order   []*source       // sorted by key
	pending map[string]bool // names changed, not yet handed to the applier
	since   time.Time       // when the oldest pending change was found
	running bool
	up      map[string]bool // schemes whose Watch runs, as the loop last saw

	mu     sync.RWMutex                  // guards the fields below
	values map[string]providers.Resolved // nil until the first render is done
	leases map[string]leaseState         // by source key
}

type leaseState struct {
	names   []string
	expires time.Time
}

// source is one secret of the plan (a providers.Source) and the names
// using it.
type source struct {
	key     string
	ref     providers.Ref // the identity: canonical, whole
	names   []string      // sorted
	prov    providers.Provider
	prober  bool // the provider is a VersionProber
	renewer bool // the provider is a LeaseRenewer
	pinned  bool // names a version that never changes: never looked at again

	secret providers.Secret // last good
	lease  *providers.Lease // of the last good value

	next       time.Time // when to look again (zero while busy)
	looked     time.Time // the last successful look
	busy       bool      // a check is in flight
	dirty      bool      // a watch event awaits the debounce
	watchCheck bool      // a check for a watch event is in flight or queued
	again      bool      // check again (for a watch event) when busy ends

	failing  error
	failures int
	bo       backoff.Backoff
	logEvery backoff.Every
}

// New validates opts and returns an Engine. It does no I/O except reading
// template files to learn which secrets they use.
func New(opts Options) (*Engine, error) {
	if opts.Providers == nil {
		return nil, errors.New("rotate: Options.Providers is required")
	}
	if opts.Jitter < 0 || opts.Jitter > 1 {
		return nil, fmt.Errorf("rotate: jitter %v is not between 0 and 1", opts.Jitter)
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = DefaultMaxDelay
	}
	if opts.LogEvery <= 0 {
		opts.LogEvery = DefaultLogEvery
	}
	e := &Engine{
		opts:    opts,
		log:     opts.Logger,
		rand:    opts.Rand,
		sched:   schedule{interval: opts.Interval, jitter: opts.Jitter},
		pending: map[string]bool{},
		leases:  map[string]leaseState{},
		up:      map[string]bool{},
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.rand == nil {
		e.rand = rand.Float64
	}
	if e.opts.RunCommand == nil {
		e.opts.RunCommand = ChildCommandRunner(nil, os.Stdout, os.Stderr, e.log)
	}
	e.watches = newWatches(e.log, e.rand, opts.LogEvery, opts.Metrics)
	var err error
	if e.applier, err = newApplier(&e.opts, e.log, e.rand, e.Values); err != nil {
		return nil, err
	}
	if env := e.applier.env; len(env) > 0 && opts.OnChange != nil && opts.OnChange.Kind != ActionRestart {
		e.log.Warn("a rotated secret reaches the child's environment only by a restart; with this on_change the child keeps the values it started with",
			"on_change", opts.OnChange.String(), "env_secrets", sortedNames(env))
	}
	if m := opts.Metrics; m != nil {
		m.setReadyFunc(func() bool { return e.Ready() == nil })
		opts.Providers.ObserveCalls(func(c providers.Call) { m.request(c.Instance, c.Op, c.Err, c.Took) })
		opts.Providers.ObserveRetries(m.providerRetry)
	}
	return e, nil
}

// Values returns a copy of the current (last good) value of every secret
// name. It is empty before Init succeeds.
func (e *Engine) Values() map[string]providers.Resolved {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return maps.Clone(e.values)
}

// Ready returns nil when the first render is done and no secret's lease
// has expired without being replaced; otherwise an error saying which
// (by secret name).
func (e *Engine) Ready() error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.values == nil {
		return errors.New("first render not done")
	}
	now := time.Now()
	var expired []string
	for _, l := range e.leases {
		if !now.Before(l.expires) {
			expired = append(expired, l.names...)
		}
	}
	if len(expired) > 0 {
		sort.Strings(expired)
		return fmt.Errorf("lease expired without replacement: %s", strings.Join(expired, ", "))
	}
	return nil
}

// publishLeases copies the sources' lease expiries for Ready.
func (e *Engine) publishLeases() {
	leases := map[string]leaseState{}
	for _, s := range e.order {
		if s.lease != nil && s.lease.Duration > 0 {
			leases[s.key] = leaseState{names: s.names, expires: s.lease.Expires()}
		}
	}
	e.mu.Lock()
	e.leases = leases
	e.mu.Unlock()
}

// Run keeps the secrets fresh until ctx is done, then returns ctx.Err()
// once every goroutine it started (watches, checks, the applier, an
// on_change command) has exited. Init must have succeeded first.
func (e *Engine) Run(ctx context.Context) error {
	if e.sources == nil || e.running {
		return errors.New("rotate: Run needs one successful Init and may be called once")
	}
	e.running = true
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	results := make(chan checkResult)
	wg.Go(func() { e.applier.loop(ctx) })
	e.watches.start(ctx, &wg, e.order)

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var flushAt, firstEvent time.Time
	for {
		now := time.Now()
		if !flushAt.IsZero() && !now.Before(flushAt) {
			flushAt = time.Time{}
			for _, s := range e.order {
				if !s.dirty {
					continue
				}
				s.dirty, s.watchCheck = false, true
				if s.busy {
					s.again = true
				} else {
					e.launch(ctx, &wg, results, s, opFetch, true)
				}
			}
		}
		for _, s := range e.order {
			if !s.busy && !now.Before(s.next) {
				e.launch(ctx, &wg, results, s, opFor(s, now), false)
			}
		}
		e.handOff(now)

		wake := flushAt
		if len(e.pending) > 0 {
			// handOff waits for checks of watch events, but not forever.
			wake = earliest(wake, e.since.Add(e.opts.MaxDelay))
		}
		for _, s := range e.order {
			if !s.busy {
				wake = earliest(wake, s.next)
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if !wake.IsZero() {
			timer.Reset(max(wake.Sub(now), 0))
		}

		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-e.watches.wake:
			keys, up := e.watches.take()
			now := time.Now()
			e.watchesUp(up)
			marked := false
			for k := range keys {
				if s, ok := e.sources[k]; ok {
					s.dirty, marked = true, true
				}
			}
			if marked {
				if flushAt.IsZero() {
					firstEvent = now
				}
				flushAt = now.Add(e.opts.Debounce)
				if limit := firstEvent.Add(e.opts.MaxDelay); flushAt.After(limit) {
					flushAt = limit
				}
			}
		case r := <-results:
			e.handle(ctx, &wg, results, r, time.Now())
		case <-timer.C:
		}
	}
}

// launch starts a check of s in its own goroutine.
func (e *Engine) launch(ctx context.Context, wg *sync.WaitGroup, results chan<- checkResult, s *source, o op, watch bool) {
	s.busy = true
	in := checkInput{src: s, op: o, watch: watch, ref: s.ref, version: s.secret.Version, lease: s.lease}
	wg.Go(func() {
		r := e.check(ctx, in)
		select {
		case results <- r:
		case <-ctx.Done():
		}
	})
}

// handle applies a check's result to its source, on the loop goroutine.
func (e *Engine) handle(ctx context.Context, wg *sync.WaitGroup, results chan<- checkResult, r checkResult, now time.Time) {
	s := r.in.src
	s.busy = false
	switch {
	case r.err != nil:
		e.fail(s, r.in.op, r.err, now)
	case r.fetched:
		vals, err := e.resolveNames(e.plan, s, r.secret)
		if err != nil {
			e.fail(s, opFetch, err, now)
			break
		}
		e.succeed(s, r.in.op, now)
		var changed []string
		e.mu.Lock()
		for _, n := range s.names {
			if old, ok := e.values[n]; !ok || !sameValue(old, vals[n]) {
				changed = append(changed, n)
				e.values[n] = vals[n]
			}
		}
		e.mu.Unlock()
		s.secret = r.secret
		s.lease = leaseOf(r.secret, now)
		e.opts.Metrics.lease(s.names, s.lease)
		if len(changed) > 0 {
			if len(e.pending) == 0 {
				e.since = now
			}
			for _, n := range changed {
				e.pending[n] = true
				e.opts.Metrics.changed(n)
			}
			e.log.Info("secret changed", "secrets", changed, "provider", s.ref.Scheme, "version", r.secret.Version)
		} else {
			e.log.Debug("secret unchanged", "secrets", s.names, "provider", s.ref.Scheme)
		}
		e.scheduleNext(s, now)
	case r.renewed != nil:
		e.succeed(s, opRenew, now)
		l := *r.renewed
		if l.Obtained.IsZero() {
			l.Obtained = now
		}
		s.lease = &l
		e.opts.Metrics.lease(s.names, s.lease)
		e.log.Debug("lease renewed", "secrets", s.names, "ttl", l.Duration)
		e.scheduleNext(s, now)
	default: // a probe found the version unchanged
		e.succeed(s, opProbe, now)
		e.scheduleNext(s, now)
	}
	e.publishLeases()
	if r.in.watch {
		s.watchCheck = false
	}
	if s.again {
		s.again, s.watchCheck = false, true
		e.launch(ctx, wg, results, s, opFetch, true)
	}
}

// succeed records a successful look at s.
func (e *Engine) succeed(s *source, o op, now time.Time) {
	if s.failing != nil {
		e.log.Info("secret recovered", "secrets", s.names, "provider", s.ref.Scheme, "op", o.String(), "failed_attempts", s.failures)
	}
	s.failing, s.failures = nil, 0
	s.bo.Reset()
	s.logEvery.Reset()
	e.opts.Metrics.success(s.names, now)
}

// fail records a failed look at s, keeps its last good value and
// schedules a retry with backoff.
func (e *Engine) fail(s *source, o op, err error, now time.Time) {
	s.failing = err
	s.failures++
	e.opts.Metrics.failure(s.names)
	delay := s.bo.NextAfter(backoff.RetryAfter(err))
	s.next = retryAt(s.lease, now, delay)
	if ok, suppressed := s.logEvery.Allow(); ok {
		e.log.Warn("secret check failed; keeping the last good value",
			"secrets", s.names, "ref", s.ref.String(), "op", o.String(), "err", err,
			"attempt", s.failures, "retry_in", delay.Round(time.Millisecond), "suppressed", suppressed)
	}
}

// handOff passes the pending changes to the applier, unless checks for
// watch events are still under way (their results join the same apply) and
// the oldest change waited less than MaxDelay (a source that never stops
// changing must not hold the others back).
func (e *Engine) handOff(now time.Time) {
	if len(e.pending) == 0 {
		return
	}
	if now.Sub(e.since) < e.opts.MaxDelay {
		for _, s := range e.order {
			if s.dirty || s.watchCheck {
				return
			}
		}
	}
	e.applier.hand(e.pending)
	clear(e.pending)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedNames(m map[string]bool) []string { return sortedKeys(m) }

// scheduleNext sets when a healthy s, looked at successfully at now, is
// looked at again (schedule.next).
func (e *Engine) scheduleNext(s *source, now time.Time) {
	s.looked = now
	s.next = e.sched.next(s, e.up[s.ref.Scheme], now, e.rand)
}

// watchesUp takes note of which providers' watches run (up, by scheme)
// and, for each that went up or down, moves the next poll of its healthy
// secrets without a lease to the safety or the normal interval after
// their last look (at once when that is past).
func (e *Engine) watchesUp(up map[string]bool) {
	moved := map[string]bool{}
	for sch := range up {
		if !e.up[sch] {
			moved[sch] = true
		}
	}
	for sch := range e.up {
		if !up[sch] {
			moved[sch] = true
		}
	}
	if len(moved) == 0 {
		return
	}
	e.up = up
	for _, s := range e.order {
		if !moved[s.ref.Scheme] || s.busy || s.failing != nil || s.looked.IsZero() ||
			s.lease != nil && s.lease.Duration > 0 {
			continue // a check under way, a retry or a renewal keeps its time
		}
		e.scheduleNext(s, s.looked)
	}
}
