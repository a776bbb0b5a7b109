package rotate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/render"
)

var hup = &Action{Kind: ActionSignal, Signal: syscall.SIGHUP}

func TestInitAllOrNothing(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := newStore()
		st.set("db", `{"user":"sv-app","password":"sv-pw1"}`)
		r := newRig(t, st, plainProvider{st},
			map[string]providers.Ref{"USER": ref("db", "user"), "PASS": ref("db", "password"), "KEY": ref("stripe", "")},
			[]File{dotenvFile("app.env", nil, "USER", "PASS"), rawFile("key", "KEY", nil)}, nil)
		err := r.eng.Init(context.Background())
		var re *providers.ResolveError
		if !errors.As(err, &re) || len(re.Failures) != 1 || re.Failures[0].Name != "KEY" || !errors.Is(err, providers.ErrNotFound) {
			t.Fatalf("Init = %v, want a ResolveError for KEY only", err)
		}
		if r.eng.Ready() == nil {
			t.Fatal("ready before the first render")
		}
		if err := r.eng.Run(context.Background()); err == nil {
			t.Fatal("Run after a failed Init succeeded")
		}
		if got := st.count("fetch db"); got != 1 {
			t.Fatalf("two fields of one secret cost %d fetches, want 1", got)
		}
		st.set("stripe", "sv-key")
		r.start()
		if r.read("key") != "sv-key" || !strings.Contains(r.read("app.env"), "PASS=sv-pw1") {
			t.Fatal("files not rendered by Init")
		}
		if err := r.eng.Ready(); err != nil {
			t.Fatalf("not ready after Init: %v", err)
		}
		if got := r.metric("keyward_renders_total", "result", "ok"); got != 1 {
			t.Fatalf("renders ok = %v", got)
		}
	})
}

func TestRunBeforeInit(t *testing.T) {
	t.Parallel()
	st := newStore()
	r := newRig(t, st, plainProvider{st}, map[string]providers.Ref{"A": ref("a", "")}, nil, nil)
	if err := r.eng.Run(context.Background()); err == nil {
		t.Fatal("Run before Init succeeded")
	}
}

// TestPollingRendersAffectedFilesOnly: without a probe or a watch, secrets
// are fetched every interval; a change re-renders only the file using it
// and runs that file's action.
func TestPollingRendersAffectedFilesOnly(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := newStore()
		st.set("a", "sv-a1")
		st.set("b", "sv-b1")
		r := newRig(t, st, plainProvider{st},
			map[string]providers.Ref{"A": ref("a", ""), "B": ref("b", "")},
			[]File{rawFile("a", "A", &Action{Kind: ActionCommand, Command: []string{"/bin/reload-a"}}), rawFile("b", "B", hup)},
			func(o *Options) { o.Interval = 10 * time.Second })
		r.start()
		inodeA := r.inode("a")

		time.Sleep(10*time.Second - time.Millisecond)
		synctest.Wait()
		if st.count("fetch a") != 1 {
			t.Fatalf("fetched before the interval: %d", st.count("fetch a"))
		}
		st.set("b", "sv-b2")
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if st.count("fetch a") != 2 || st.count("fetch b") != 2 {
			t.Fatalf("fetches a=%d b=%d after one interval, want 2 each", st.count("fetch a"), st.count("fetch b"))
		}
		if r.read("b") != "sv-b2" {
			t.Fatal("b not re-rendered")
		}
		if r.inode("a") != inodeA {
			t.Fatal("a was rewritten although A did not change")
		}
		if s, rs := r.child.counts(); s != 1 || rs != 0 || r.child.signals[0] != syscall.SIGHUP {
			t.Fatalf("signals %v restarts %d, want one HUP", r.child.signals, rs)
		}
		if r.cmds.count() != 0 {
			t.Fatal("a's command ran although a did not change")
		}
		if got := r.metric("keyward_secret_changes_total", "secret", "B"); got != 1 {
			t.Fatalf("changes of B = %v", got)
		}
		if got := r.metric("keyward_provider_requests_total", "provider", scheme, "op", "fetch", "result", "ok"); got != 4 {
			t.Fatalf("fetch ok = %v, want 4", got)
		}
		if got := r.metric("keyward_secret_last_success_timestamp_seconds", "secret", "A"); got != float64(time.Now().UnixNano())/1e9 {
			t.Fatalf("last success of A = %v, now %v", got, time.Now().Unix())
		}
	})
}

