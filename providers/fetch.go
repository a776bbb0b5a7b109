package providers

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// FetchTimeout bounds each provider call the Set makes.
const FetchTimeout = 30 * time.Second

// DefaultConcurrency is the default of Set.Concurrency.
const DefaultConcurrency = 8

// The Set is keyward's one road from a reference to a store: Resolve (the
// one-shot commands), the rotation engine and the token loop all fetch
// through it. A Plan groups named references by the secret they name, so
// that two spellings of one secret are one fetch and all of a secret's
// fields come from one version; FetchPlan fetches a plan's secrets,
// batched where the provider can; Fetch, ProbeVersion and Renew make one
// call. Every call waits for a slot of its instance's Concurrency and is
// bounded by FetchTimeout.

// Source is one secret of a Plan and the names that use it.
type Source struct {
	// Ref is the secret's identity: its reference without a field, in the
	// provider's canonical spelling (see Canonicalizer). It is what the
	// provider is asked for.
	Ref Ref
	// Names are the names whose references name this secret (their fields
	// may differ), sorted.
	Names []string
}

// Plan is a group of named references, checked and grouped by the secret
// each names. Make one with Set.Plan; it is immutable and may be fetched
// any number of times.
type Plan struct {
	refs    map[string]Ref // by name, as given
	sources []Source       // sorted by Ref.Key
}

// Sources returns the plan's secrets, sorted by the key of their Ref. The
// caller must not modify them.
func (p *Plan) Sources() []Source { return p.sources }

// Ref returns the reference name was given with.
func (p *Plan) Ref(name string) Ref { return p.refs[name] }

// Pick returns name's value taken out of sec, a secret fetched for the
// source that has name: its field, or the whole secret.
func (p *Plan) Pick(name string, sec Secret) (Resolved, error) {
	return pick(p.refs[name], sec)
}

// pick takes ref's value out of sec.
func pick(ref Ref, sec Secret) (Resolved, error) {
	r := Resolved{Ref: ref, Version: sec.Version}
	var err error
	if ref.Field != "" {
		r.Value, err = sec.Field(ref.Field)
	} else {
		r.Value, r.Fields, err = sec.Whole()
	}
	return r, err
}

// Identity returns the identity of the secret ref names: ref without its
// field, in the canonical spelling of its instance's provider (building
// the instance, without contacting its store). Two references have the
// same identity's Key exactly when they name the same version of the same
// secret as far as can be told without I/O. Errors are those of CheckRef,
// of building the instance, or of its Canonical.
func (s *Set) Identity(ref Ref) (Ref, error) {
	if err := s.CheckRef(ref); err != nil {
		return Ref{}, err
	}
	p, err := s.Provider(ref.Scheme)
	if err != nil {
		return Ref{}, err
	}
	return canonical(p, ref)
}

// canonical returns ref's identity for provider p.
func canonical(p Provider, ref Ref) (Ref, error) {
	whole := ref.Whole()
	c, ok := p.(Canonicalizer)
	if !ok {
		return whole, nil
	}
	id, err := c.Canonical(whole)
	if err != nil {
		return Ref{}, err
	}
	id.Scheme, id.Field = ref.Scheme, ""
	if id.Raw == "" {
		id.Raw = id.String()
	}
	return id, nil
}

// Plan checks every named reference (CheckRef), builds the instances they
// use (without contacting a store) and groups the names by the Identity of
// the secret they name. It returns the plan of the names that passed and a
// Failure for each that did not, sorted by name.
func (s *Set) Plan(refs map[string]Ref) (*Plan, []Failure) {
	p := &Plan{refs: make(map[string]Ref, len(refs))}
	var failures []Failure
	byKey := map[string]int{}
	names := make([]string, 0, len(refs))
	for name := range refs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		r := refs[name]
		id, err := s.Identity(r)
		if err != nil {
			failures = append(failures, Failure{Name: name, Ref: r, Err: err})
			continue
		}
		p.refs[name] = r
		k := id.Key()
		i, ok := byKey[k]
		if !ok {
			i = len(p.sources)
			byKey[k] = i
			p.sources = append(p.sources, Source{Ref: id})
		}
		p.sources[i].Names = append(p.sources[i].Names, name)
	}
	sort.Slice(p.sources, func(a, b int) bool { return p.sources[a].Ref.Key() < p.sources[b].Ref.Key() })
	return p, failures
}

