package providers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keyward/keyward/providers"
)

// fakeKind is registered once for this test binary. Each test hands its
// own fake to the kind through the instance's Decode, as a real kind gets
// its options.
const fakeKind = "fake-kind"

func init() {
	providers.Register(providers.Kind{
		Name:   fakeKind,
		Params: []string{"version"},
		CheckRef: func(r providers.Ref) error {
			if r.Path == "invalid" {
				return fmt.Errorf("path %q is not allowed: %w", r.Path, providers.ErrInvalidReference)
			}
			return nil
		},
		New: func(in providers.Instance) (providers.Provider, error) {
			var f *fake
			if err := in.Decode(&f); err != nil {
				return nil, err
			}
			f.news.Add(1)
			if f.newErr != nil {
				return nil, f.newErr
			}
			if f.batch {
				return &batchFake{f}, nil
			}
			return f, nil
		},
	})
	providers.Register(providers.Kind{
		Name: "fake-noparams",
		New:  func(providers.Instance) (providers.Provider, error) { return &fake{}, nil },
	})
	// keyward's kinds, none of which this test binary links: as a build
	// with every tag (no_vault, …) registers them (providers/builtin).
	for kind, tag := range map[string]string{"vault": "no_vault", "awssm": "no_awssm", "gcpsm": "no_gcpsm", "k8s": "no_k8s"} {
		providers.RegisterNotInBuild(kind, tag)
	}
	providers.RegisterNotInBuild("file", "providers_tests")
}

// TestRegisterRules: a kind is registered once, with New or as not in
// this build, never both nor neither.
func TestRegisterRules(t *testing.T) {
	t.Parallel()
	for name, k := range map[string]providers.Kind{
		"twice":   {Name: fakeKind, New: func(providers.Instance) (providers.Provider, error) { return nil, nil }},
		"neither": {Name: "reg-neither"},
		"both":    {Name: "reg-both", NotInBuild: "x", New: func(providers.Instance) (providers.Provider, error) { return nil, nil }},
		"no name": {New: func(providers.Instance) (providers.Provider, error) { return nil, nil }},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Register did not panic", name)
				}
			}()
			providers.Register(k)
		}()
	}
	if _, ok := providers.LookupKind("vault"); ok {
		t.Error("LookupKind finds a kind not in this build")
	}
	if slices.Contains(providers.Kinds(), "vault") || !slices.Contains(providers.KnownKinds(), "vault") {
		t.Errorf("Kinds %v, KnownKinds %v: want vault in the second only", providers.Kinds(), providers.KnownKinds())
	}
}

// fake is a Provider whose Fetch is a function field; it counts calls.
type fake struct {
	fetch    func(ctx context.Context, ref providers.Ref) (providers.Secret, error)
	newErr   error
	closeErr error
	batch    bool
	// batchSkew is added to the number of results FetchBatch returns (a
	// provider that breaks the one-result-per-ref contract).
	batchSkew int

	news    atomic.Int32
	closes  atomic.Int32
	batches atomic.Int32

	mu    sync.Mutex
	calls map[string]int
}

var _ providers.Provider = (*fake)(nil)

func (f *fake) Fetch(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[ref.Key()]++
	f.mu.Unlock()
	if ref.Field != "" {
		return providers.Secret{}, errors.New("Fetch got a field")
	}
	if f.fetch == nil {
		return providers.Secret{Value: providers.StringValue("value-of-" + ref.Path)}, nil
	}
	return f.fetch(ctx, ref)
}

func (f *fake) Close() error {
	f.closes.Add(1)
	return f.closeErr
}

func (f *fake) totalCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

type batchFake struct{ *fake }

func (b *batchFake) FetchBatch(ctx context.Context, refs []providers.Ref) ([]providers.Secret, []error) {
	b.batches.Add(1)
	n := max(len(refs)+b.batchSkew, 0)
	secs := make([]providers.Secret, n)
	errs := make([]error, n)
	for i := range n {
		r := refs[i%len(refs)]
		secs[i], errs[i] = b.Fetch(ctx, r)
	}
	return secs, errs
}