func TestDefaultIntervals(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		p    func(*store) providers.Provider
		want time.Duration
		op   string
	}{
		{"no probe", func(s *store) providers.Provider { return plainProvider{s} }, DefaultPollInterval, "fetch a"},
		{"probe", func(s *store) providers.Provider { return proberProvider{plainProvider{s}} }, DefaultProbeInterval, "probe a"},
		// While the watch runs: the safety net, max(10 × interval, 10 min).
		{"watch", func(s *store) providers.Provider { return watcherProvider{plainProvider{s}} }, 10 * DefaultPollInterval, "fetch a"},
		{"watch and probe", func(s *store) providers.Provider { return watchProberProvider{proberProvider{plainProvider{s}}} }, minSafetyInterval, "probe a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				st := newStore()
				st.set("a", "sv-1")
				r := newRig(t, st, c.p(st), map[string]providers.Ref{"A": ref("a", "")}, nil, nil)
				r.start()
				before := st.count(c.op)
				time.Sleep(c.want - time.Millisecond)
				synctest.Wait()
				if st.count(c.op) != before {
					t.Fatalf("looked before %v", c.want)
				}
				time.Sleep(time.Millisecond)
				synctest.Wait()
				if st.count(c.op) != before+1 {
					t.Fatalf("%s count %d at %v, want %d", c.op, st.count(c.op), c.want, before+1)
				}
			})
		})
	}
}

// TestJitter: the interval is varied by ±jitter.
func TestJitter(t *testing.T) {
	t.Parallel()
	for _, rnd := range []float64{0, 0.999999} {
		synctest.Test(t, func(t *testing.T) {
			st := newStore()
			st.set("a", "sv-1")
			r := newRig(t, st, plainProvider{st}, map[string]providers.Ref{"A": ref("a", "")}, nil, func(o *Options) {
				o.Interval, o.Jitter, o.Rand = 100*time.Second, 0.2, func() float64 { return rnd }
			})
			r.start()
			want := 80 * time.Second // rand 0: -20%
			if rnd > 0.5 {
				want = 120 * time.Second
			}
			time.Sleep(want - time.Second)
			synctest.Wait()
			if st.count("fetch a") != 1 {
				t.Fatalf("rand %v: fetched before %v", rnd, want)
			}
			time.Sleep(time.Second)
			synctest.Wait()
			if st.count("fetch a") != 2 {
				t.Fatalf("rand %v: not fetched at %v", rnd, want)
			}
		})
	}
}

// TestProbeFetchesOnlyWhenVersionMoves: with a version probe, a full read
// happens only when the version changed.
func TestProbeFetchesOnlyWhenVersionMoves(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := newStore()
		st.set("a", "sv-1")
		r := newRig(t, st, proberProvider{plainProvider{st}}, map[string]providers.Ref{"A": ref("a", "")},
			[]File{rawFile("a", "A", nil)}, func(o *Options) { o.Interval = time.Minute })
		r.start()
		for range 3 {
			time.Sleep(time.Minute)
			synctest.Wait()
		}
		if st.count("probe a") != 3 || st.count("fetch a") != 1 {
			t.Fatalf("probes %d fetches %d, want 3 and 1", st.count("probe a"), st.count("fetch a"))
		}
		st.set("a", "sv-2")
		time.Sleep(time.Minute)
		synctest.Wait()
		if st.count("probe a") != 4 || st.count("fetch a") != 2 || r.read("a") != "sv-2" {
			t.Fatalf("after a version change: probes %d fetches %d", st.count("probe a"), st.count("fetch a"))
		}
	})
}

// TestRecoveryReadsInFull: after a failed look, the next one is a full
// read, not a probe: a secret deleted and created again may restart at
// the version it had (GCP, Vault KV v2), and a probe comparing versions
// would keep the deleted secret's value.
func TestRecoveryReadsInFull(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := newStore()
		st.set("a", "sv-1")
		r := newRig(t, st, proberProvider{plainProvider{st}}, map[string]providers.Ref{"A": ref("a", "")},
			[]File{rawFile("a", "A", nil)}, func(o *Options) { o.Interval = time.Minute })
		r.start()
		st.remove("a")
		time.Sleep(time.Minute)
		synctest.Wait()
		if r.read("a") != "sv-1" {
			t.Fatal("the last good value was not kept while the secret was missing")
		}
		st.set("a", "sv-2") // version 1 again
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if r.read("a") != "sv-2" {
			t.Fatalf("the re-created secret's value was not read (probes %d, fetches %d)", st.count("probe a"), st.count("fetch a"))
		}
	})
}

// TestVersionMovedContentSame: a new version with the same bytes is not a
// change: nothing is rendered and no action runs.
func TestVersionMovedContentSame(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := newStore()
		st.set("db", `{"user":"sv-u","password":"sv-p"}`)
		r := newRig(t, st, proberProvider{plainProvider{st}}, map[string]providers.Ref{"U": ref("db", "user")},
			[]File{rawFile("u", "U", hup)}, func(o *Options) { o.Interval = time.Minute })
		r.start()
		st.set("db", `{"user":"sv-u","password":"sv-other"}`) // a field nobody uses
		time.Sleep(time.Minute)
		synctest.Wait()
		if st.count("fetch db") != 2 {
			t.Fatalf("fetches %d, want 2 (the version moved)", st.count("fetch db"))
		}
		if s, _ := r.child.counts(); s != 0 || r.metric("keyward_renders_total", "result", "ok") != 1 {
			t.Fatalf("an unchanged value caused %d signals / a render", s)
		}
	})
}