// Fetched is the outcome of fetching one source of a Plan.
type Fetched struct {
	Secret Secret
	Err    error
}

// FetchPlan fetches every secret of p: concurrently, through one FetchBatch
// per instance that is a BatchFetcher and has more than one of them, each
// call waiting for a slot of its instance's Concurrency and bounded by
// FetchTimeout. A FetchBatch that does not return one result per ref makes
// every secret of its batch an error. It returns one Fetched per source, in
// the order of p.Sources(), and returns only after every goroutine it
// started has exited.
func (s *Set) FetchPlan(ctx context.Context, p *Plan) []Fetched {
	out := make([]Fetched, len(p.sources))
	byScheme := map[string][]int{}
	for i, src := range p.sources {
		byScheme[src.Ref.Scheme] = append(byScheme[src.Ref.Scheme], i)
	}
	var wg sync.WaitGroup
	for scheme, idx := range byScheme {
		prov, err := s.Provider(scheme)
		if err != nil {
			for _, i := range idx {
				out[i].Err = err
			}
			continue
		}
		if bf, ok := prov.(BatchFetcher); ok && len(idx) > 1 {
			wg.Go(func() {
				refs := make([]Ref, len(idx))
				for k, i := range idx {
					refs[k] = p.sources[i].Ref
				}
				var secs []Secret
				var errs []error
				err := s.call(ctx, scheme, func(ctx context.Context) error {
					secs, errs = bf.FetchBatch(ctx, refs)
					if len(secs) != len(refs) || len(errs) != len(refs) {
						// A broken contract: which result is whose is
						// unknown, so none is used.
						bad := fmt.Errorf("provider %s: batch fetch returned %d secrets and %d errors for %d references", scheme, len(secs), len(errs), len(refs))
						for _, sec := range secs {
							zeroSecret(sec)
						}
						secs, errs = make([]Secret, len(refs)), slices.Repeat([]error{bad}, len(refs))
					}
					return nil
				}, func(took time.Duration) {
					for k := range idx {
						s.observe(Call{Instance: scheme, Op: OpFetch, Err: errs[k], Took: took})
					}
				})
				for k, i := range idx {
					if err != nil {
						out[i].Err = err
					} else {
						out[i] = Fetched{Secret: secs[k], Err: errs[k]}
					}
				}
			})
			continue
		}
		for _, i := range idx {
			wg.Go(func() {
				out[i].Secret, out[i].Err = s.Fetch(ctx, p.sources[i].Ref)
			})
		}
	}
	wg.Wait()
	return out
}

// Fetch reads the whole secret ref names (a Source's Ref: without a
// field) from its instance, waiting for a slot of the instance's
// Concurrency, bounded by FetchTimeout. Errors are the provider's, or
// ctx's when it ends while waiting.
func (s *Set) Fetch(ctx context.Context, ref Ref) (Secret, error) {
	return s.fetch(ctx, ref, "", false)
}

// FetchProbed reads ref as Fetch does, after a ProbeVersion of it
// returned version: an instance that is a VersionFetcher reads that
// version directly, saving the call that would learn it again; any other
// is asked to Fetch.
func (s *Set) FetchProbed(ctx context.Context, ref Ref, version string) (Secret, error) {
	return s.fetch(ctx, ref, version, true)
}