// newSet returns a Set with one instance of fakeKind per entry of fakes.
func newSet(t *testing.T, fakes map[string]*fake) *providers.Set {
	t.Helper()
	var declared []providers.Instance
	for name, f := range fakes {
		declared = append(declared, providers.Instance{
			Name: name,
			Kind: fakeKind,
			Decode: func(into any) error {
				*into.(**fake) = f
				return nil
			},
		})
	}
	return providers.NewSet(providers.Instance{BaseDir: t.TempDir()}, declared)
}

func mustParse(t *testing.T, refs map[string]string) map[string]providers.Ref {
	t.Helper()
	out := make(map[string]providers.Ref, len(refs))
	for name, s := range refs {
		r, err := providers.Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		out[name] = r
	}
	return out
}

func TestSetInstances(t *testing.T) {
	t.Parallel()
	s := newSet(t, map[string]*fake{"vault-eu": {}})
	want := append(providers.KnownKinds(), "vault-eu")
	slices.Sort(want)
	for _, k := range []string{"vault", "awssm", "gcpsm", "k8s", "file", fakeKind} {
		if !slices.Contains(want, k) {
			t.Errorf("KnownKinds = %v lacks %s", providers.KnownKinds(), k)
		}
	}
	if got := s.Schemes(); !slices.Equal(got, want) {
		t.Errorf("Schemes = %v, want %v", got, want)
	}
	if !s.Known("vault") || !s.Known("vault-eu") || s.Known("nope") {
		t.Error("Known")
	}
	if s.KindOf("vault-eu") != fakeKind || s.KindOf("k8s") != "k8s" || s.KindOf("nope") != "" {
		t.Error("KindOf")
	}
	if !providers.KnownKind("vault") || !providers.KnownKind(fakeKind) || providers.KnownKind("nope") {
		t.Error("KnownKind")
	}
}

func TestSetCheckRef(t *testing.T) {
	t.Parallel()
	if _, ok := providers.LookupKind("vault"); ok {
		t.Fatal("the vault kind is in this test binary; the not-in-this-build cases need a kind that is not")
	}
	f := &fake{}
	s := newSet(t, map[string]*fake{"fk": f})
	declared := providers.NewSet(providers.Instance{}, []providers.Instance{{Name: "vault-eu", Kind: "vault"}, {Name: "np", Kind: "fake-noparams"}})
	tests := []struct {
		set      *providers.Set
		ref      string
		sentinel error
		msg      string
	}{
		{s, "fk://db#password", nil, ""},
		{s, "fk://db?version=2#password", nil, ""},
		{s, "nope://x", providers.ErrInvalidReference, `nope://x: unknown provider "nope" (declare it under providers: or use one of ` + strings.Join(s.Schemes(), ", ") + ")"},
		{s, "vault://secret/x#k", providers.ErrUnavailable, "vault://secret/x#k: provider vault is not in this build (keyward was built with -tags no_vault)"},
		{declared, "vault-eu://secret/x", providers.ErrUnavailable, "provider vault-eu (kind vault) is not in this build (keyward was built with -tags no_vault)"},
		{s, "fk://db?colour=red", providers.ErrInvalidReference, `fk://db?colour=red: unknown option "colour" for provider kind fake-kind (allowed: version)`},
		{s, "fk://invalid?a=1&b=2", providers.ErrInvalidReference, `fk://invalid?a=1&b=2: unknown option "a" for provider kind fake-kind (allowed: version); unknown option "b" for provider kind fake-kind (allowed: version); path "invalid" is not allowed`},
		{declared, "np://x?version=1", providers.ErrInvalidReference, `unknown option "version" for provider kind fake-noparams (allowed: none)`},
		{s, "fk://invalid", providers.ErrInvalidReference, `fk://invalid: path "invalid" is not allowed`},
	}
	for _, tt := range tests {
		r := mustParse(t, map[string]string{"r": tt.ref})["r"]
		err := tt.set.CheckRef(r)
		if tt.sentinel == nil {
			if err != nil {
				t.Errorf("CheckRef(%s): %v", tt.ref, err)
			}
			continue
		}
		if !errors.Is(err, tt.sentinel) {
			t.Errorf("CheckRef(%s) = %v, want an error wrapping %v", tt.ref, err, tt.sentinel)
			continue
		}
		if !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("CheckRef(%s) = %q, want it to contain %q", tt.ref, err, tt.msg)
		}
	}
	if n := f.news.Load(); n != 0 {
		t.Errorf("CheckRef built the provider %d times", n)
	}
}

