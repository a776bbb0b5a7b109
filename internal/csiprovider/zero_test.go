package csiprovider

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

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
// waiting on it is zeroed once the last of them has taken its own; what
// the fetch returned (its provider's) is left as it is.
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
		if fetched["A"].Value.Reveal() != "flight-value" {
			t.Fatal("the provider's own value was zeroed")
		}
	})
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
