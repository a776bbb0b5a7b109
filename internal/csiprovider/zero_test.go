package csiprovider

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/keyward/keyward/providers"
)

// countKind is a provider kind that counts its instances and returns a
// fresh value per fetch.
const countKind = "csitestcount"

var countBuilds atomic.Int64

type countProvider struct{}

func (countProvider) Fetch(context.Context, providers.Ref) (providers.Secret, error) {
	return providers.Secret{Value: providers.StringValue("counted-value")}, nil
}
func (countProvider) Close() error { return nil }

func init() {
	providers.Register(providers.Kind{Name: countKind, New: func(providers.Instance) (providers.Provider, error) {
		countBuilds.Add(1)
		return countProvider{}, nil
	}})
}

// TestPooledMountsBuildOnce: the mounts of one identity fetch through its
// pooled set, whose instances are built once; a mount builds no instance
// of its own.
func TestPooledMountsBuildOnce(t *testing.T) {
	c := serve(t, Options{NodeIdentityKinds: []string{countKind}, CacheTTL: -1})
	cfg := "version: 1\nsecrets: {A: " + countKind + "://x}\nfiles: [{path: a, secret: A}]\n"
	before := countBuilds.Load()
	for range 5 {
		resp, err := c.Mount(context.Background(), &v1alpha1.MountRequest{Attributes: attributes(t, cfg, nil)})
		if err != nil {
			t.Fatal(err)
		}
		if string(resp.Files[0].Contents) != "counted-value" {
			t.Fatal("the mount's file does not hold the provider's value")
		}
	}
	if n := countBuilds.Load() - before; n != 1 {
		t.Fatalf("%d provider instances built for 5 mounts of one identity, want 1 (the pooled set's)", n)
	}
}

// TestFlightCopyZeroed: the copy of a shared fetch kept for the mounts
// waiting on it is zeroed once the last of them has taken its own; the
// mount that fetched gets what the fetch returned, which is not copied.
func TestFlightCopyZeroed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newShared(-1, DefaultCacheMaxBytes, nil)
		release := make(chan struct{})
		fetched := map[string]providers.Resolved{"A": {Value: providers.StringValue("flight-value")}}
		fetch := func(context.Context) (map[string]providers.Resolved, error) {
			<-release
			return fetched, nil
		}
		var wg sync.WaitGroup
		got := make([]map[string]providers.Resolved, 3)
		for i := range got {
			wg.Go(func() {
				res, _, err := c.resolve(context.Background(), "k", fetch)
				if err != nil {
					t.Error(err)
				}
				got[i] = res
			})
		}
		synctest.Wait() // one fetches, two wait on its flight
		c.mu.Lock()
		f := c.inflight["k"]
		c.mu.Unlock()
		if f == nil {
			t.Fatal("no flight in progress")
		}
		close(release)
		wg.Wait()
		for i, res := range got {
			if res["A"].Value.Reveal() != "flight-value" {
				t.Fatalf("mount %d did not get the fetched value", i)
			}
		}
		if f.res == nil {
			t.Fatal("the flight kept no copy for its waiters")
		}
		for _, b := range f.res["A"].Value.Bytes() {
			if b != 0 {
				t.Fatal("the flight's copy is not zeroed after its waiters took theirs")
			}
		}
		// The mount that fetched got what fetch returned, not a copy of it.
		own := 0
		for _, res := range got {
			if &res["A"].Value.Bytes()[0] == &fetched["A"].Value.Bytes()[0] {
				own++
			}
		}
		if own != 1 {
			t.Fatalf("%d mounts got the fetched bytes themselves, want 1 (the one that fetched; the others copies)", own)
		}
	})
}

// TestFetchCopies: what fetch returns goes to the mount that fetched as it
// is; a copy is made only for the cache, and a failed fetch's values are
// zeroed.
func TestFetchCopies(t *testing.T) {
	fetched := func() map[string]providers.Resolved {
		return map[string]providers.Resolved{"A": {Value: providers.StringValue("fetched-value"), Fields: map[string]providers.Value{"f": providers.StringValue("field-value")}}}
	}
	for _, ttl := range []time.Duration{-1, time.Minute} {
		c := newShared(ttl, DefaultCacheMaxBytes, nil)
		var b []byte
		res, hit, err := c.resolve(context.Background(), "k", func(context.Context) (map[string]providers.Resolved, error) {
			m := fetched()
			b = m["A"].Value.Bytes()
			return m, nil
		})
		if err != nil || hit {
			t.Fatalf("ttl %v: resolve: hit %v, err %v", ttl, hit, err)
		}
		if &res["A"].Value.Bytes()[0] != &b[0] {
			t.Errorf("ttl %v: the mount that fetched got a copy of what fetch returned", ttl)
		}
		zero(res)
		again, hit, err := c.resolve(context.Background(), "k", func(context.Context) (map[string]providers.Resolved, error) { return fetched(), nil })
		if err != nil {
			t.Fatal(err)
		}
		if ttl > 0 && (!hit || again["A"].Value.Reveal() != "fetched-value" || again["A"].Fields["f"].Reveal() != "field-value") {
			t.Errorf("ttl %v: the cached copy does not serve the next mount intact once the first zeroed its own", ttl)
		}
		c.clear()
	}

	c := newShared(time.Minute, DefaultCacheMaxBytes, nil)
	var partial map[string]providers.Resolved
	_, _, err := c.resolve(context.Background(), "k", func(context.Context) (map[string]providers.Resolved, error) {
		partial = fetched()
		return partial, errors.New("resolving B: not found")
	})
	if err == nil {
		t.Fatal("a failed fetch succeeded")
	}
	for _, v := range []providers.Value{partial["A"].Value, partial["A"].Fields["f"]} {
		if slices.ContainsFunc(v.Bytes(), func(c byte) bool { return c != 0 }) {
			t.Fatal("the values a failed fetch returned are not zeroed")
		}
	}
}

// TestMountZeroesItsValues: a mount zeroes its copy of the secrets once
// its files are rendered; the response holds the contents.
func TestMountZeroesItsValues(t *testing.T) {
	srv := New(Options{})
	attrs, _ := json.Marshal(map[string]string{ConfigKey: "version: 1\nsecrets: {A: file:///x}\nfiles: [{path: a, secret: A}]\n"})
	r, err := parseRequest(string(attrs), "")
	if err != nil {
		t.Fatal(err)
	}
	res := map[string]providers.Resolved{"A": {Value: providers.StringValue("mount-value")}}
	b := res["A"].Value.Bytes()
	resp, err := srv.respond(r, res)
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Files[0].Contents) != "mount-value" {
		t.Fatal("the response does not hold the rendered file")
	}
	for _, c := range b {
		if c != 0 {
			t.Fatal("the mount's values are not zeroed after rendering")
		}
	}
}