// TestSetLazy: nothing is built until a reference to it is resolved.
func TestSetLazy(t *testing.T) {
	t.Parallel()
	used, unused := &fake{}, &fake{}
	s := newSet(t, map[string]*fake{"used": used, "unused": unused})
	if _, err := s.Resolve(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if used.news.Load()+unused.news.Load() != 0 {
		t.Fatal("Resolve of nothing built a provider")
	}
	if _, err := s.Resolve(t.Context(), mustParse(t, map[string]string{"A": "used://a", "B": "used://b"})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(t.Context(), mustParse(t, map[string]string{"C": "used://c"})); err != nil {
		t.Fatal(err)
	}
	if n := used.news.Load(); n != 1 {
		t.Errorf("used provider built %d times, want 1", n)
	}
	if n := unused.news.Load(); n != 0 {
		t.Errorf("unused provider built %d times, want 0", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if used.closes.Load() != 1 || unused.closes.Load() != 0 {
		t.Errorf("closes: used %d, unused %d", used.closes.Load(), unused.closes.Load())
	}
	if err := s.Close(); err != nil || used.closes.Load() != 1 {
		t.Errorf("second Close: %v, used closed %d times", err, used.closes.Load())
	}
}

func TestSetDedup(t *testing.T) {
	t.Parallel()
	data := map[string]any{}
	refs := map[string]string{"WHOLE": "fk://db"}
	for i := range 10 {
		data[fmt.Sprintf("f%d", i)] = fmt.Sprintf("v%d", i)
		refs[fmt.Sprintf("F%d", i)] = fmt.Sprintf("fk://db#f%d", i)
	}
	refs["PINNED"] = "fk://db?version=2#f0"
	f := &fake{fetch: func(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
		return providers.Secret{Data: data, Version: "v-" + ref.Params["version"]}, nil
	}}
	s := newSet(t, map[string]*fake{"fk": f})
	got, err := s.Resolve(t.Context(), mustParse(t, refs))
	if err != nil {
		t.Fatal(err)
	}
	if n := f.totalCalls(); n != 2 {
		t.Errorf("%d fetches for ten fields and the whole of one secret plus one pinned version, want 2 (%v)", n, f.calls)
	}
	for i := range 10 {
		if v := got[fmt.Sprintf("F%d", i)].Value.Reveal(); v != fmt.Sprintf("v%d", i) {
			t.Errorf("F%d = %q", i, v)
		}
	}
	whole := got["WHOLE"]
	if len(whole.Fields) != 10 || whole.Fields["f3"].Reveal() != "v3" || whole.Version != "v-" {
		t.Errorf("WHOLE: %d fields, version %q", len(whole.Fields), whole.Version)
	}
	if got["PINNED"].Version != "v-2" {
		t.Errorf("PINNED version %q", got["PINNED"].Version)
	}
}

func TestSetBatch(t *testing.T) {
	t.Parallel()
	f := &fake{batch: true}
	s := newSet(t, map[string]*fake{"fk": f})
	got, err := s.Resolve(t.Context(), mustParse(t, map[string]string{"A": "fk://a", "B": "fk://b", "C": "fk://c", "A2": "fk://a"}))
	if err != nil {
		t.Fatal(err)
	}
	if n := f.batches.Load(); n != 1 {
		t.Errorf("%d FetchBatch calls, want 1", n)
	}
	if n := f.totalCalls(); n != 3 {
		t.Errorf("%d secrets fetched in the batch, want 3", n)
	}
	if got["A2"].Value.Reveal() != "value-of-a" || got["C"].Value.Reveal() != "value-of-c" {
		t.Error("batch results misassigned")
	}
}

// TestSetBatchWrongLength: a FetchBatch that returns fewer or more results
// than refs breaks its contract; every secret of the batch is an error
// naming the provider, never a panic or a value assigned to the wrong
// name, and the secrets it did return are overwritten before they are
// dropped.
func TestSetBatchWrongLength(t *testing.T) {
	t.Parallel()
	for _, skew := range []int{-1, -3, 1} {
		t.Run(fmt.Sprint(skew), func(t *testing.T) {
			t.Parallel()
			var bufMu sync.Mutex
			var bufs [][]byte
			f := &fake{batch: true, batchSkew: skew, fetch: func(_ context.Context, ref providers.Ref) (providers.Secret, error) {
				v := providers.NewValue([]byte("value-of-" + ref.Path))
				d := []byte("data-of-" + ref.Path)
				nested := providers.NewValue([]byte("nested-of-" + ref.Path))
				bufMu.Lock()
				bufs = append(bufs, v.Bytes(), d, nested.Bytes())
				bufMu.Unlock()
				return providers.Secret{
					Value: v,
					Data:  map[string]any{"d": d, "n": []any{map[string]any{"v": nested}}},
				}, nil
			}}
			s := newSet(t, map[string]*fake{"fk": f})
			var calls []providers.Call
			var mu sync.Mutex
			s.ObserveCalls(func(c providers.Call) { mu.Lock(); calls = append(calls, c); mu.Unlock() })
			_, err := s.Resolve(t.Context(), mustParse(t, map[string]string{"A": "fk://a", "B": "fk://b", "C": "fk://c"}))
			var re *providers.ResolveError
			if !errors.As(err, &re) || len(re.Failures) != 3 {
				t.Fatalf("err %v, want a failure for each of the 3 secrets", err)
			}
			for _, fl := range re.Failures {
				if !strings.Contains(fl.Err.Error(), "fk") || !strings.Contains(fl.Err.Error(), "3 references") {
					t.Errorf("%s: %v, want an error naming the provider and the batch's size", fl.Name, fl.Err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(calls) != 3 || calls[0].Err == nil {
				t.Errorf("observed calls %v, want 3 failed fetches", calls)
			}
			bufMu.Lock()
			defer bufMu.Unlock()
			for i, b := range bufs {
				if slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) {
					t.Errorf("byte slice %d of the dropped batch was not overwritten", i)
				}
			}
		})
	}
}

// TestSetConcurrencyBound: at most Concurrency fetches are in flight per
// provider; synctest.Wait shows the pool full and everyone else waiting.
func TestSetConcurrencyBound(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ concurrency, want int }{{3, 3}, {1, 1}, {0, 8}} {
		t.Run(fmt.Sprint(tt.concurrency), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				var inflight, peak atomic.Int32
				f := &fake{fetch: func(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
					n := inflight.Add(1)
					for {
						p := peak.Load()
						if n <= p || peak.CompareAndSwap(p, n) {
							break
						}
					}
					defer inflight.Add(-1)
					select {
					case <-release:
					case <-ctx.Done():
						return providers.Secret{}, ctx.Err()
					}
					return providers.Secret{Value: providers.StringValue(ref.Path)}, nil
				}}
				other := &fake{}
				s := newSet(t, map[string]*fake{"fk": f, "other": other})
				s.Concurrency = tt.concurrency
				refs := map[string]string{"OTHER": "other://x"}
				for i := range 20 {
					refs[fmt.Sprintf("S%d", i)] = fmt.Sprintf("fk://s%d", i)
				}
				done := make(chan error)
				go func() {
					_, err := s.Resolve(t.Context(), mustParse(t, refs))
					done <- err
				}()
				synctest.Wait()
				if n := inflight.Load(); n != int32(tt.want) {
					t.Errorf("%d fetches in flight with everyone blocked, want %d", n, tt.want)
				}
				if other.totalCalls() != 1 {
					t.Errorf("another provider's fetch waited for this provider's pool")
				}
				close(release)
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if p := peak.Load(); p != int32(tt.want) {
					t.Errorf("peak %d fetches in flight, want %d", p, tt.want)
				}
			})
		})
	}
}

// TestSetFetchTimeout: a fetch that never answers ends after FetchTimeout.
func TestSetFetchTimeout(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := &fake{fetch: func(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
			<-ctx.Done()
			return providers.Secret{}, fmt.Errorf("fetch %s: %w", ref.Path, ctx.Err())
		}}
		s := newSet(t, map[string]*fake{"fk": f})
		start := time.Now()
		_, err := s.Resolve(t.Context(), mustParse(t, map[string]string{"A": "fk://slow"}))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Resolve = %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d != providers.FetchTimeout {
			t.Errorf("gave up after %v, want %v", d, providers.FetchTimeout)
		}
	})
}