// TestWatchBurstIsOneRender: watch events are debounced: a burst of
// rotations is one fetch, one render and one action; a continuous stream
// is flushed after MaxDelay.
func TestWatchBurstIsOneRender(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := newStore()
		st.set("a", "sv-0")
		st.set("b", "sv-b")
		r := newRig(t, st, watcherProvider{plainProvider{st}},
			map[string]providers.Ref{"A": ref("a", ""), "B": ref("b", "")},
			[]File{rawFile("a", "A", hup), rawFile("b", "B", hup)},
			func(o *Options) { o.Interval = time.Hour; o.Debounce = 50 * time.Millisecond; o.MaxDelay = time.Second })
		r.start()
		synctest.Wait() // the watch is registered

		for i := 1; i <= 5; i++ {
			st.set("a", "sv-"+string(rune('0'+i)))
			st.trigger("a")
			time.Sleep(10 * time.Millisecond)
		}
		synctest.Wait()
		if st.count("fetch a") != 1 {
			t.Fatalf("fetched during the burst: %d", st.count("fetch a"))
		}
		time.Sleep(50 * time.Millisecond)
		synctest.Wait()
		if st.count("fetch a") != 2 || st.count("fetch b") != 1 {
			t.Fatalf("after the burst: fetches a=%d b=%d, want 2 and 1", st.count("fetch a"), st.count("fetch b"))
		}
		if r.read("a") != "sv-5" {
			t.Fatalf("a = %q, want the last value", r.read("a"))
		}
		if s, _ := r.child.counts(); s != 1 {
			t.Fatalf("%d signals for one burst", s)
		}
		if got := r.metric("keyward_renders_total", "result", "ok"); got != 2 {
			t.Fatalf("renders %v, want 2 (init + one)", got)
		}

		// A stream of events 30ms apart never goes quiet: flushed at 1s.
		start := time.Now()
		for time.Since(start) < 2*time.Second {
			st.trigger("b")
			time.Sleep(30 * time.Millisecond)
			synctest.Wait()
			if st.count("fetch b") > 1 {
				break
			}
		}
		if got := time.Since(start); got < time.Second || got > time.Second+30*time.Millisecond {
			t.Fatalf("a continuous stream was flushed after %v, want MaxDelay (1s)", got)
		}
	})
}

// TestUnhealthyWatchPolled: a watch that reconnects by itself
// (providers.HealthWatcher) and says it is not healthy leaves its secrets
// polled at the normal interval, so a store that fails shows in
// keyward_secret_up as a polled one does; once it is healthy again, they
// are polled at the safety interval only.
func TestUnhealthyWatchPolled(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := newStore()
		st.set("a", "sv-1")
		p := oneSet(t, healthWatcherProvider{plainProvider{st}})
		r := newRig(t, st, nil, map[string]providers.Ref{"A": ref("a", "")},
			[]File{rawFile("a", "A", hup)}, func(o *Options) { o.Providers, o.Interval = p, 10*time.Second })
		r.start()
		synctest.Wait()
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := st.count("fetch a"); got != 1 {
			t.Fatalf("fetches of a %d with the watch healthy, want 1 (Init)", got)
		}

		// The store fails and the watch says so: a is polled at once (its
		// last look is more than an interval ago), then every 10s, and
		// each failed poll shows.
		st.failFetch("a", errors.New("connection refused"))
		st.setHealthy(false)
		synctest.Wait()
		if got := st.count("fetch a"); got != 2 {
			t.Fatalf("fetches of a %d once the watch is unhealthy, want 2", got)
		}
		if up := r.metric("keyward_secret_up", "secret", "A"); up != 0 {
			t.Errorf("keyward_secret_up %v while the store fails under an unhealthy watch, want 0", up)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := st.count("fetch a"); got < 3 {
			t.Fatalf("fetches of a %d 10s later, want it polled again", got)
		}

		// The store and the watch are back.
		st.failFetch("a", nil)
		time.Sleep(time.Minute)
		synctest.Wait()
		if up := r.metric("keyward_secret_up", "secret", "A"); up != 1 {
			t.Errorf("keyward_secret_up %v once the store answers, want 1", up)
		}
		st.setHealthy(true)
		synctest.Wait()
		n := st.count("fetch a")
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if got := st.count("fetch a"); got != n {
			t.Fatalf("fetches of a %d with the watch healthy again, want %d (no polling at the interval)", got, n)
		}
	})
}

