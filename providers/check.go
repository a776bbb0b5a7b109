package providers

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Checking a reference against the registry, without I/O, is done here
// once for every caller: Set.CheckRef (and so Set.Plan, the environment's
// references and keyward get) and the config's validation (which reports
// a kind not in this build only where a command uses it, through the
// Set, so that a config for a fuller build still validates).

// UnknownProvider is the error for a reference whose scheme names no
// instance; known are the instance names there are. It wraps
// ErrInvalidReference.
func UnknownProvider(scheme string, known []string) error {
	known = slices.Sorted(slices.Values(known))
	return &refProblem{
		msg: fmt.Sprintf("unknown provider %q (declare it under providers: or use one of %s)", scheme, strings.Join(known, ", ")),
		err: ErrInvalidReference,
	}
}

// Check validates, without I/O, the provider-specific part of ref for an
// instance of kind k (one in this build, from LookupKind): each option is
// one k accepts, and k's own CheckRef passes. It returns nil or a
// *RefError with every problem found (each unknown option, then
// CheckRef's), which wraps ErrInvalidReference.
func (k Kind) Check(ref Ref) error {
	var probs []error
	params := make([]string, 0, len(ref.Params))
	for p := range ref.Params {
		params = append(params, p)
	}
	sort.Strings(params)
	for _, p := range params {
		if !slices.Contains(k.Params, p) {
			allowed := "none"
			if len(k.Params) > 0 {
				allowed = strings.Join(k.Params, ", ")
			}
			probs = append(probs, &refProblem{
				msg: fmt.Sprintf("unknown option %q for provider kind %s (allowed: %s)", p, k.Name, allowed),
				err: ErrInvalidReference,
			})
		}
	}
	if k.CheckRef != nil {
		if err := k.CheckRef(ref); err != nil {
			probs = append(probs, &refProblem{msg: err.Error(), err: err, invalid: true})
		}
	}
	if len(probs) == 0 {
		return nil
	}
	return &RefError{Ref: ref, Problems: probs}
}

// RefError is a reference that a provider instance cannot take, found
// without I/O. Its message is the reference and every problem, on one
// line; it never holds a value. errors.Is finds ErrInvalidReference or
// ErrUnavailable through it.
type RefError struct {
	Ref Ref
	// Problems say what is wrong, each without the reference.
	Problems []error
}

func (e *RefError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Error()
	}
	return e.Ref.String() + ": " + strings.Join(parts, "; ")
}

// Unwrap returns the problems.
func (e *RefError) Unwrap() []error { return e.Problems }

// refProblem is one problem of a reference: its message as is, wrapping
// err; with invalid set, it also wraps ErrInvalidReference (a kind's own
// CheckRef need not say it).
type refProblem struct {
	msg     string
	err     error
	invalid bool
}

func (p *refProblem) Error() string { return p.msg }

func (p *refProblem) Unwrap() []error {
	if p.invalid {
		return []error{p.err, ErrInvalidReference}
	}
	return []error{p.err}
}

// CheckRef validates ref against the set without I/O: its scheme names an
// instance, the instance's kind is registered and in this build, and the
// kind's Check passes. Errors are a *RefError, and wrap
// ErrInvalidReference or ErrUnavailable.
func (s *Set) CheckRef(ref Ref) error {
	in, ok := s.specs[ref.Scheme]
	if !ok {
		return &RefError{Ref: ref, Problems: []error{UnknownProvider(ref.Scheme, s.Schemes())}}
	}
	k, ok := lookupAny(in.Kind)
	switch {
	case !ok:
		return &RefError{Ref: ref, Problems: []error{&refProblem{msg: in.describe() + " has an unknown kind", err: ErrInvalidReference}}}
	case k.NotInBuild != "":
		return &RefError{Ref: ref, Problems: []error{notInBuildError(in, k)}}
	}
	return k.Check(ref)
}
