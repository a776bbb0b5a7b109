package csiprovider

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/keyward/keyward/providers"
)

// clock is a settable clock for the cache.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestSharedMounts: mounts of the same config by the same identity share
// one store request while the cache holds it (concurrent ones too), the
// cache expires after its TTL, and a different identity never shares.
func TestSharedMounts(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	if err := os.WriteFile(key, []byte("v1"), 0o600); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	srv := New(Options{NodeIdentityKinds: []string{"file"}, CacheTTL: 10 * time.Second, ObserveCalls: func(providers.Call) { calls.Add(1) }})
	clk := &clock{t: time.Unix(1e9, 0)}
	srv.shared.now = clk.now
	c := serveServer(t, srv)
	cfg := "version: 1\nsecrets: {A: file://" + key + "}\nfiles: [{path: a, secret: A}]\n"
	mount := func() string {
		t.Helper()
		resp, err := c.Mount(context.Background(), &v1alpha1.MountRequest{Attributes: attributes(t, cfg, nil)})
		if err != nil {
			t.Fatal(err)
		}
		return string(resp.Files[0].Contents)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if got := mount(); got != "v1" {
				t.Errorf("concurrent mount got another value")
			}
		})
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d store requests for 20 mounts of the same secret, want 1", n)
	}
	if err := os.WriteFile(key, []byte("v2"), 0o600); err != nil {
		t.Fatal(err)
	}
	clk.add(9 * time.Second)
	if got := mount(); got != "v1" || calls.Load() != 1 {
		t.Fatalf("within the TTL: %d store requests, want the cached value and 1", calls.Load())
	}
	clk.add(2 * time.Second)
	if got := mount(); got != "v2" || calls.Load() != 2 {
		t.Fatalf("after the TTL: %d store requests, want the new value and 2", calls.Load())
	}
	if srv.shared.held() != 2 {
		t.Fatalf("cache holds %d bytes, want 2", srv.shared.held())
	}
	clk.add(11 * time.Second)
	srv.shared.sweep()
	if srv.shared.held() != 0 {
		t.Fatalf("cache holds %d bytes after expiry and sweep, want 0", srv.shared.held())
	}
}

// TestSharedZeroesAndBounds: the cache never holds more than its cap
// and zeroes what it drops; mounts keep their own copies.
func TestSharedZeroesAndBounds(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	c := newShared(time.Minute, 10, clk.now)
	val := func(s string) func(context.Context) (map[string]providers.Resolved, error) {
		return func(context.Context) (map[string]providers.Resolved, error) {
			return map[string]providers.Resolved{"A": {Value: providers.StringValue(s)}}, nil
		}
	}
	got, _, err := c.resolve(context.Background(), "k1", val("123456"))
	if err != nil {
		t.Fatal(err)
	}
	cached := c.entries["k1"].Value.(*entry).res["A"].Value.Bytes()
	if _, _, err := c.resolve(context.Background(), "k2", val("abcdef")); err != nil {
		t.Fatal(err)
	}
	if c.held() > 10 {
		t.Fatalf("cache holds %d bytes, cap 10", c.held())
	}
	if _, ok := c.entries["k1"]; ok {
		t.Fatal("least recently used entry not evicted")
	}
	for _, b := range cached {
		if b != 0 {
			t.Fatal("evicted entry's bytes not zeroed")
		}
	}
	if got["A"].Value.Reveal() != "123456" {
		t.Fatal("a mount's copy changed when the cache dropped its own")
	}
	if _, _, err := c.resolve(context.Background(), "big", val("0123456789ab")); err != nil || c.entries["big"] != nil {
		t.Fatalf("an entry over the cap is cached (err %v)", err)
	}
}