// TestWatchedNotPolled: while a provider's watch runs, its secrets are
// polled only at the safety interval and a change the watch reports is
// fetched after the debounce; while the watch is down they are polled at
// the normal interval; once it is back, at the safety interval again.
func TestWatchedNotPolled(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := newStore()
		st.set("a", "sv-1")
		st.set("p", "sv-p") // polled: the watch of another provider does not slow it
		plain := plainProvider{st}
		p := newSet(t, map[string]providers.Provider{scheme: watcherProvider{plain}, "poll": plain})
		r := newRig(t, st, nil, map[string]providers.Ref{"A": ref("a", ""), "P": {Scheme: "poll", Path: "p"}},
			[]File{rawFile("a", "A", hup)}, func(o *Options) { o.Providers, o.Interval = p, 10*time.Second })
		r.start()
		synctest.Wait()
		if st.running() != 1 {
			t.Fatalf("%d watches running, want 1", st.running())
		}
		const safety = 10 * time.Minute // max(10 × 10s, 10 min)
		time.Sleep(safety - time.Millisecond)
		synctest.Wait()
		if got, polled := st.count("fetch a"), st.count("fetch p"); got != 1 || polled != 60 {
			t.Fatalf("fetches a=%d p=%d before the safety interval, want 1 (Init) and 60 (every 10s)", got, polled)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if got := st.count("fetch a"); got != 2 {
			t.Fatalf("fetches of a %d at the safety interval, want 2", got)
		}

		st.set("a", "sv-2")
		st.trigger("a")
		time.Sleep(DefaultDebounce)
		synctest.Wait()
		if got := st.count("fetch a"); got != 3 || r.read("a") != "sv-2" {
			t.Fatalf("after a watch event: %d fetches, a = %q; want 3 and sv-2", got, r.read("a"))
		}
		looked := time.Now()

		// The watch fails and its restarts fail too: a is polled every 10s
		// after its last look.
		st.breakWatch(errors.New("watch refused"))
		synctest.Wait()
		time.Sleep(time.Until(looked.Add(10*time.Second - time.Millisecond)))
		synctest.Wait()
		if got := st.count("fetch a"); got != 3 {
			t.Fatalf("fetches of a %d before the interval with the watch down, want 3", got)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if got := st.count("fetch a"); got != 4 {
			t.Fatalf("fetches of a %d at the interval with the watch down, want 4", got)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := st.count("fetch a"); got != 5 {
			t.Fatalf("fetches of a %d two intervals with the watch down, want 5", got)
		}
		if got := st.watchCalls(); got < 3 {
			t.Fatalf("%d watch calls, want the watch retried", got)
		}

		// The watch is back within its backoff (at most 30s): the next
		// poll is due 10 min after the last look, at most 10s before it.
		st.healWatch()
		time.Sleep(time.Minute)
		synctest.Wait()
		if st.running() != 1 {
			t.Fatalf("%d watches running after the heal, want 1", st.running())
		}
		n := st.count("fetch a")
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if got := st.count("fetch a"); got != n {
			t.Fatalf("fetches of a %d with the watch back, want %d (no polling at the interval)", got, n)
		}
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if got := st.count("fetch a"); got != n+1 {
			t.Fatalf("fetches of a %d, want %d (one safety poll)", got, n+1)
		}
		if got := st.count("probe a"); got != 0 {
			t.Fatalf("%d probes of a provider without a probe", got)
		}
	})
}

// TestWatchTwoSecretsOneApply: two secrets rotated in one burst are applied
// together: one render, one signal.
func TestWatchTwoSecretsOneApply(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := newStore()
		st.set("a", "sv-a1")
		st.set("b", "sv-b1")
		r := newRig(t, st, watcherProvider{plainProvider{st}},
			map[string]providers.Ref{"A": ref("a", ""), "B": ref("b", "")},
			[]File{dotenvFile("app.env", hup, "A", "B")}, func(o *Options) { o.Interval = time.Hour })
		r.start()
		synctest.Wait()
		st.set("a", "sv-a2")
		st.trigger("a")
		st.set("b", "sv-b2")
		st.trigger("b")
		time.Sleep(time.Second)
		synctest.Wait()
		if got := r.read("app.env"); got != "A=sv-a2\nB=sv-b2\n" {
			t.Fatalf("app.env = %q", got)
		}
		if s, _ := r.child.counts(); s != 1 || r.metric("keyward_renders_total", "result", "ok") != 2 {
			t.Fatalf("%d signals, %v renders, want 1 and 2", s, r.metric("keyward_renders_total", "result", "ok"))
		}
	})
}

