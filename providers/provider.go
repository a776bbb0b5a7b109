// Package providers defines how keyward names and fetches secrets: the Ref
// parsed from a reference URI, the Provider interface each secret store
// implements in its own sub-package, the registry of provider kinds, and
// the Set that builds provider instances lazily and resolves many references
// with deduplicated, bounded-concurrency fetches.
//
// Secret bytes travel as Value, which prints "REDACTED" through every
// formatting path.
package providers

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
)

// Provider fetches secrets from one store. Implementations are synchronous
// (they start no goroutines) and safe for concurrent use.
type Provider interface {
	// Fetch returns the whole secret ref names; ref.Field is always empty
	// (field selection is done by the caller, so many fields of one secret
	// cost one Fetch). It honours ctx cancellation. Errors wrap ErrNotFound
	// or ErrPermissionDenied where those apply, may name the reference, and
	// never contain secret bytes. The Secret's bytes are the caller's: a
	// provider keeps no reference to them (callers zero them when done).
	Fetch(ctx context.Context, ref Ref) (Secret, error)
	// Close releases the provider's resources. It is called once.
	Close() error
}

// Kind describes one provider implementation, registered by its package's
// init function.
type Kind struct {
	// Name is the kind ("file", "vault", …) and the scheme of its default instance.
	Name string
	// Params lists the query parameters its references accept; any other is an error.
	Params []string
	// CheckRef, when set, validates the provider-specific part of a
	// reference without I/O (path shape, parameter values).
	CheckRef func(Ref) error
	// New builds an instance. It must not contact the store: clients are
	// built on first use, so with nothing to resolve keyward needs no
	// network and no credentials.
	New func(in Instance) (Provider, error)
	// NotInBuild, when set, says that the kind exists but was left out
	// of this build, and how ("keyward was built with -tags no_vault"):
	// see RegisterNotInBuild. Such a kind has no New, Params or CheckRef.
	NotInBuild string
}

// Instance is the configuration handed to Kind.New.
type Instance struct {
	// Name is the instance name, which is also the reference scheme.
	Name string
	// Kind is the provider kind.
	Kind string
	// Decode decodes the instance's options (the config keys beside
	// "kind") into a struct, rejecting unknown keys. It decodes nothing
	// for an instance that has no configuration.
	Decode func(into any) error
	// BaseDir is the directory relative paths are resolved against: the
	// config file's directory, or the working directory without a config.
	BaseDir string
	// Getenv reads the environment (the ecosystem's standard variables).
	Getenv func(string) string
	// Logger receives the provider's log lines.
	Logger *slog.Logger
	// OnRetry, when set, is called with each failed attempt the provider
	// retries (see Retries); the Set points it at its retry observer.
	OnRetry func(err error)
	// Workload, when set, is the identity the instance acts for instead
	// of keyward's own (see Workload).
	Workload *Workload
}

// describe names the instance for messages: "provider vault", or
// "provider vault-eu (kind vault)" when the name is not the kind.
func (in Instance) describe() string {
	if in.Name == in.Kind {
		return "provider " + in.Name
	}
	return "provider " + in.Name + " (kind " + in.Kind + ")"
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Kind{}
)

// Register makes a provider kind available. It panics when the kind is
// registered twice or is incomplete; it is meant for init functions.
func Register(k Kind) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if k.Name == "" || (k.New == nil) == (k.NotInBuild == "") {
		panic("providers: Register of an incomplete kind")
	}
	if _, dup := registry[k.Name]; dup {
		panic("providers: kind " + k.Name + " registered twice")
	}
	registry[k.Name] = k
}

// RegisterNotInBuild records that kind name exists but that the build tag
// tag left it out of this binary (and its SDK with it). Its default
// instance and the instances a config declares still exist; their
// references are rejected with an error wrapping ErrUnavailable that says
// so, rather than as an unknown scheme. It is meant for the init function
// of the file that the tag selects (providers/builtin).
func RegisterNotInBuild(name, tag string) {
	Register(Kind{Name: name, NotInBuild: "keyward was built with -tags " + tag})
}

// LookupKind returns the kind of that name if it is in this build.
func LookupKind(name string) (Kind, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	k, ok := registry[name]
	return k, ok && k.NotInBuild == ""
}

// lookupAny returns the kind of that name, in this build or not.
func lookupAny(name string) (Kind, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	k, ok := registry[name]
	return k, ok
}

// Kinds returns the names of the kinds in this build, sorted: the
// providers compiled into this binary.
func Kinds() []string { return kindNames(false) }