// fetch is Fetch, or FetchProbed of version when probed.
func (s *Set) fetch(ctx context.Context, ref Ref, version string, probed bool) (Secret, error) {
	var sec Secret
	err := s.with(ctx, ref.Scheme, OpFetch, func(ctx context.Context, p Provider) (err error) {
		if vf, ok := p.(VersionFetcher); ok && probed {
			sec, err = vf.FetchVersion(ctx, ref.Whole(), version)
		} else {
			sec, err = p.Fetch(ctx, ref.Whole())
		}
		return err
	})
	return sec, err
}

// ProbeVersion asks ref's instance for the secret's current version, as
// Fetch does its call; the instance must be a VersionProber.
func (s *Set) ProbeVersion(ctx context.Context, ref Ref) (string, error) {
	var v string
	err := s.with(ctx, ref.Scheme, OpProbe, func(ctx context.Context, p Provider) error {
		vp, ok := p.(VersionProber)
		if !ok {
			return fmt.Errorf("provider %s cannot probe versions", ref.Scheme)
		}
		var err error
		v, err = vp.ProbeVersion(ctx, ref.Whole())
		return err
	})
	return v, err
}

// Renew asks ref's instance to extend lease, as Fetch does its call; the
// instance must be a LeaseRenewer.
func (s *Set) Renew(ctx context.Context, ref Ref, lease Lease) (Lease, error) {
	var l Lease
	err := s.with(ctx, ref.Scheme, OpRenew, func(ctx context.Context, p Provider) error {
		lr, ok := p.(LeaseRenewer)
		if !ok {
			return fmt.Errorf("provider %s cannot renew leases", ref.Scheme)
		}
		var err error
		l, err = lr.Renew(ctx, ref.Whole(), lease)
		return err
	})
	return l, err
}

// with makes one call named op to the instance named scheme.
func (s *Set) with(ctx context.Context, scheme, op string, fn func(context.Context, Provider) error) error {
	p, err := s.Provider(scheme)
	if err != nil {
		return err
	}
	var callErr error
	err = s.call(ctx, scheme, func(ctx context.Context) error {
		callErr = fn(ctx, p)
		return callErr
	}, func(took time.Duration) {
		s.observe(Call{Instance: scheme, Op: op, Err: callErr, Took: took})
	})
	return err
}

// call runs fn in a slot of scheme's concurrency limit, with ctx bounded
// by FetchTimeout, then done with how long fn took (not the wait). It
// returns ctx's error, without calling fn, when ctx ends while it waits.
func (s *Set) call(ctx context.Context, scheme string, fn func(context.Context) error, done func(time.Duration)) error {
	sem := s.limit(scheme)
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-sem }()
	cctx, cancel := context.WithTimeout(ctx, FetchTimeout)
	defer cancel()
	start := time.Now()
	err := fn(cctx)
	done(time.Since(start))
	return err
}

// limit returns the semaphore of instance scheme, sized by Concurrency
// when first used.
func (s *Set) limit(scheme string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sem, ok := s.sems[scheme]; ok {
		return sem
	}
	n := s.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	sem := make(chan struct{}, n)
	s.sems[scheme] = sem
	return sem
}

// The operations a Call names.
const (
	OpFetch = "fetch"
	OpProbe = "probe"
	OpRenew = "renew"
)

// Call describes one provider call the Set made, for metrics: the
// instance, the operation (OpFetch, OpProbe, OpRenew), its error and how
// long it took (without the wait for a slot). One FetchBatch is one Call
// per secret in it, each with the batch's time.
type Call struct {
	Instance string
	Op       string
	Err      error
	Took     time.Duration
}

// ObserveCalls makes f receive every provider call the Set makes from now
// on (the agent counts them in its metrics). f must be safe for
// concurrent use and must not block.
func (s *Set) ObserveCalls(f func(Call)) {
	s.calls.Store(&f)
}

func (s *Set) observe(c Call) {
	if f := s.calls.Load(); f != nil {
		(*f)(c)
	}
}