func TestSetCancelledContext(t *testing.T) {
	t.Parallel()
	f := &fake{fetch: func(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
		if err := ctx.Err(); err != nil {
			return providers.Secret{}, err
		}
		return providers.Secret{Value: providers.StringValue("x")}, nil
	}}
	s := newSet(t, map[string]*fake{"fk": f})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.Resolve(ctx, mustParse(t, map[string]string{"A": "fk://a", "B": "fk://b"}))
	var re *providers.ResolveError
	if !errors.As(err, &re) || len(re.Failures) != 2 || !errors.Is(err, context.Canceled) {
		t.Errorf("Resolve with a cancelled context = %v", err)
	}
}

func TestResolveError(t *testing.T) {
	t.Parallel()
	if _, ok := providers.LookupKind("vault"); ok {
		t.Fatal("the vault kind is in this test binary")
	}
	const secret = "hunter2-top-secret"
	f := &fake{fetch: func(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
		switch ref.Path {
		case "missing":
			return providers.Secret{}, fmt.Errorf("secret %s: %w", ref.Path, providers.ErrNotFound)
		case "denied":
			return providers.Secret{}, fmt.Errorf("secret %s: %w", ref.Path, providers.ErrPermissionDenied)
		}
		return providers.Secret{Data: map[string]any{"password": secret, "user": "u"}}, nil
	}}
	broken := &fake{newErr: errors.New("no credentials in the environment")}
	s := newSet(t, map[string]*fake{"fk": f, "broken": broken})
	refs := mustParse(t, map[string]string{
		"A_MISSING": "fk://missing",
		"B_DENIED":  "fk://denied#password",
		"C_SCHEME":  "nope://x",
		"D_FIELD":   "fk://db#nosuch",
		"E_OK":      "fk://db#password",
		"F_UNAVAIL": "vault://secret/x#k",
		"G_PARAM":   "fk://db?colour=red#password",
		"H_NEW":     "broken://x",
	})
	got, err := s.Resolve(t.Context(), refs)
	if got != nil {
		t.Errorf("Resolve returned values despite failures: %d", len(got))
	}
	var re *providers.ResolveError
	if !errors.As(err, &re) {
		t.Fatalf("Resolve = %v, want a *ResolveError", err)
	}
	var names []string
	for _, f := range re.Failures {
		names = append(names, f.Name)
	}
	if want := []string{"A_MISSING", "B_DENIED", "C_SCHEME", "D_FIELD", "F_UNAVAIL", "G_PARAM", "H_NEW"}; !slices.Equal(names, want) {
		t.Errorf("failures %v, want %v", names, want)
	}
	for _, sentinel := range []error{providers.ErrNotFound, providers.ErrPermissionDenied, providers.ErrInvalidReference, providers.ErrUnavailable} {
		if !errors.Is(err, sentinel) {
			t.Errorf("errors.Is(err, %v) is false", sentinel)
		}
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "resolving 7 references failed: ") {
		t.Errorf("message = %q", msg)
	}
	for _, part := range []string{"A_MISSING (fk://missing): secret missing: not found", "B_DENIED (fk://denied#password)", `field "nosuch" not found (keys: password, user)`, "H_NEW (broken://x): provider broken: no credentials in the environment"} {
		if !strings.Contains(msg, part) {
			t.Errorf("message lacks %q: %s", part, msg)
		}
	}
	if strings.Contains(msg, "hunter2") || strings.Contains(msg, "E_OK") {
		t.Errorf("message holds a value or a resolved name: %s", msg)
	}

	_, err = s.Resolve(t.Context(), mustParse(t, map[string]string{"ONE": "fk://missing"}))
	if err == nil || err.Error() != "resolving ONE (fk://missing): secret missing: not found" {
		t.Errorf("single failure = %v", err)
	}
}