// KnownKinds returns the names of every registered kind, in this build or
// not, sorted. Each has a default instance named after it.
func KnownKinds() []string { return kindNames(true) }

func kindNames(all bool) []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for name, k := range registry {
		if all || k.NotInBuild == "" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// KnownKind reports whether name is a kind keyward knows (built or not).
func KnownKind(name string) bool {
	_, ok := lookupAny(name)
	return ok
}

// notInBuildError is the error for a reference or an instance of a kind
// left out of this build.
func notInBuildError(in Instance, k Kind) error {
	return fmt.Errorf("%s is %w (%s)", in.describe(), ErrUnavailable, k.NotInBuild)
}

// Set is the group of provider instances one keyward process uses: the
// default instance of every registered kind plus those declared in the
// config. Providers are built on first use and closed by Close. A Set is
// safe for concurrent use.
type Set struct {
	specs map[string]Instance
	// Concurrency bounds the provider calls in flight per instance, of
	// every caller of the set together (default DefaultConcurrency). Set
	// it before the first call.
	Concurrency int
	// Observe, when set, is called by Resolve with every name that
	// resolved, also when others failed, before Resolve returns: keyward's
	// masker learns the values before any error can show them. It must not
	// block.
	Observe func(map[string]Resolved)

	mu    sync.Mutex
	built map[string]Provider
	sems  map[string]chan struct{} // per instance: its calls in flight

	calls atomic.Pointer[func(Call)] // ObserveCalls

	retryObserver atomic.Pointer[func(instance string, err error)]
}

// ObserveRetries makes f receive every failed attempt that a provider of
// the set retries, with the instance's name (the agent counts them), from
// now on, for providers built before the call too. f must be safe for
// concurrent use and must not block.
func (s *Set) ObserveRetries(f func(instance string, err error)) {
	s.retryObserver.Store(&f)
}

// NewSet returns a Set with the default instance of every registered
// kind (KnownKinds, in this build or not) and the given declared instances
// (which may override a default by name). base supplies BaseDir, Getenv
// and Logger for the default instances.
func NewSet(base Instance, declared []Instance) *Set {
	s := &Set{specs: map[string]Instance{}, built: map[string]Provider{}, sems: map[string]chan struct{}{}, Concurrency: DefaultConcurrency}
	if base.Decode == nil {
		base.Decode = func(any) error { return nil }
	}
	for _, k := range KnownKinds() {
		in := base
		in.Name, in.Kind = k, k
		in.Workload = in.Workload.forKind(k)
		s.specs[k] = in
	}
	for _, in := range declared {
		in.Workload = in.Workload.forKind(in.Kind)
		if in.Decode == nil {
			in.Decode = base.Decode
		}
		if in.Getenv == nil {
			in.Getenv = base.Getenv
		}
		if in.Logger == nil {
			in.Logger = base.Logger
		}
		if in.BaseDir == "" {
			in.BaseDir = base.BaseDir
		}
		s.specs[in.Name] = in
	}
	return s
}

// Known reports whether scheme names an instance of the set.
func (s *Set) Known(scheme string) bool {
	_, ok := s.specs[scheme]
	return ok
}

// Schemes lists the instance names, sorted.
func (s *Set) Schemes() []string {
	out := make([]string, 0, len(s.specs))
	for k := range s.specs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// KindOf returns the kind of the instance named scheme, or "".
func (s *Set) KindOf(scheme string) string { return s.specs[scheme].Kind }

// Provider returns the instance named scheme, building it on first use.
func (s *Set) Provider(scheme string) (Provider, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.built[scheme]; ok {
		return p, nil
	}
	in, ok := s.specs[scheme]
	if !ok {
		return nil, fmt.Errorf("unknown provider %q: %w", scheme, ErrInvalidReference)
	}
	k, ok := lookupAny(in.Kind)
	switch {
	case !ok:
		return nil, fmt.Errorf("%s has an unknown kind: %w", in.describe(), ErrInvalidReference)
	case k.NotInBuild != "":
		return nil, notInBuildError(in, k)
	}
	name := in.Name
	in.OnRetry = func(err error) {
		if f := s.retryObserver.Load(); f != nil {
			(*f)(name, err)
		}
	}
	p, err := k.New(in)
	if err != nil {
		return nil, fmt.Errorf("provider %s: %w", in.Name, err)
	}
	s.built[scheme] = p
	return p, nil
}

// Close closes every provider that was built and returns the first error.
func (s *Set) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for name, p := range s.built {
		if err := p.Close(); err != nil && first == nil {
			first = fmt.Errorf("closing provider %s: %w", name, err)
		}
		delete(s.built, name)
	}
	return first
}