// TestLeaseRenewal: a renewable lease is renewed at 2/3 of its TTL; when
// renewal is refused the secret is fetched anew, and the new credentials
// reach the child by a restart (env) .
func TestLeaseRenewal(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := newStore()
		st.set("creds", `{"password":"sv-1"}`)
		st.setLease("creds", &providers.Lease{ID: "l1", Duration: 90 * time.Second, Renewable: true})
		r := newRig(t, st, renewerProvider{plainProvider{st}}, map[string]providers.Ref{"PW": ref("creds", "password")}, nil,
			func(o *Options) { o.EnvSecrets = []string{"PW"}; o.Interval = time.Hour })
		r.start()
		time.Sleep(60*time.Second - time.Millisecond)
		synctest.Wait()
		if st.count("renew creds") != 0 {
			t.Fatal("renewed before 2/3 of the TTL")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if st.count("renew creds") != 1 || st.count("fetch creds") != 1 {
			t.Fatalf("at 2/3 TTL: renews %d fetches %d", st.count("renew creds"), st.count("fetch creds"))
		}
		if r.metric("keyward_secret_lease_expiry_timestamp_seconds", "secret", "PW") != float64(time.Now().Add(90*time.Second).Unix()) {
			t.Fatal("lease expiry metric not updated by the renewal")
		}
		// The next renewal is refused: fetch a new secret.
		st.mu.Lock()
		st.renewErr = providers.ErrLeaseNotRenewable
		st.mu.Unlock()
		st.set("creds", `{"password":"sv-2"}`)
		time.Sleep(60 * time.Second)
		synctest.Wait()
		if st.count("renew creds") != 2 || st.count("fetch creds") != 2 {
			t.Fatalf("after a refused renewal: renews %d fetches %d", st.count("renew creds"), st.count("fetch creds"))
		}
		if got := r.eng.Values()["PW"].Value.Reveal(); got != "sv-2" {
			t.Fatal("new credentials not in Values")
		}
		if _, rs := r.child.counts(); rs != 1 {
			t.Fatalf("restarts %d, want 1 for an env secret", rs)
		}
		if err := r.eng.Ready(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestLeaseExpiresReadiness: a lease that expires while its secret cannot
// be fetched turns Ready red (naming the secret, not the value), and a
// later successful fetch turns it green again.
func TestLeaseExpiresReadiness(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := newStore()
		st.set("creds", `{"password":"sv-1"}`)
		st.setLease("creds", &providers.Lease{Duration: 30 * time.Second})
		r := newRig(t, st, plainProvider{st}, map[string]providers.Ref{"PW": ref("creds", "password")}, nil,
			func(o *Options) { o.Interval = time.Hour })
		r.start()
		st.failFetch("creds", errors.New("connection refused"))
		time.Sleep(29 * time.Second)
		synctest.Wait()
		if err := r.eng.Ready(); err != nil {
			t.Fatalf("not ready before expiry: %v", err)
		}
		if st.count("fetch creds") < 2 {
			t.Fatal("a non-renewable lease was not re-fetched before expiry")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		err := r.eng.Ready()
		if err == nil || !strings.Contains(err.Error(), "PW") || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("Ready after expiry = %v", err)
		}
		if r.metric("keyward_secrets_ready") != 0 || r.metric("keyward_secret_up", "secret", "PW") != 0 {
			t.Fatal("metrics do not show the expiry")
		}
		st.failFetch("creds", nil)
		time.Sleep(retryMax)
		synctest.Wait()
		if err := r.eng.Ready(); err != nil {
			t.Fatalf("not ready after recovery: %v", err)
		}
		if r.metric("keyward_secrets_ready") != 1 {
			t.Fatal("ready metric not back to 1")
		}
	})
}

// TestFailureBackoffAndRecovery: a failing secret keeps its last good value
// in memory and on disk, is retried with growing delays, is logged at most
// once per LogEvery, and recovers by itself.
func TestFailureBackoffAndRecovery(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := newStore()
		st.set("a", "sv-good")
		r := newRig(t, st, plainProvider{st}, map[string]providers.Ref{"A": ref("a", "")},
			[]File{rawFile("a", "A", hup)}, func(o *Options) { o.Interval = 10 * time.Second; o.LogEvery = time.Minute })
		r.start()
		st.failFetch("a", errors.New("boom"))
		// Rand 0.5: retries after 0.5s, 1s, 2s, 4s, 8s, 16s, 32s, 64s …
		var at []time.Duration
		start := time.Now()
		last := st.count("fetch a")
		for time.Since(start) < 3*time.Minute {
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
			if n := st.count("fetch a"); n != last {
				last = n
				at = append(at, time.Since(start).Truncate(100*time.Millisecond))
			}
		}
		want := []time.Duration{10 * time.Second, 10500 * time.Millisecond, 11500 * time.Millisecond, 13500 * time.Millisecond,
			17500 * time.Millisecond, 25500 * time.Millisecond, 41500 * time.Millisecond, 73500 * time.Millisecond, 137500 * time.Millisecond}
		if len(at) != len(want) {
			t.Fatalf("fetched at %v, want %v", at, want)
		}
		for i := range want {
			if at[i] != want[i] {
				t.Fatalf("fetched at %v, want %v", at, want)
			}
		}
		if r.read("a") != "sv-good" || r.eng.Values()["A"].Value.Reveal() != "sv-good" {
			t.Fatal("last good value lost")
		}
		// 9 failures over ~2 minutes: logged at 10s, 73.5s and 137.5s.
		if got := r.logs.count("secret check failed"); got != 3 {
			t.Fatalf("failure logged %d times, want 3:\n%s", got, r.logs.String())
		}
		if !strings.Contains(r.logs.String(), "suppressed=") || r.metric("keyward_errors_total", "stage", "fetch") != 9 {
			t.Fatalf("errors metric %v", r.metric("keyward_errors_total", "stage", "fetch"))
		}
		if s, _ := r.child.counts(); s != 0 {
			t.Fatal("an action ran during the outage")
		}
		st.failFetch("a", nil)
		st.set("a", "sv-new")
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if r.read("a") != "sv-new" || r.logs.count("secret recovered") != 1 || r.metric("keyward_secret_up", "secret", "A") != 1 {
			t.Fatalf("no recovery: file %q, log:\n%s", r.read("a"), r.logs.String())
		}
		if s, _ := r.child.counts(); s != 1 {
			t.Fatalf("%d signals after recovery, want 1", s)
		}
	})
}