func TestSetClose(t *testing.T) {
	t.Parallel()
	a, b := &fake{}, &fake{closeErr: errors.New("boom")}
	s := newSet(t, map[string]*fake{"a": a, "b": b})
	if _, err := s.Resolve(t.Context(), mustParse(t, map[string]string{"A": "a://x", "B": "b://x"})); err != nil {
		t.Fatal(err)
	}
	err := s.Close()
	if err == nil || err.Error() != "closing provider b: boom" {
		t.Errorf("Close = %v", err)
	}
	if a.closes.Load() != 1 || b.closes.Load() != 1 {
		t.Errorf("closes: a %d, b %d", a.closes.Load(), b.closes.Load())
	}
}

// TestResolveObserve: Observe sees every name that resolved, also when
// others failed, before Resolve returns the error (keyward's masker learns
// the values before any message can show them).
func TestResolveObserve(t *testing.T) {
	t.Parallel()
	f := &fake{fetch: func(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
		if ref.Path == "missing" {
			return providers.Secret{}, fmt.Errorf("secret %s: %w", ref.Path, providers.ErrNotFound)
		}
		return providers.Secret{Value: providers.StringValue("value-of-" + ref.Path)}, nil
	}}
	s := newSet(t, map[string]*fake{"fk": f})
	var seen map[string]providers.Resolved
	s.Observe = func(m map[string]providers.Resolved) { seen = m }
	_, err := s.Resolve(t.Context(), mustParse(t, map[string]string{"OK": "fk://a", "BAD": "fk://missing"}))
	if err == nil {
		t.Fatal("Resolve succeeded with a missing secret")
	}
	if len(seen) != 1 || seen["OK"].Value.Reveal() != "value-of-a" {
		t.Errorf("Observe saw %d names, want OK with its value", len(seen))
	}
}

