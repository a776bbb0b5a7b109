package providertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keyward/keyward/providers"
)

// tempKinds numbers the kinds testResolve registers, one per Run.
var tempKinds atomic.Int64

// testResolve runs the provider inside a providers.Set, as keyward does: the
// harness's references must pass the kind's CheckRef and Params, several
// #fields of one secret must cost one Fetch, and a missing secret must
// surface as a *providers.ResolveError wrapping ErrNotFound.
//
// The provider is registered under a temporary kind (and so a scheme other
// than its usual one, as a config's named instance would be); the kind
// keeps the real kind's Params and CheckRef.
func (s *suite) testResolve(t *testing.T) {
	t.Parallel()
	if s.h.PutValue == nil && s.h.PutObject == nil {
		t.Skip("Harness.PutValue and PutObject are nil: nothing to resolve")
	}
	real, _ := providers.LookupKind(s.h.Kind)
	counts, counted := newCounter(t, s.provider(t))
	tmp := fmt.Sprintf("conformance-%s-%d", s.h.Kind, tempKinds.Add(1))
	providers.Register(providers.Kind{
		Name:     tmp,
		Params:   real.Params,
		CheckRef: real.CheckRef,
		New:      func(providers.Instance) (providers.Provider, error) { return counted, nil },
	})
	set := providers.NewSet(providers.Instance{}, []providers.Instance{{Name: tmp, Kind: tmp}})
	t.Cleanup(func() {
		if err := set.Close(); err != nil {
			t.Errorf("Set.Close: %v", err)
		}
	})
	rename := func(r providers.Ref) providers.Ref {
		r.Scheme, r.Raw = tmp, ""
		return r
	}

	refs := map[string]providers.Ref{}
	want := map[string][]byte{}
	secrets := 0
	if s.h.PutObject != nil {
		fields, values := s.objectFields(t)
		obj := rename(s.h.PutObject(t, name(t), fields))
		for f, v := range values {
			r := obj
			r.Field = f
			n := fmt.Sprintf("FIELD_%d", len(refs))
			refs[n], want[n] = r, v
		}
		secrets++
	}
	if s.h.PutValue != nil {
		v := s.secret(t)
		refs["VALUE"], want["VALUE"] = rename(s.h.PutValue(t, name(t), v)), v
		secrets++
	}

	got, err := set.Resolve(ctx(t), refs)
	s.sawError(t, err)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	for n, w := range want {
		if !bytes.Equal(got[n].Value.Bytes(), w) {
			t.Errorf("Resolve: %s (%s) returned a different value", n, refs[n])
		}
	}
	if n := counts.total(); n != secrets {
		t.Errorf("Resolve of %d references to %d secrets made %d fetches, want %d", len(refs), secrets, n, secrets)
	}

	missing := rename(s.h.Missing(t, name(t)))
	refs["MISSING"] = missing
	_, err = set.Resolve(ctx(t), refs)
	s.sawError(t, err)
	var re *providers.ResolveError
	if !errors.As(err, &re) {
		t.Fatalf("Resolve with a missing secret: got %v, want a *providers.ResolveError", err)
	}
	if len(re.Failures) != 1 || re.Failures[0].Name != "MISSING" {
		t.Errorf("Resolve with a missing secret: failures %v, want only MISSING", err)
	}
	if !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("Resolve with a missing secret: %v does not wrap providers.ErrNotFound", err)
	}
}

// counter wraps a provider to count fetches. Close is left to the suite,
// which closes the inner provider itself.
type counter struct {
	t *testing.T
	p providers.Provider

	mu      sync.Mutex
	fetches map[string]int
}

// batchCounter is a counter for a provider that is also a BatchFetcher, so
// that the Set still sees the capability.
type batchCounter struct {
	*counter
	bf providers.BatchFetcher
}

func newCounter(t *testing.T, p providers.Provider) (*counter, providers.Provider) {
	c := &counter{t: t, p: p, fetches: map[string]int{}}
	if bf, ok := p.(providers.BatchFetcher); ok {
		return c, &batchCounter{counter: c, bf: bf}
	}
	return c, c
}

func (c *counter) count(ref providers.Ref) {
	if ref.Field != "" {
		c.t.Errorf("Set handed the provider a reference with a field: %s", ref)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fetches[ref.Key()]++
}

func (c *counter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.fetches {
		n += v
	}
	return n
}

func (c *counter) Fetch(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
	c.count(ref)
	return c.p.Fetch(ctx, ref)
}

func (c *counter) Close() error { return nil }

func (b *batchCounter) FetchBatch(ctx context.Context, refs []providers.Ref) ([]providers.Secret, []error) {
	for _, r := range refs {
		b.count(r)
	}
	return b.bf.FetchBatch(ctx, refs)
}