// TestIdentityWithoutReviewer: without a reviewer, mounts share only
// with the same tokens; with one, pods of one ServiceAccount share and a
// pod whose tokens prove different identities is refused.
func TestIdentityWithoutReviewer(t *testing.T) {
	ids := &identities{now: time.Now, seen: map[[32]byte]reviewed{}}
	a, _ := ids.identity(context.Background(), Pod{Tokens: map[string]Token{"": {Token: "t1"}}})
	b, _ := ids.identity(context.Background(), Pod{Tokens: map[string]Token{"": {Token: "t2"}}})
	if a == b || a == "" {
		t.Fatal("different tokens share an identity without a reviewer")
	}
	// Unverified, the same tokens (a SecretProviderClass can pass one when
	// the CSIDriver requests none) do not make pods of two ServiceAccounts
	// share: the pooled providers read the ServiceAccount's annotations.
	web, _ := ids.identity(context.Background(), Pod{Namespace: "apps", ServiceAccount: "web", Tokens: map[string]Token{"": {Token: "t1"}}})
	other, _ := ids.identity(context.Background(), Pod{Namespace: "apps", ServiceAccount: "other", Tokens: map[string]Token{"": {Token: "t1"}}})
	if web == other || web == "" {
		t.Fatal("pods of two ServiceAccounts with the same unverified token share an identity")
	}
	var reviews atomic.Int64
	ids.review = func(_ context.Context, token, _ string) (string, error) {
		reviews.Add(1)
		return map[string]string{"t1": "system:serviceaccount:ns:app", "t2": "system:serviceaccount:ns:app", "t3": "system:serviceaccount:ns:other"}[token], nil
	}
	a, _ = ids.identity(context.Background(), Pod{Tokens: map[string]Token{"": {Token: "t1"}}})
	b, _ = ids.identity(context.Background(), Pod{Tokens: map[string]Token{"": {Token: "t2"}}})
	if a != b || a != "sa:system:serviceaccount:ns:app" {
		t.Fatalf("two pods of one ServiceAccount: identities %q and %q", a, b)
	}
	if _, err := ids.identity(context.Background(), Pod{Tokens: map[string]Token{"": {Token: "t1"}, "vault": {Token: "t3"}}}); err == nil {
		t.Fatal("tokens of two identities accepted")
	}
	n := reviews.Load()
	ids.identity(context.Background(), Pod{Tokens: map[string]Token{"": {Token: "t1"}}})
	if reviews.Load() != n {
		t.Fatal("a token already verified was reviewed again")
	}
}

// TestSharedFlightBounded: the one fetch of a flight, detached from the
// first waiter's cancellation, still has a deadline of its own.
func TestSharedFlightBounded(t *testing.T) {
	c := newShared(-1, 10, time.Now)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, _, err := c.resolve(ctx, "k", func(ctx context.Context) (map[string]providers.Resolved, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("the flight's fetch has no deadline")
		}
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPool: a set is reused by its key with the latest tokens, kept while
// in use, closed after being idle, and the pool stays within its bound.
func TestPool(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	pl := &pool{idle: time.Minute, max: 2, now: clk.now, sets: map[string]*pooled{}}
	builds := 0
	build := func(*pooled) *providers.Set { builds++; return providers.NewSet(providers.Instance{}, nil) }
	s1, rel1 := pl.acquire("a", map[string]Token{"": {Token: "t1"}}, build)
	s2, rel2 := pl.acquire("a", map[string]Token{"": {Token: "t2"}}, build)
	if s1 != s2 || builds != 1 {
		t.Fatalf("%d builds for two acquisitions of one key", builds)
	}
	if tok, _ := pl.sets["a"].token(""); tok.Token != "t2" {
		t.Fatal("the set does not act with the identity's latest token")
	}
	rel1()
	clk.add(2 * time.Minute)
	pl.sweep()
	if pl.sets["a"] == nil {
		t.Fatal("a set in use was closed")
	}
	rel2()
	clk.add(2 * time.Minute)
	pl.sweep()
	if pl.sets["a"] != nil {
		t.Fatal("an idle set was kept")
	}
	for _, k := range []string{"x", "y", "z"} {
		_, rel := pl.acquire(k, nil, build)
		rel()
		clk.add(time.Second)
	}
	if len(pl.sets) != 2 || pl.sets["x"] != nil {
		t.Fatalf("%d sets kept (bound 2), or not the least recently used dropped", len(pl.sets))
	}
}

// TestServeEndZeroesCache: however Serve ends (its context done, or the
// listener failing), the secrets it cached are zeroed and dropped.
func TestServeEndZeroesCache(t *testing.T) {
	for _, how := range []string{"context done", "listener closed"} {
		t.Run(how, func(t *testing.T) {
			srv := New(Options{})
			fetch := func(context.Context) (map[string]providers.Resolved, error) {
				return map[string]providers.Resolved{"A": {Value: providers.StringValue("s3cret")}}, nil
			}
			if _, _, err := srv.shared.resolve(context.Background(), "k", fetch); err != nil {
				t.Fatal(err)
			}
			cached := srv.shared.entries["k"].Value.(*entry).res["A"].Value.Bytes()
			l, err := Listen(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if how == "context done" {
				cancel()
			} else {
				l.Close()
			}
			_ = Serve(ctx, l, srv)
			if n := srv.shared.held(); n != 0 {
				t.Errorf("cache holds %d bytes after Serve returned", n)
			}
			for _, b := range cached {
				if b != 0 {
					t.Fatal("cached value not zeroed after Serve returned")
				}
			}
		})
	}
}
