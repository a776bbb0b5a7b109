package rotate

import (
	"context"
	"errors"
	"maps"
	"sort"
	"time"

	"github.com/keyward/keyward/internal/backoff"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/render"
)

// Looking at the secrets: Init's first fetch of them all, and the checks
// the loop launches (a probe, a renewal or a fetch of one source), all
// through the provider set's plan and calls, which bound each call.

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
	e.mu.Unlock()
	e.publishLeases()
	e.log.Info("initial render done", "secrets", len(values), "files", len(files), "changed", len(res.Changed), "unchanged", len(res.Unchanged), "leftovers_removed", len(res.Removed))
	return nil
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
		// The version the probe found is read, not looked up again.
		res.secret, res.err = set.FetchProbed(ctx, in.ref, v)
		res.fetched = res.err == nil
		return res
	}
	res.secret, res.err = set.Fetch(ctx, in.ref)
	res.fetched = res.err == nil
	return res
}
