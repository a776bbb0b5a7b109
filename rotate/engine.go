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
	// environment: a change of one of them needs Options.OnChange, or a
	// restart when that is nil.
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
	// Rand returns numbers in [0, 1) for jitter and splay; nil uses
	// math/rand/v2. Tests set it.
	Rand func() float64
}

// Engine keeps a configuration's secrets fresh. Create it with New, call
// Init once successfully, then Run. Values and Ready are safe to call from
// any goroutine at any time.
type Engine struct {
	opts     Options
	log      *slog.Logger
	rand     func() float64
	fileDeps []map[string]bool // per file: the names it uses; nil: all
	env      map[string]bool

	// Loop state, owned by Init and then by Run's goroutine.
	plan    *providers.Plan
	sources map[string]*source
	order   []*source       // sorted by key
	pending map[string]bool // names changed, not yet handed to the applier
	since   time.Time       // when the oldest pending change was found
	running bool
	up      map[string]bool // schemes whose Watch runs, as the loop last saw

	mu       sync.RWMutex // guards the fields below
	values   map[string]providers.Resolved
	rendered bool
	leases   map[string]leaseState // by source key

	wmu    sync.Mutex      // guards wdirty and wup
	wdirty map[string]bool // source keys a watch reported
	wup    map[string]bool // schemes whose Watch is running
	wch    chan struct{}   // a watch reported a change or went up or down

	amu      sync.Mutex // guards apending
	apending map[string]bool
	ach      chan struct{}
	failed   map[int]bool // files whose last render failed; applier-owned
}

type leaseState struct {
	names   []string
	expires time.Time
}

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
		opts:     opts,
		log:      opts.Logger,
		rand:     opts.Rand,
		env:      map[string]bool{},
		pending:  map[string]bool{},
		values:   map[string]providers.Resolved{},
		leases:   map[string]leaseState{},
		up:       map[string]bool{},
		wdirty:   map[string]bool{},
		wup:      map[string]bool{},
		wch:      make(chan struct{}, 1),
		apending: map[string]bool{},
		ach:      make(chan struct{}, 1),
		failed:   map[int]bool{},
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
	for _, n := range opts.EnvSecrets {
		if _, ok := opts.Secrets[n]; !ok {
			return nil, fmt.Errorf("rotate: env secret %q is not among the secrets", n)
		}
		e.env[n] = true
	}
	for _, f := range opts.Files {
		deps, err := fileDeps(f.File)
		if err != nil {
			return nil, fmt.Errorf("rotate: file %s: %w", f.Path, err)
		}
		for n := range deps {
			if _, ok := opts.Secrets[n]; !ok {
				return nil, fmt.Errorf("rotate: file %s uses secret %q, which is not among the secrets", f.Path, n)
			}
		}
		e.fileDeps = append(e.fileDeps, deps)
	}
	if len(e.env) > 0 && opts.OnChange != nil && opts.OnChange.Kind != ActionRestart {
		e.log.Warn("a rotated secret reaches the child's environment only by a restart; with this on_change the child keeps the values it started with",
			"on_change", opts.OnChange.String(), "env_secrets", sortedNames(e.env))
	}
	if m := opts.Metrics; m != nil {
		m.setReadyFunc(func() bool { return e.Ready() == nil })
		opts.Providers.ObserveCalls(func(c providers.Call) { m.request(c.Instance, c.Op, c.Err, c.Took) })
		opts.Providers.ObserveRetries(m.providerRetry)
	}
	return e, nil
}