type throttled struct{}

func (throttled) Error() string             { return "throttled" }
func (throttled) RetryAfter() time.Duration { return 90 * time.Second }

func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := newStore()
		st.set("a", "sv-1")
		r := newRig(t, st, plainProvider{st}, map[string]providers.Ref{"A": ref("a", "")}, nil,
			func(o *Options) { o.Interval = 10 * time.Second })
		r.start()
		st.failFetch("a", throttled{})
		time.Sleep(10 * time.Second)
		synctest.Wait()
		n := st.count("fetch a")
		time.Sleep(90*time.Second - time.Millisecond)
		synctest.Wait()
		if st.count("fetch a") != n {
			t.Fatal("retried before Retry-After")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if st.count("fetch a") != n+1 {
			t.Fatal("not retried at Retry-After")
		}
	})
}

// TestActionPlans checks which actions one apply runs.
func TestActionPlans(t *testing.T) {
	t.Parallel()
	usr1 := &Action{Kind: ActionSignal, Signal: syscall.SIGUSR1}
	cmd := &Action{Kind: ActionCommand, Command: []string{"/bin/reload"}}
	restart := &Action{Kind: ActionRestart, Timeout: 3 * time.Second}
	none := &Action{Kind: ActionNone}
	cases := []struct {
		name                      string
		top                       *Action
		fileA, fileB              *Action
		env                       bool
		signals, restarts, ranCmd int
	}{
		{"files default to none", nil, nil, nil, false, 0, 0, 0},
		{"env defaults to restart", nil, nil, nil, true, 0, 1, 0},
		{"top-level signal applies to files", hup, nil, nil, false, 1, 0, 0},
		{"same signal twice is sent once", hup, nil, hup, false, 1, 0, 0},
		{"two different signals", hup, usr1, nil, false, 2, 0, 0},
		{"restart beats signals", hup, restart, nil, false, 0, 1, 0},
		{"top-level signal with env: no restart", hup, nil, nil, true, 1, 0, 0},
		{"commands run besides a restart", nil, cmd, cmd, true, 0, 1, 1},
		{"none overrides the top level", hup, none, none, false, 0, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				st := newStore()
				st.set("x", "sv-1")
				var env []string
				if c.env {
					env = []string{"X"}
				}
				r := newRig(t, st, watcherProvider{plainProvider{st}}, map[string]providers.Ref{"X": ref("x", "")},
					[]File{rawFile("a", "X", c.fileA), rawFile("b", "X", c.fileB)},
					func(o *Options) { o.OnChange, o.EnvSecrets, o.Interval = c.top, env, time.Hour })
				r.start()
				synctest.Wait()
				st.set("x", "sv-2")
				st.trigger("x")
				time.Sleep(time.Second)
				synctest.Wait()
				s, rs := r.child.counts()
				if s != c.signals || rs != c.restarts || r.cmds.count() != c.ranCmd {
					t.Fatalf("signals %d restarts %d commands %d, want %d %d %d", s, rs, r.cmds.count(), c.signals, c.restarts, c.ranCmd)
				}
				if rs > 0 && c.fileA == restart && r.child.timeouts[0] != 3*time.Second {
					t.Fatalf("restart timeout %v", r.child.timeouts[0])
				}
			})
		})
	}
}