// TestResolveFailureZeroes: a Resolve that fails drops the values that
// did resolve, and zeroes them first (nobody else holds them); with
// Observe set they are the observer's and are left as they are.
func TestResolveFailureZeroes(t *testing.T) {
	t.Parallel()
	for _, observed := range []bool{false, true} {
		var mu sync.Mutex
		var held [][]byte
		f := &fake{fetch: func(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
			if ref.Path == "missing" {
				return providers.Secret{}, fmt.Errorf("secret %s: %w", ref.Path, providers.ErrNotFound)
			}
			sec := providers.Secret{Value: providers.StringValue("value-of-" + ref.Path), Data: map[string]any{"k": []byte("field-of-" + ref.Path)}}
			mu.Lock()
			held = append(held, sec.Value.Bytes(), sec.Data["k"].([]byte))
			mu.Unlock()
			return sec, nil
		}}
		s := newSet(t, map[string]*fake{"fk": f})
		if observed {
			s.Observe = func(map[string]providers.Resolved) {}
		}
		_, err := s.Resolve(t.Context(), mustParse(t, map[string]string{"OK": "fk://a", "F": "fk://b#k", "BAD": "fk://missing"}))
		if err == nil {
			t.Fatal("Resolve succeeded with a missing secret")
		}
		if len(held) != 4 {
			t.Fatalf("%d values fetched, want 4", len(held))
		}
		for i, b := range held {
			zeroed := !slices.ContainsFunc(b, func(c byte) bool { return c != 0 })
			if zeroed == observed {
				t.Errorf("observed=%v: fetched value %d zeroed=%v after the failed Resolve", observed, i, zeroed)
			}
		}
	}
}

