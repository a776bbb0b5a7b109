package providers

import (
	"context"
	"fmt"
	"sort"
	"strings"
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

// Resolve fetches every named reference through a Plan: references to one
// secret, however spelled (same Identity; fields may differ), are fetched
// once, so all of its fields come from one version; distinct secrets are
// fetched as FetchPlan does (batched, at most s.Concurrency at a time per
// instance, each call bounded by FetchTimeout).
//
// It returns either every name resolved, or a *ResolveError listing every
// failure (all-or-nothing); s.Observe sees what resolved in either case. The
// values returned are the caller's (each Resolve fetches anew). When it
// fails, the values fetched are zeroed before they are dropped, unless
// s.Observe was handed them (an observer may keep them, as the masker does).
// It returns only after all its goroutines exit.
func (s *Set) Resolve(ctx context.Context, refs map[string]Ref) (map[string]Resolved, error) {
	plan, failures := s.Plan(refs)
	got := s.FetchPlan(ctx, plan)
	out := make(map[string]Resolved, len(refs))
	for i, src := range plan.Sources() {
		if got[i].Err != nil {
			for _, name := range src.Names {
				failures = append(failures, Failure{Name: name, Ref: refs[name], Err: got[i].Err})
			}
			continue
		}
		for _, name := range src.Names {
			r, err := pick(refs[name], got[i].Secret)
			if err != nil {
				failures = append(failures, Failure{Name: name, Ref: refs[name], Err: err})
				continue
			}
			out[name] = r
		}
	}
	if s.Observe != nil && len(out) > 0 {
		s.Observe(out)
	}
	if len(failures) > 0 {
		if s.Observe == nil {
			// Nobody else holds what resolved: zero it before dropping it.
			for i := range got {
				zeroSecret(got[i].Secret)
			}
			for _, r := range out {
				r.Zero()
			}
		}
		sort.Slice(failures, func(a, b int) bool { return failures[a].Name < failures[b].Name })
		return nil, &ResolveError{Failures: failures}
	}
	return out, nil
}

// zeroSecret overwrites the bytes a fetched secret holds: its Value and
// the byte slices and Values of its Data (strings cannot be overwritten).
func zeroSecret(sec Secret) {
	clear(sec.Value.bytes())
	zeroData(sec.Data)
}

func zeroData(v any) {
	switch x := v.(type) {
	case []byte:
		clear(x)
	case Value:
		clear(x.bytes())
	case map[string]any:
		for _, e := range x {
			zeroData(e)
		}
	case []any:
		for _, e := range x {
			zeroData(e)
		}
	}
}

// Zero overwrites the bytes of r's value and fields, for a holder done
// with them that owns them (nothing else, such as the masker, was handed
// the same bytes).
func (r Resolved) Zero() {
	clear(r.Value.bytes())
	for _, f := range r.Fields {
		clear(f.bytes())
	}
}