func TestRestartSplay(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := newStore()
		st.set("x", "sv-1")
		r := newRig(t, st, watcherProvider{plainProvider{st}}, map[string]providers.Ref{"X": ref("x", "")}, nil,
			func(o *Options) {
				o.EnvSecrets = []string{"X"}
				o.OnChange = &Action{Kind: ActionRestart, Splay: 10 * time.Second}
				o.Rand = func() float64 { return 0.25 }
			})
		r.start()
		synctest.Wait()
		st.set("x", "sv-2")
		st.trigger("x")
		t0 := time.Now()
		time.Sleep(time.Minute)
		synctest.Wait()
		if len(r.child.restarts) != 1 {
			t.Fatalf("%d restarts", len(r.child.restarts))
		}
		// The engine asks after the debounce (40ms); the child draws the
		// splay (internal/child's TestRestartSplay).
		if got := r.child.restarts[0].Sub(t0); got != DefaultDebounce {
			t.Fatalf("restart asked after %v, want the debounce %v", got, DefaultDebounce)
		}
		if got := r.child.splays[0]; got != 10*time.Second {
			t.Fatalf("restart asked with splay %v, want on_change's 10s", got)
		}
	})
}

// TestRenderFailureKeepsFilesAndRetries: a rotated value that cannot be
// rendered (invalid UTF-8 in a JSON file) leaves the old file, counts an
// error, is retried, and renders once the value is fixed.
func TestRenderFailureKeepsFilesAndRetries(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := newStore()
		st.set("x", "sv-1")
		r := newRig(t, st, watcherProvider{plainProvider{st}}, map[string]providers.Ref{"X": ref("x", "")},
			[]File{{File: render.File{Path: "x.json", Format: render.FormatJSON, Secrets: []string{"X"}}, OnChange: hup}},
			func(o *Options) { o.Interval = time.Hour })
		r.start()
		synctest.Wait()
		before := r.read("x.json")
		st.set("x", "sv-\xff")
		st.trigger("x")
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if r.read("x.json") != before || r.metric("keyward_renders_total", "result", "error") != 1 {
			t.Fatalf("file changed or error not counted (%v)", r.metric("keyward_renders_total", "result", "error"))
		}
		time.Sleep(2 * time.Second) // the applier retries (0.5s, then 1s): still failing
		synctest.Wait()
		if got := r.metric("keyward_renders_total", "result", "error"); got < 2 {
			t.Fatalf("render not retried: %v errors", got)
		}
		st.set("x", "sv-fixed")
		st.trigger("x")
		time.Sleep(time.Second)
		synctest.Wait()
		if r.read("x.json") != "{\n  \"X\": \"sv-fixed\"\n}\n" {
			t.Fatalf("x.json = %q", r.read("x.json"))
		}
		if s, _ := r.child.counts(); s != 1 {
			t.Fatalf("%d signals, want 1 (only the successful render)", s)
		}
	})
}

// TestMetricLabelsCarryNoValues checks every label value of every series
// against the secret values used.
func TestMetricLabelsCarryNoValues(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := newStore()
		st.set("a", "sv-one")
		r := newRig(t, st, watcherProvider{plainProvider{st}}, map[string]providers.Ref{"A": ref("a", "")},
			[]File{rawFile("a", "A", hup)}, func(o *Options) { o.Interval = time.Second })
		r.start()
		synctest.Wait()
		st.set("a", "sv-two")
		st.trigger("a")
		time.Sleep(2 * time.Second)
		synctest.Wait()
		for _, v := range r.labelValues() {
			if strings.Contains(v, "sv-") || strings.HasPrefix(v, "sha256:") {
				t.Fatalf("label value %q carries a value or fingerprint", v)
			}
		}
	})
}

func TestDynamicTemplateDependsOnAll(t *testing.T) {
	t.Parallel()
	cases := map[string]bool{
		`{{ secret "A" }}`:                             false,
		`{{ secret "A" | base64 }} {{ secret "B" }}`:   false,
		`{{ "A" | secret }}`:                           false,
		`{{ "A" | print | secret }}`:                   true,
		`{{ secret (printf "%s" "A") }}`:               true,
		`{{ with $x := "A" }}{{ secret $x }}{{ end }}`: true,
	}
	for text, dynamic := range cases {
		deps, err := fileDeps(render.File{Path: "/x", Format: render.FormatTemplate, Template: text})
		if err != nil {
			t.Errorf("fileDeps(%q): %v", text, err)
		}
		if got := deps == nil; got != dynamic {
			t.Errorf("fileDeps(%q) = %v, want dynamic %v", text, deps, dynamic)
		}
	}
	if _, err := fileDeps(render.File{Path: "/x", Format: render.FormatTemplate, Template: `{{ secret "A" `}); err == nil {
		t.Errorf("fileDeps of a template that does not parse: no error")
	}
}