// fileDeps returns the secret names f's content depends on, or nil when
// that cannot be known (a template that computes a name passed to secret).
func fileDeps(f render.File) (map[string]bool, error) {
	names, err := f.SecretNames()
	if errors.Is(err, render.ErrDynamicNames) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	deps := make(map[string]bool, len(names))
	for _, n := range names {
		deps[n] = true
	}
	return deps, nil
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
	if !e.rendered {
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

// Init fetches every secret at once through a plan of the provider set
// (one fetch per secret however its references spell it, concurrently, a
// BatchFetcher's batch where the provider has one) and, if all resolve,
// renders every file. It is all-or-nothing: on failure nothing is written
// and the error is a *providers.ResolveError listing every failing name,
// or a *render.Error. Init may be called again after a failure (to
// retry), but not after Run started.
func (e *Engine) Init(ctx context.Context) error {
	if e.running {
		return errors.New("rotate: Init after Run")
	}
	set := e.opts.Providers
	plan, failures := set.Plan(e.opts.Secrets)
	got := set.FetchPlan(ctx, plan)
	sources := map[string]*source{}
	secrets := map[*source]providers.Secret{}
	values := map[string]providers.Resolved{}
	for i, ps := range plan.Sources() {
		s := &source{key: ps.Ref.Key(), ref: ps.Ref, names: ps.Names}
		s.bo = backoff.Backoff{Base: retryBase, Max: retryMax, Rand: e.rand}
		s.logEvery = backoff.Every{Interval: e.opts.LogEvery}
		sources[s.key] = s
		err := got[i].Err
		if err == nil {
			var vals map[string]providers.Resolved
			vals, err = e.resolveNames(plan, s, got[i].Secret)
			maps.Copy(values, vals)
			secrets[s] = got[i].Secret
		}
		if err != nil {
			for _, n := range s.names {
				failures = append(failures, providers.Failure{Name: n, Ref: e.opts.Secrets[n], Err: err})
			}
			e.opts.Metrics.failure(s.names)
			continue
		}
		// The plan built the instance: this cannot fail.
		if s.prov, err = set.Provider(s.ref.Scheme); err != nil {
			return err
		}
		_, s.prober = s.prov.(providers.VersionProber)
		_, s.renewer = s.prov.(providers.LeaseRenewer)
		s.pinned = providers.IsPinned(s.prov, s.ref)
	}
	if e.opts.BeforeApply != nil && len(values) > 0 {
		// The values fetched, also when others failed, before any error
		// or the first render can show them.
		e.opts.BeforeApply(values)
	}
	if len(failures) > 0 {
		sort.Slice(failures, func(a, b int) bool { return failures[a].Name < failures[b].Name })
		return &providers.ResolveError{Failures: failures}
	}
	now := time.Now()
	files := make([]render.File, len(e.opts.Files))
	for i, f := range e.opts.Files {
		files[i] = f.File
	}
	res, err := render.Render(files, values)
	e.opts.Metrics.render(err, len(res.Changed))
	if err != nil {
		return err
	}
	e.plan, e.sources = plan, sources
	e.order = e.order[:0]
	for _, s := range sources {
		s.secret = secrets[s]
		s.lease = leaseOf(secrets[s], now)
		e.opts.Metrics.success(s.names, now)
		e.opts.Metrics.lease(s.names, s.lease)
		e.scheduleNext(s, now)
		e.order = append(e.order, s)
	}
	sort.Slice(e.order, func(a, b int) bool { return e.order[a].key < e.order[b].key })
	e.mu.Lock()
	e.values = values
	e.rendered = true
	e.mu.Unlock()
	e.publishLeases()
	e.log.Info("initial render done", "secrets", len(values), "files", len(files), "changed", len(res.Changed), "unchanged", len(res.Unchanged), "leftovers_removed", len(res.Removed))
	return nil
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

// resolveNames picks each name's value of s out of sec, one version of it.
func (e *Engine) resolveNames(plan *providers.Plan, s *source, sec providers.Secret) (map[string]providers.Resolved, error) {
	out := make(map[string]providers.Resolved, len(s.names))
	for _, n := range s.names {
		r, err := plan.Pick(n, sec)
		if err != nil {
			return nil, err
		}
		out[n] = r
	}
	return out, nil
}

// sameValue reports whether two resolutions of a name hold the same bytes.
func sameValue(a, b providers.Resolved) bool {
	if !a.Value.Equal(b.Value) || len(a.Fields) != len(b.Fields) {
		return false
	}
	for k, v := range a.Fields {
		w, ok := b.Fields[k]
		if !ok || !v.Equal(w) {
			return false
		}
	}
	return true
}

// interval is how long after a successful look s is looked at again:
// the polling interval, or the safety interval while its provider's watch
// is running.
func (e *Engine) interval(s *source) time.Duration {
	d := DefaultPollInterval
	switch {
	case e.opts.Interval > 0:
		d = e.opts.Interval
	case s.prober:
		d = DefaultProbeInterval
	}
	if e.up[s.ref.Scheme] {
		d = max(safetyFactor*d, minSafetyInterval)
	}
	return d
}

// never is the next look of a source that is not looked at again.
var never = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// scheduleNext sets when a healthy s, looked at successfully at now, is
// looked at again: at about 2/3 of its lease, else after the interval,
// both with jitter; never, for a pinned version without a lease (it
// cannot change, so neither a probe nor a poll can find anything).
func (e *Engine) scheduleNext(s *source, now time.Time) {
	s.looked = now
	if s.pinned && s.lease == nil {
		s.next = never
		return
	}
	if l := s.lease; l != nil && l.Duration > 0 {
		frac := leaseFraction * (1 - e.opts.Jitter*e.rand())
		s.next = l.Obtained.Add(time.Duration(frac * float64(l.Duration)))
		s.next = later(s.next, now.Add(minRecheck))
		return
	}
	j := 1 + e.opts.Jitter*(2*e.rand()-1)
	s.next = now.Add(time.Duration(j * float64(e.interval(s))))
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

// opFor chooses how to look at s now.
func (e *Engine) opFor(s *source, now time.Time) op {
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

// checkInput is what a check goroutine needs: a copy, so that it never
// touches loop-owned state.
type checkInput struct {
	src     *source
	op      op
	watch   bool
	ref     providers.Ref
	version string
	lease   *providers.Lease
}

type checkResult struct {
	in      checkInput
	secret  providers.Secret
	fetched bool
	renewed *providers.Lease
	err     error
}

// check runs one look at a source, off the loop goroutine, through the
// provider set (its concurrency limit and timeout bound each call).
func (e *Engine) check(ctx context.Context, in checkInput) checkResult {
	res := checkResult{in: in}
	set := e.opts.Providers
	switch in.op {
	case opRenew:
		l, err := set.Renew(ctx, in.ref, *in.lease)
		if err == nil {
			res.renewed = &l
			return res
		}
		if !errors.Is(err, providers.ErrLeaseNotRenewable) && time.Now().Before(in.lease.Expires()) {
			res.err = err
			return res
		}
		e.log.Debug("lease not renewed; fetching the secret again", "ref", in.ref.String(), "err", err)
	case opProbe:
		v, err := set.ProbeVersion(ctx, in.ref)
		if err != nil {
			res.err = err
			return res
		}
		if v == in.version {
			return res
		}
	}
	res.secret, res.err = set.Fetch(ctx, in.ref)
	res.fetched = res.err == nil
	return res
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
	wg.Go(func() { e.applyLoop(ctx) })
	e.startWatches(ctx, &wg)

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
				e.launch(ctx, &wg, results, s, e.opFor(s, now), false)
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
		case <-e.wch:
			e.wmu.Lock()
			keys := e.wdirty
			e.wdirty = map[string]bool{}
			up := maps.Clone(e.wup)
			e.wmu.Unlock()
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
	s.next = now.Add(delay)
	if l := s.lease; l != nil && now.Before(l.Expires()) && s.next.After(l.Expires()) {
		s.next = l.Expires()
	}
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
	e.amu.Lock()
	for n := range e.pending {
		e.apending[n] = true
	}
	e.amu.Unlock()
	clear(e.pending)
	select {
	case e.ach <- struct{}{}:
	default:
	}
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

// startWatches runs the native watch of every provider that has one.
func (e *Engine) startWatches(ctx context.Context, wg *sync.WaitGroup) {
	byScheme := map[string][]providers.Ref{}
	watchers := map[string]providers.Watcher{}
	for _, s := range e.order {
		if w, ok := s.prov.(providers.Watcher); ok {
			watchers[s.ref.Scheme] = w
			byScheme[s.ref.Scheme] = append(byScheme[s.ref.Scheme], s.ref)
		}
	}
	for scheme, w := range watchers {
		refs := byScheme[scheme]
		wg.Go(func() { e.watch(ctx, scheme, w, refs) })
	}
}

// notify is the Watcher callback: it marks the ref's source for a check
// after the debounce.
func (e *Engine) notify(r providers.Ref) {
	e.wmu.Lock()
	e.wdirty[r.Key()] = true
	e.wmu.Unlock()
	select {
	case e.wch <- struct{}{}:
	default:
	}
}

// setWatchUp records whether scheme's Watch is running and wakes the loop
// to adjust the polling of its secrets.
func (e *Engine) setWatchUp(scheme string, up bool) {
	e.wmu.Lock()
	if up {
		e.wup[scheme] = true
	} else {
		delete(e.wup, scheme)
	}
	e.wmu.Unlock()
	select {
	case e.wch <- struct{}{}:
	default:
	}
}

// watch runs one provider's Watch, restarting it with backoff when it
// fails. While Watch runs, the provider's secrets are polled only at the
// safety interval; from its return until it is called again, at the
// normal interval. The file and Kubernetes watchers, once restarted,
// report what changed while they were down (the file watcher reports
// every ref once it is set up); the polling covers the gap meanwhile.
func (e *Engine) watch(ctx context.Context, scheme string, w providers.Watcher, refs []providers.Ref) {
	bo := backoff.Backoff{Base: time.Second, Max: time.Minute, Rand: e.rand}
	every := backoff.Every{Interval: e.opts.LogEvery}
	for {
		start := time.Now()
		e.setWatchUp(scheme, true)
		err := w.Watch(ctx, refs, e.notify)
		e.setWatchUp(scheme, false)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("watch ended")
		}
		if time.Since(start) > time.Minute {
			bo.Reset()
		}
		e.opts.Metrics.watchError()
		d := bo.Next()
		if ok, n := every.Allow(); ok {
			e.log.Warn("watch failed; polling at the normal interval until the watch is back", "provider", scheme, "err", err, "retry_in", d.Round(time.Millisecond), "suppressed", n)
		}
		if backoff.Wait(ctx, d) != nil {
			return
		}
	}
}

// applyLoop renders and acts on the changes handed off by the loop, one
// apply at a time; changes arriving meanwhile are coalesced into the next.
func (e *Engine) applyLoop(ctx context.Context) {
	bo := backoff.Backoff{Base: retryBase, Max: retryMax, Rand: e.rand}
	var retry *time.Timer
	var retryC <-chan time.Time
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.ach:
		case <-retryC:
			retryC = nil
		}
		e.amu.Lock()
		names := sortedKeys(e.apending)
		clear(e.apending)
		e.amu.Unlock()
		if len(names) == 0 && len(e.failed) == 0 {
			continue
		}
		e.apply(ctx, names)
		if len(e.failed) == 0 {
			bo.Reset()
			continue
		}
		d := bo.Next()
		if retry == nil {
			retry = time.NewTimer(d)
		} else {
			retry.Reset(d)
		}
		retryC = retry.C
	}
}

// apply re-renders the files that use a changed name (and those whose
// last render failed) and runs the on_change actions of the files that
// were rewritten and, when an env secret changed, of the environment.
func (e *Engine) apply(ctx context.Context, changed []string) {
	if e.opts.BeforeApply != nil && len(changed) > 0 {
		e.opts.BeforeApply(e.Values())
	}
	set := map[string]bool{}
	for _, n := range changed {
		set[n] = true
	}
	var subset []render.File
	var idx []int
	for i, f := range e.opts.Files {
		if e.failed[i] || e.affects(i, set) {
			subset = append(subset, f.File)
			idx = append(idx, i)
		}
	}
	var rewritten []int
	if len(subset) > 0 {
		res, err := render.Render(subset, e.Values())
		e.opts.Metrics.render(err, len(res.Changed))
		done := map[string]bool{}
		for _, p := range res.Changed {
			done[p] = true
		}
		for k, f := range subset {
			if done[f.Path] {
				rewritten = append(rewritten, idx[k])
			}
			if err != nil && !done[f.Path] {
				e.failed[idx[k]] = true
			} else {
				delete(e.failed, idx[k])
			}
		}
		if err != nil {
			e.log.Error("render after rotation failed; the previous files stay in place and the render is retried", "err", err)
		} else {
			e.log.Info("rendered after rotation", "secrets", changed, "files", len(subset), "rewritten", len(res.Changed))
		}
	}
	var p plan
	for _, i := range rewritten {
		p.add(e.fileAction(i))
	}
	for _, n := range changed {
		if e.env[n] {
			p.add(e.envAction())
			break
		}
	}
	e.run(ctx, p)
}

// affects reports whether file i uses a name in changed.
func (e *Engine) affects(i int, changed map[string]bool) bool {
	deps := e.fileDeps[i]
	if deps == nil {
		return len(changed) > 0
	}
	for n := range changed {
		if deps[n] {
			return true
		}
	}
	return false
}

func (e *Engine) fileAction(i int) Action {
	if a := e.opts.Files[i].OnChange; a != nil {
		return *a
	}
	if e.opts.OnChange != nil {
		return *e.opts.OnChange
	}
	return Action{Kind: ActionNone}
}

func (e *Engine) envAction() Action {
	if e.opts.OnChange != nil {
		return *e.opts.OnChange
	}
	return Action{Kind: ActionRestart}
}

// run performs a plan: a restart (which makes signals moot: the new child
// reads the new files), else each signal; then each command.
func (e *Engine) run(ctx context.Context, p plan) {
	if p.empty() {
		return
	}
	switch {
	case p.restart != nil:
		err := e.restart(ctx, *p.restart)
		e.opts.Metrics.action(ActionRestart.String(), err)
		if err != nil {
			e.log.Error("on_change restart failed", "err", err)
		} else {
			e.log.Info("on_change: restarted the child")
		}
	default:
		for _, sig := range p.signals {
			err := errNoChild
			if e.opts.Child != nil {
				err = e.opts.Child.Signal(sig)
			}
			a := Action{Kind: ActionSignal, Signal: sig}
			e.opts.Metrics.action(ActionSignal.String(), err)
			if err != nil {
				e.log.Error("on_change signal failed", "action", a.String(), "err", err)
			} else {
				e.log.Info("on_change: signalled the child", "action", a.String())
			}
		}
	}
	for _, c := range p.commands {
		err := e.opts.RunCommand(ctx, c.Command, c.Timeout)
		e.opts.Metrics.action(ActionCommand.String(), err)
		if err != nil {
			e.log.Error("on_change command failed", "action", c.String(), "err", err)
		} else {
			e.log.Info("on_change: command done", "action", c.String())
		}
	}
}

func (e *Engine) restart(ctx context.Context, a Action) error {
	if e.opts.Child == nil {
		return errNoChild
	}
	if a.Splay > 0 {
		d := time.Duration(e.rand() * float64(a.Splay))
		e.log.Info("on_change: restarting the child after a random splay", "splay", d.Round(time.Millisecond))
		if err := backoff.Wait(ctx, d); err != nil {
			return err
		}
	}
	return e.opts.Child.Restart(ctx, a.Timeout)
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
