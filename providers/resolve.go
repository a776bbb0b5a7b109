package providers

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// BatchFetcher is an optional capability: a provider that can fetch several
// secrets in one call (AWS BatchGetSecretValue). FetchBatch returns one
// Secret and one error per ref, in order.
type BatchFetcher interface {
	FetchBatch(ctx context.Context, refs []Ref) ([]Secret, []error)
}

// Resolved is one named reference after fetching.
type Resolved struct {
	// Ref is the reference that was resolved.
	Ref Ref
	// Value is the field's bytes, or the whole payload when Ref has no field.
	Value Value
	// Fields is set when Ref has no field and the secret is an object of
	// fields (a Kubernetes Secret, a Vault KV entry, a parsed file): each
	// top-level key with its value.
	Fields map[string]Value
	// Version is the provider's version of the underlying secret, if any.
	Version string
}

// Failure is one reference that could not be resolved.
type Failure struct {
	Name string
	Ref  Ref
	Err  error
}

// ResolveError lists every reference that failed in one Resolve. Its
// message is one line naming each failing reference; it never holds a value.
type ResolveError struct {
	Failures []Failure
}

func (e *ResolveError) Error() string {
	parts := make([]string, len(e.Failures))
	for i, f := range e.Failures {
		parts[i] = fmt.Sprintf("%s (%s): %v", f.Name, f.Ref.String(), f.Err)
	}
	if len(parts) == 1 {
		return "resolving " + parts[0]
	}
	return fmt.Sprintf("resolving %d references failed: %s", len(parts), strings.Join(parts, "; "))
}

// Unwrap returns the failures' errors so errors.Is finds sentinels.
func (e *ResolveError) Unwrap() []error {
	out := make([]error, len(e.Failures))
	for i, f := range e.Failures {
		out[i] = f.Err
	}
	return out
}

// FetchTimeout bounds each provider call made by Resolve.
const FetchTimeout = 30 * time.Second

// Resolve fetches every named reference. References to the same secret
// (same scheme, path and options; fields may differ) are fetched once;
// distinct secrets are fetched concurrently, at most s.Concurrency at a
// time per provider instance, each call bounded by FetchTimeout.
//
// It returns either every name resolved, or a *ResolveError listing every
// failure (all-or-nothing); s.Observe sees what resolved in either case. It
// returns only after all its goroutines exit.
func (s *Set) Resolve(ctx context.Context, refs map[string]Ref) (map[string]Resolved, error) {
	type job struct {
		ref    Ref
		secret Secret
		err    error
	}
	jobs := map[string]*job{}
	byScheme := map[string][]*job{}
	var failures []Failure
	for name, r := range refs {
		if err := s.CheckRef(r); err != nil {
			failures = append(failures, Failure{Name: name, Ref: r, Err: err})
			continue
		}
		k := r.Key()
		if _, ok := jobs[k]; !ok {
			j := &job{ref: r.Whole()}
			jobs[k] = j
			byScheme[r.Scheme] = append(byScheme[r.Scheme], j)
		}
	}
	var wg sync.WaitGroup
	for scheme, js := range byScheme {
		p, err := s.Provider(scheme)
		if err != nil {
			for _, j := range js {
				j.err = err
			}
			continue
		}
		if bf, ok := p.(BatchFetcher); ok && len(js) > 1 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rs := make([]Ref, len(js))
				for i, j := range js {
					rs[i] = j.ref
				}
				cctx, cancel := context.WithTimeout(ctx, FetchTimeout)
				defer cancel()
				secs, errs := bf.FetchBatch(cctx, rs)
				for i, j := range js {
					j.secret, j.err = secs[i], errs[i]
				}
			}()
			continue
		}
		limit := s.Concurrency
		if limit <= 0 {
			limit = 8
		}
		sem := make(chan struct{}, limit)
		for _, j := range js {
			wg.Add(1)
			go func() {
				defer wg.Done()
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					j.err = ctx.Err()
					return
				}
				defer func() { <-sem }()
				cctx, cancel := context.WithTimeout(ctx, FetchTimeout)
				defer cancel()
				j.secret, j.err = p.Fetch(cctx, j.ref)
			}()
		}
	}
	wg.Wait()

	out := make(map[string]Resolved, len(refs))
	for name, r := range refs {
		j, ok := jobs[r.Key()]
		if !ok {
			continue // failed CheckRef, already recorded
		}
		if j.err != nil {
			failures = append(failures, Failure{Name: name, Ref: r, Err: j.err})
			continue
		}
		res := Resolved{Ref: r, Version: j.secret.Version}
		var err error
		if r.Field != "" {
			res.Value, err = j.secret.Field(r.Field)
		} else {
			res.Value, res.Fields, err = j.secret.Whole()
		}
		if err != nil {
			failures = append(failures, Failure{Name: name, Ref: r, Err: err})
			continue
		}
		out[name] = res
	}
	if s.Observe != nil && len(out) > 0 {
		s.Observe(out)
	}
	if len(failures) > 0 {
		sort.Slice(failures, func(a, b int) bool { return failures[a].Name < failures[b].Name })
		return nil, &ResolveError{Failures: failures}
	}
	return out, nil
}