// TestAtomicDirPartialGroup: two files of one atomic_dir group use
// different secrets; a rotation of one re-renders only that file, and the
// other is carried over into the new ..data generation unchanged.
func TestAtomicDirPartialGroup(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := newStore()
		st.set("a", "sv-a1")
		st.set("b", "sv-b1")
		atomic := func(path, secret string) File {
			f := rawFile(path, secret, hup)
			f.AtomicDir = true
			return f
		}
		r := newRig(t, st, watcherProvider{plainProvider{st}},
			map[string]providers.Ref{"A": ref("a", ""), "B": ref("b", "")},
			[]File{atomic("pair/a", "A"), atomic("pair/b", "B")}, func(o *Options) { o.Interval = time.Hour })
		r.start()
		synctest.Wait()
		st.set("b", "sv-b2")
		st.trigger("b")
		time.Sleep(time.Second)
		synctest.Wait()
		if r.read("pair/a") != "sv-a1" || r.read("pair/b") != "sv-b2" {
			t.Fatalf("pair = %q, %q", r.read("pair/a"), r.read("pair/b"))
		}
		if s, _ := r.child.counts(); s != 1 {
			t.Fatalf("%d signals", s)
		}
	})
}

// batchProvider fetches several secrets in one call.
type batchProvider struct {
	plainProvider
	calls *int
}

func (p batchProvider) FetchBatch(ctx context.Context, refs []providers.Ref) ([]providers.Secret, []error) {
	*p.calls++
	secs, errs := make([]providers.Secret, len(refs)), make([]error, len(refs))
	for i, r := range refs {
		secs[i], errs[i] = p.s.fetch(ctx, r)
	}
	return secs, errs
}

func TestInitUsesBatchFetch(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := newStore()
		for _, p := range []string{"a", "b", "c"} {
			st.set(p, "sv-"+p)
		}
		calls := 0
		r := newRig(t, st, batchProvider{plainProvider{st}, &calls},
			map[string]providers.Ref{"A": ref("a", ""), "B": ref("b", ""), "C": ref("c", ""), "C2": ref("c", "")},
			[]File{dotenvFile("all.env", nil, "A", "B", "C", "C2")}, nil)
		r.start()
		if calls != 1 || st.count("fetch c") != 1 {
			t.Fatalf("%d batch calls, %d fetches of c; want 1 and 1", calls, st.count("fetch c"))
		}
		if got := r.read("all.env"); got != "A=sv-a\nB=sv-b\nC=sv-c\nC2=sv-c\n" {
			t.Fatalf("all.env = %q", got)
		}
	})
}

// TestNoStarvation: a watched secret that never stops changing, with
// fetches slower than its changes, does not hold back another secret's
// change for longer than about MaxDelay.
func TestNoStarvation(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := newStore()
		st.set("busy", "sv-0")
		st.set("b", "sv-b1")
		r := newRig(t, st, watcherProvider{plainProvider{st}},
			map[string]providers.Ref{"BUSY": ref("busy", ""), "B": ref("b", "")},
			[]File{rawFile("busy", "BUSY", nil), rawFile("b", "B", nil)},
			func(o *Options) { o.Interval = time.Hour; o.MaxDelay = time.Second })
		r.start()
		synctest.Wait()
		st.mu.Lock()
		st.delay = 50 * time.Millisecond
		st.mu.Unlock()
		st.set("b", "sv-b2")
		st.trigger("b")
		start := time.Now()
		for i := 0; time.Since(start) < 10*time.Second; i++ {
			st.set("busy", fmt.Sprintf("sv-%d", i))
			st.trigger("busy")
			time.Sleep(30 * time.Millisecond)
			synctest.Wait()
			if r.read("b") == "sv-b2" {
				break
			}
		}
		if got := time.Since(start); r.read("b") != "sv-b2" || got > 2500*time.Millisecond {
			t.Fatalf("b rendered after %v (content %q), want within about 2×MaxDelay", got, r.read("b"))
		}
	})
}

// TestTemplateFileReadOnce: the engine reads a template file once, for the
// names the file uses and for every render of it: a template edited while
// keyward runs cannot give a render whose text is the new version while
// the secrets that trigger it were learnt from the old one.
func TestTemplateFileReadOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := newStore()
		st.set("a", "sv-a1")
		st.set("b", "sv-b1")
		tmpl := filepath.Join(t.TempDir(), "out.tmpl")
		if err := os.WriteFile(tmpl, []byte(`a={{ secret "A" }}`), 0o600); err != nil {
			t.Fatal(err)
		}
		r := newRig(t, st, plainProvider{st},
			map[string]providers.Ref{"A": ref("a", ""), "B": ref("b", "")},
			[]File{{File: render.File{Path: "out", Format: render.FormatTemplate, TemplateFile: tmpl}}},
			func(o *Options) { o.Interval = 10 * time.Second })
		r.start()
		if got := r.read("out"); got != "a=sv-a1" {
			t.Fatalf("first render: wrong content (%d bytes)", len(got))
		}
		// The template now uses B instead; A rotates.
		if err := os.WriteFile(tmpl, []byte(`b={{ secret "B" }}`), 0o600); err != nil {
			t.Fatal(err)
		}
		st.set("a", "sv-a2")
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := r.read("out"); got != "a=sv-a2" {
			t.Fatalf("render after A rotated: %d bytes, from the edited template: %v; want the template text the engine started with, with A's new value", len(got), strings.HasPrefix(got, "b="))
		}
	})
}