// defaulted is a fake whose references may leave out a default prefix
// ("dflt/"), as gcpsm://SECRET leaves out the instance's project: it reads
// "dflt/x" and "x" alike, and says so through Canonical.
type defaulted struct{ *fake }

var _ providers.Canonicalizer = defaulted{}

func (d defaulted) Canonical(r providers.Ref) (providers.Ref, error) {
	if r.Path == "invalid-here" {
		return providers.Ref{}, fmt.Errorf("path %q is not served by this instance: %w", r.Path, providers.ErrInvalidReference)
	}
	if !strings.HasPrefix(r.Path, "dflt/") {
		r.Path = "dflt/" + r.Path
	}
	return r, nil
}

// defaultedSet returns a Set whose instance "fk" is a defaulted f.
func defaultedSet(t *testing.T, f *fake) *providers.Set {
	t.Helper()
	const kind = "fake-defaulted"
	if _, ok := providers.LookupKind(kind); !ok {
		providers.Register(providers.Kind{
			Name:   kind,
			Params: []string{"version"},
			New: func(in providers.Instance) (providers.Provider, error) {
				var f *fake
				if err := in.Decode(&f); err != nil {
					return nil, err
				}
				return defaulted{f}, nil
			},
		})
	}
	return providers.NewSet(providers.Instance{}, []providers.Instance{{
		Name: "fk", Kind: kind,
		Decode: func(into any) error { *into.(**fake) = f; return nil },
	}})
}

