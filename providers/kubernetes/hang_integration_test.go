//go:build integration

package kubernetes

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers"
)

// TestIntegrationWatchHangs watches a Secret of the real API server
// through toxiproxy, then makes the proxy swallow every byte both ways
// without closing anything (timeout toxics of 0): the watch's connection
// stays open and nothing arrives. With the watch bounds shortened (the
// API server ends each watch after 2s; 4s of nothing is a stall), the
// watch is reported unhealthy well before client-go's HTTP/2 health check
// (45s) could notice, and once the proxy passes data again it is healthy
// and the change made during the hang is reported. Before the hang, a
// quiet watch longer than the stall bound is not taken for broken: the API
// server honours timeoutSeconds.
func TestIntegrationWatchHangs(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	tp, err := testenv.StartToxiproxy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tp.Stop)
	proxy, err := tp.Proxy("kube-watch-hang", cluster.API.URL)
	if err != nil {
		t.Fatal(err)
	}
	putSecret(t, "watch", "hang", map[string][]byte{"v": []byte("hang-first-value")})
	p := integrationProvider(t, proxy.URL(cluster.API.URL), cluster.Tokens["reader"], Options{})
	p.bounds = watchBounds{timeout: 2 * time.Second, idle: 4 * time.Second, request: 2 * time.Second}
	r := ref(t, "k8s://watch/hang")
	if _, err := p.Fetch(ctx, r); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var health []bool
	var healthAt []time.Time
	changes := 0
	wake := make(chan struct{}, 1)
	signal := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- p.WatchHealth(wctx, []providers.Ref{r}, func(providers.Ref) {
			mu.Lock()
			changes++
			mu.Unlock()
			signal()
		}, func(up bool) {
			mu.Lock()
			health = append(health, up)
			healthAt = append(healthAt, time.Now())
			mu.Unlock()
			signal()
		})
	}()
	defer func() {
		stop()
		<-done
	}()
	// waitUntil waits for cond (under mu) for at most d.
	waitUntil := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.NewTimer(d)
		defer deadline.Stop()
		for {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return
			}
			select {
			case <-wake:
			case err := <-done:
				t.Fatalf("WatchHealth returned while waiting for %s: %v", what, err)
			case <-deadline.C:
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("no %s within %v (health reports %v, %d changes)", what, d, health, changes)
			}
		}
	}

	// The watch works: a change arrives.
	putSecret(t, "watch", "hang", map[string][]byte{"v": []byte("hang-second-value")})
	waitUntil("first change", 30*time.Second, func() bool { return changes == 1 })
	// Quiet for longer than the stall bound: the API server ends each
	// watch at its timeout and it reopens, so nothing is reported.
	time.Sleep(6 * time.Second)
	mu.Lock()
	quiet := slices.Clone(health)
	mu.Unlock()
	if len(quiet) != 0 {
		t.Fatalf("health reports %v on a quiet, working watch, want none", quiet)
	}

	// The proxy swallows everything, both ways, and closes nothing.
	for _, dir := range []string{"upstream", "downstream"} {
		if _, err := proxy.AddToxic("swallow_"+dir, "timeout", dir, 1, toxiproxy.Attributes{"timeout": 0}); err != nil {
			t.Fatal(err)
		}
	}
	hung := time.Now()
	putSecret(t, "watch", "hang", map[string][]byte{"v": []byte("hang-third-value")})
	waitUntil("unhealthy report", 20*time.Second, func() bool { return len(health) > 0 })
	mu.Lock()
	if !slices.Equal(health, []bool{false}) || changes != 1 {
		t.Errorf("during the hang: health reports %v and %d changes, want [false] and 1", health, changes)
	}
	took := healthAt[0].Sub(hung)
	mu.Unlock()
	t.Logf("the hang was reported %v after it began (stall bound %v)", took.Round(10*time.Millisecond), p.bounds.idle)

	if err := proxy.Heal(); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	waitUntil("recovery", 60*time.Second, func() bool { return len(health) == 2 && changes == 2 })
	mu.Lock()
	if !slices.Equal(health, []bool{false, true}) {
		t.Errorf("health reports %v, want [false true]", health)
	}
	mu.Unlock()
	t.Logf("healthy again, with the change made during the hang, %v after the proxy passed data again", time.Since(healed).Round(10*time.Millisecond))
}