// TestResolveOneFetchPerIdentity: two spellings of one secret (one leaves
// out the instance's default, the other spells it out) are one fetch, and
// every field comes from it, so from one version. A different version of
// the same secret is a fetch of its own.
func TestResolveOneFetchPerIdentity(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	f := &fake{fetch: func(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
		v := n.Add(1) // every read sees a new version
		return providers.Secret{Version: fmt.Sprint(v), Data: map[string]any{"user": fmt.Sprintf("u%d", v), "pass": fmt.Sprintf("p%d", v)}}, nil
	}}
	s := defaultedSet(t, f)
	defer s.Close()
	got, err := s.Resolve(t.Context(), mustParse(t, map[string]string{
		"USER":   "fk://app#user",
		"PASS":   "fk://dflt/app#pass",
		"PINNED": "fk://app?version=3#user",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c := f.totalCalls(); c != 2 {
		t.Errorf("%d fetches for two spellings of one secret and a pinned version of it, want 2 (%v)", c, f.calls)
	}
	if f.calls[providers.Ref{Scheme: "fk", Path: "dflt/app"}.Key()] != 1 {
		t.Errorf("the provider was not asked for the canonical spelling: %v", f.calls)
	}
	u, p := got["USER"], got["PASS"]
	if u.Version != p.Version || strings.TrimPrefix(u.Value.Reveal(), "u") != strings.TrimPrefix(p.Value.Reveal(), "p") {
		t.Errorf("USER (version %s) and PASS (version %s) come from two versions of one secret", u.Version, p.Version)
	}
	if u.Ref.Path != "app" || p.Ref.Path != "dflt/app" {
		t.Errorf("the names lost the references they were given: %s, %s", u.Ref, p.Ref)
	}
}

// TestPlanFailures: a reference its instance's Canonical refuses fails on
// its own, named, like one CheckRef refuses; the others are planned.
func TestPlanFailures(t *testing.T) {
	t.Parallel()
	s := defaultedSet(t, &fake{})
	defer s.Close()
	plan, failures := s.Plan(mustParse(t, map[string]string{"A": "fk://a", "B": "fk://invalid-here", "C": "nope://c", "D": "fk://dflt/a#x"}))
	if len(failures) != 2 || failures[0].Name != "B" || failures[1].Name != "C" ||
		!errors.Is(failures[0].Err, providers.ErrInvalidReference) || !errors.Is(failures[1].Err, providers.ErrInvalidReference) {
		t.Errorf("failures %v, want B (refused by Canonical) and C (unknown scheme)", failures)
	}
	if src := plan.Sources(); len(src) != 1 || !slices.Equal(src[0].Names, []string{"A", "D"}) || src[0].Ref.Path != "dflt/a" || src[0].Ref.Field != "" {
		t.Errorf("sources %+v, want one, dflt/a without a field, for A and D", src)
	}
}

// TestSetLimitShared: the per-instance limit holds for every caller of
// the set together: a plan being fetched and single calls share it.
func TestSetLimitShared(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var inflight atomic.Int32
		f := &fake{fetch: func(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
			inflight.Add(1)
			defer inflight.Add(-1)
			select {
			case <-release:
			case <-ctx.Done():
				return providers.Secret{}, ctx.Err()
			}
			return providers.Secret{Value: providers.StringValue(ref.Path)}, nil
		}}
		s := newSet(t, map[string]*fake{"fk": f})
		s.Concurrency = 3
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				_, _ = s.Resolve(t.Context(), mustParse(t, map[string]string{"A": fmt.Sprintf("fk://r%d", i), "B": fmt.Sprintf("fk://s%d", i)}))
			})
			wg.Go(func() { _, _ = s.Fetch(t.Context(), providers.Ref{Scheme: "fk", Path: fmt.Sprintf("one%d", i)}) })
		}
		synctest.Wait()
		if n := inflight.Load(); n != 3 {
			t.Errorf("%d calls in flight from several callers, want the instance's limit 3", n)
		}
		close(release)
		wg.Wait()
	})
}

// TestObserveCalls: every call the set makes is observed once, with its
// instance, operation and outcome.
func TestObserveCalls(t *testing.T) {
	t.Parallel()
	f := &fake{fetch: func(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
		if ref.Path == "missing" {
			return providers.Secret{}, providers.ErrNotFound
		}
		return providers.Secret{Value: providers.StringValue("x")}, nil
	}}
	s := newSet(t, map[string]*fake{"fk": f})
	var mu sync.Mutex
	var calls []string
	s.ObserveCalls(func(c providers.Call) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, fmt.Sprintf("%s %s %v", c.Instance, c.Op, c.Err))
	})
	_, _ = s.Resolve(t.Context(), mustParse(t, map[string]string{"A": "fk://a", "A2": "fk://a#k", "M": "fk://missing"}))
	_, _ = s.ProbeVersion(t.Context(), providers.Ref{Scheme: "fk", Path: "a"})
	slices.Sort(calls)
	want := []string{"fk fetch <nil>", "fk fetch not found", "fk probe provider fk cannot probe versions"}
	if !slices.Equal(calls, want) {
		t.Errorf("observed %q, want %q", calls, want)
	}
}
