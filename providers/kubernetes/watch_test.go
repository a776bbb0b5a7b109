package kubernetes

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/keyward/keyward/providers"
)

// The watch tests run in a synctest bubble: settle advances the bubble's
// fake clock past every backoff and returns once every goroutine of the
// provider is blocked on the fake watch channels, so "nothing more was
// reported" is an exact assertion, not a timing guess.

func ref(t testing.TB, s string) providers.Ref {
	t.Helper()
	r, err := providers.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// settle lets the bubble's fake clock run a minute ahead, so that every
// backoff timer fires, and returns once every goroutine of the bubble is
// blocked again.
func settle() {
	time.Sleep(time.Minute)
	synctest.Wait()
}

// recorder collects the references Watch reports.
type recorder struct {
	mu  sync.Mutex
	got []string
	// concurrent is set when changed was entered while it was running.
	running, concurrent bool
}

func (r *recorder) changed(ref providers.Ref) {
	r.mu.Lock()
	if r.running {
		r.concurrent = true
	}
	r.running = true
	r.got = append(r.got, ref.Path)
	r.running = false
	r.mu.Unlock()
}

// take returns what was reported since the last take, sorted, each
// reference once: Watch coalesces a burst of changes to one Secret only
// while changed runs, so two updates may be reported once or twice
// depending on when the stream delivers the second.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = nil
	slices.Sort(out)
	return slices.Compact(out)
}

// watching runs p.Watch in the bubble; stop cancels it and returns its error.
func watching(t *testing.T, p *Provider, refs []providers.Ref, changed func(providers.Ref)) (stop func() error) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Watch(ctx, refs, changed) }()
	settle()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func data(v string) map[string][]byte { return map[string][]byte{"password": []byte(v)} }

func TestWatchReportsChanges(t *testing.T) {
	t.Parallel()
	type step struct {
		name string
		do   func(c *fakeCluster)
		want []string
		// lists is how many more List calls the step may cause.
		lists int
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{name: "update, delete, create", steps: []step{
			{"update a", func(c *fakeCluster) { c.put("ns", "a", data("2")) }, []string{"ns/a"}, 0},
			{"update a twice", func(c *fakeCluster) { c.put("ns", "a", data("3")); c.put("ns", "a", data("4")) }, []string{"ns/a"}, 0},
			{"delete b", func(c *fakeCluster) { c.del("ns", "b") }, []string{"ns/b"}, 0},
			{"create b again", func(c *fakeCluster) { c.put("ns", "b", data("5")) }, []string{"ns/b"}, 0},
			{"create the absent c", func(c *fakeCluster) { c.put("ns", "c", data("6")) }, []string{"ns/c"}, 0},
		}},
		{name: "what is not referenced is not reported", steps: []step{
			{"unreferenced secret", func(c *fakeCluster) { c.put("ns", "zzz", data("1")) }, nil, 0},
			{"same name in another namespace", func(c *fakeCluster) { c.put("other", "a", data("1")) }, nil, 0},
			{"bookmark", func(c *fakeCluster) { c.bookmark() }, nil, 0},
		}},
		{name: "resume after the server closes the watch", steps: []step{
			{"closed, then a change", func(c *fakeCluster) { c.closeWatches(); c.put("ns", "a", data("2")) }, []string{"ns/a"}, 0},
			{"closed, no change", func(c *fakeCluster) { c.closeWatches() }, nil, 0},
		}},
		{name: "410 Gone after a gap lists again", steps: []step{
			{"change and compaction while closed", func(c *fakeCluster) {
				c.closeWatches()
				c.put("ns", "a", data("2"))
				c.put("ns", "zzz", data("2"))
				c.compact(false)
			}, []string{"ns/a"}, 3},
			{"delete and compaction while closed", func(c *fakeCluster) {
				c.closeWatches()
				c.del("ns", "b")
				c.compact(false)
			}, []string{"ns/b"}, 3},
			{"delete and re-create while closed", func(c *fakeCluster) {
				c.closeWatches()
				c.del("ns", "a")
				c.put("ns", "a", data("2"))
				c.compact(false)
			}, []string{"ns/a"}, 3},
		}},
		{name: "410 Gone error event lists again without reporting", steps: []step{
			{"expired", func(c *fakeCluster) { c.compact(true) }, nil, 3},
			{"then a change", func(c *fakeCluster) { c.put("ns", "b", data("9")) }, []string{"ns/b"}, 0},
		}},
	}
	for _, scope := range []string{WatchSecret, WatchNamespace} {
		for _, tc := range cases {
			t.Run(scope+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				synctest.Test(t, func(t *testing.T) {
					c := newFakeCluster()
					c.put("ns", "a", data("1"))
					c.put("ns", "b", data("1"))
					c.put("ns", "zzz", data("1"))
					p := c.provider(t, Options{WatchScope: scope})
					rec := &recorder{}
					stop := watching(t, p, []providers.Ref{ref(t, "k8s://ns/a"), ref(t, "k8s://ns/b"), ref(t, "k8s://ns/c")}, rec.changed)
					if got := rec.take(); len(got) != 0 {
						t.Fatalf("reported %v on start, before any change", got)
					}
					streams := 3
					if scope == WatchNamespace {
						streams = 1
					}
					for _, st := range tc.steps {
						_, lists0, _ := c.counts()
						st.do(c)
						settle()
						if got := rec.take(); !slices.Equal(got, st.want) {
							t.Errorf("%s: reported %v, want %v", st.name, got, st.want)
						}
						_, lists, _ := c.counts()
						if max := lists0 + min(st.lists, streams); lists > max {
							t.Errorf("%s: %d List calls, want at most %d", st.name, lists-lists0, max-lists0)
						}
						if n := c.openWatches(); n != streams {
							t.Errorf("%s: %d watches open, want %d", st.name, n, streams)
						}
					}
					if err := stop(); !errors.Is(err, context.Canceled) {
						t.Errorf("Watch returned %v after cancel, want context.Canceled", err)
					}
					if n := c.openWatches(); n != 0 {
						t.Errorf("%d watches still open after Watch returned", n)
					}
					if rec.concurrent {
						t.Error("changed was called concurrently with itself")
					}
				})
			})
		}
	}
}

func TestWatchStreamsAndSelectors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		scope     string
		refs      []string
		selectors []string // per watch call, sorted
	}{
		{WatchSecret, []string{"k8s://ns/a#x", "k8s://ns/a#y", "k8s://ns/b", "k8s://other/a"},
			[]string{"metadata.name=a", "metadata.name=a", "metadata.name=b"}},
		{WatchNamespace, []string{"k8s://ns/a#x", "k8s://ns/b", "k8s://other/a"},
			[]string{"", ""}},
	}
	for _, tc := range cases {
		t.Run(tc.scope, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				c := newFakeCluster()
				var refs []providers.Ref
				for _, s := range tc.refs {
					refs = append(refs, ref(t, s))
				}
				watching(t, c.provider(t, Options{WatchScope: tc.scope}), refs, func(providers.Ref) {})
				c.mu.Lock()
				var sels []string
				for _, o := range c.watchCalls {
					sels = append(sels, o.FieldSelector)
					if !o.AllowWatchBookmarks {
						t.Errorf("watch without bookmarks: %+v", o)
					}
				}
				lists := c.lists
				c.mu.Unlock()
				slices.Sort(sels)
				if !slices.Equal(sels, tc.selectors) {
					t.Errorf("watch field selectors %q, want %q", sels, tc.selectors)
				}
				if lists != len(tc.selectors) {
					t.Errorf("%d lists, want one per stream (%d)", lists, len(tc.selectors))
				}
			})
		})
	}
}

// TestWatchResumesFromLastResourceVersion: after the server closes a
// watch, the next one starts from the last resourceVersion seen (an
// event's or a bookmark's), without listing again.
func TestWatchResumesFromLastResourceVersion(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := newFakeCluster()
		c.put("ns", "a", data("1"))
		watching(t, c.provider(t, Options{}), []providers.Ref{ref(t, "k8s://ns/a")}, func(providers.Ref) {})
		rv := c.put("ns", "a", data("2"))
		settle()
		c.closeWatches()
		settle()
		if got := c.lastWatch().ResourceVersion; got != rv {
			t.Errorf("resumed from %q, want the last event's %q", got, rv)
		}
		c.put("ns", "unrelated", data("1"))
		c.bookmark()
		settle()
		c.mu.Lock()
		bm := c.rv
		c.mu.Unlock()
		c.closeWatches()
		settle()
		if got, want := c.lastWatch().ResourceVersion, itoa(bm); got != want {
			t.Errorf("resumed from %q, want the bookmark's %q", got, want)
		}
		if _, lists, _ := c.counts(); lists != 1 {
			t.Errorf("%d List calls, want 1: resuming must not list", lists)
		}
	})
}

// TestWatchComparesWithFetch: a Secret that changed between the caller's
// Fetch and the start of the watch is reported at once; one that did not
// change, or was never fetched, is not.
func TestWatchComparesWithFetch(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := newFakeCluster()
		c.put("ns", "changed", data("1"))
		c.put("ns", "same", data("1"))
		c.put("ns", "unfetched", data("1"))
		c.put("ns", "deleted", data("1"))
		p := c.provider(t, Options{})
		for _, n := range []string{"changed", "same", "deleted", "appeared"} {
			_, _ = p.Fetch(t.Context(), ref(t, "k8s://ns/"+n))
		}
		c.put("ns", "changed", data("2"))
		c.del("ns", "deleted")
		c.put("ns", "appeared", data("1"))
		rec := &recorder{}
		var refs []providers.Ref
		for _, n := range []string{"changed", "same", "unfetched", "deleted", "appeared"} {
			refs = append(refs, ref(t, "k8s://ns/"+n))
		}
		watching(t, p, refs, rec.changed)
		if got, want := rec.take(), []string{"ns/appeared", "ns/changed", "ns/deleted"}; !slices.Equal(got, want) {
			t.Errorf("reported %v on start, want %v", got, want)
		}
	})
}

func TestWatchRefusedForGood(t *testing.T) {
	t.Parallel()
	forbidden := func(verb string) error {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "a",
			errors.New(`User "restricted" cannot `+verb+` resource "secrets" in API group "" in the namespace "ns"`))
	}
	cases := []struct {
		name  string
		setup func(c *fakeCluster)
		want  error
		words []string
	}{
		{"list forbidden", func(c *fakeCluster) {
			c.failList = func(string, metav1.ListOptions) error { return forbidden("list") }
		}, providers.ErrPermissionDenied, []string{`"list"`, `"secrets"`, `namespace "ns"`, "restricted"}},
		{"watch forbidden", func(c *fakeCluster) {
			c.failWatch = func(string, metav1.ListOptions) error { return forbidden("watch") }
		}, providers.ErrPermissionDenied, []string{`"watch"`, `"secrets"`, `namespace "ns"`}},
		{"unauthorized", func(c *fakeCluster) {
			c.failList = func(string, metav1.ListOptions) error { return apierrors.NewUnauthorized("Unauthorized") }
		}, providers.ErrPermissionDenied, []string{"list secret ns/", "401"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				c := newFakeCluster()
				c.put("ns", "a", data("s3cr3t-value"))
				tc.setup(c)
				p := c.provider(t, Options{})
				err := p.Watch(t.Context(), []providers.Ref{ref(t, "k8s://ns/a"), ref(t, "k8s://ns/b")}, func(providers.Ref) {})
				if !errors.Is(err, tc.want) {
					t.Fatalf("Watch: %v, want an error wrapping %v", err, tc.want)
				}
				for _, w := range tc.words {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not name %s", err, w)
					}
				}
				if c.openWatches() != 0 {
					t.Error("a watch is still open after Watch returned")
				}
			})
		})
	}
}

// TestWatchRetriesTransientFailures: 5xx, throttling and network errors,
// and any failure once the watch has been established (an API server
// coming back up may briefly deny), are retried with backoff.
func TestWatchRetriesTransientFailures(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := newFakeCluster()
		c.put("ns", "a", data("1"))
		failures := 3
		c.failList = func(string, metav1.ListOptions) error {
			if failures > 0 {
				failures--
				return apierrors.NewServiceUnavailable("starting")
			}
			return nil
		}
		rec := &recorder{}
		watching(t, c.provider(t, Options{}), []providers.Ref{ref(t, "k8s://ns/a")}, rec.changed)
		if c.openWatches() != 1 {
			t.Fatal("no watch after the list recovered")
		}
		denied := 2
		c.failWatch = func(string, metav1.ListOptions) error {
			if denied > 0 {
				denied--
				return apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "a", errors.New("not yet"))
			}
			return nil
		}
		c.closeWatches()
		c.put("ns", "a", data("2"))
		settle()
		if got := rec.take(); !slices.Equal(got, []string{"ns/a"}) {
			t.Errorf("after the retries: reported %v, want [ns/a]", got)
		}
		if denied != 0 || c.openWatches() != 1 {
			t.Errorf("watch not re-established after transient denials (denials left %d, open %d)", denied, c.openWatches())
		}
	})
}

// TestWatchHealthReports: WatchHealth says the watch is unhealthy from
// the first failed list or watch of a stream until every stream has a
// watch open again, once each way; a watch that the API server closes and
// that reopens at once is no failure.
func TestWatchHealthReports(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := newFakeCluster()
		c.put("ns", "a", data("1"))
		c.put("ns", "b", data("1"))
		var mu sync.Mutex
		var health []bool
		p := c.provider(t, Options{})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- p.WatchHealth(ctx, []providers.Ref{ref(t, "k8s://ns/a"), ref(t, "k8s://ns/b")}, func(providers.Ref) {}, func(up bool) {
				mu.Lock()
				health = append(health, up)
				mu.Unlock()
			})
		}()
		reports := func() []bool {
			mu.Lock()
			defer mu.Unlock()
			out := health
			health = nil
			return out
		}
		settle()
		if got := reports(); len(got) != 0 {
			t.Fatalf("health reports %v with both watches open, want none", got)
		}
		c.closeWatches() // the API server's timeout: reopened at once
		settle()
		if got := reports(); len(got) != 0 || c.openWatches() != 2 {
			t.Fatalf("health reports %v after watches closed and reopened (%d open), want none", got, c.openWatches())
		}

		// The API server goes away: every list and watch fails for a while.
		var down atomic.Bool
		down.Store(true)
		refuse := func(string, metav1.ListOptions) error {
			if down.Load() {
				return apierrors.NewServiceUnavailable("down")
			}
			return nil
		}
		c.failList, c.failWatch = refuse, refuse
		c.closeWatches()
		settle()
		if got := reports(); !slices.Equal(got, []bool{false}) {
			t.Fatalf("health reports %v while the API server is down, want [false]", got)
		}
		down.Store(false)
		settle()
		if got := reports(); !slices.Equal(got, []bool{true}) || c.openWatches() != 2 {
			t.Fatalf("health reports %v once it is back (%d watches open), want [true]", got, c.openWatches())
		}
		cancel()
		if err := <-done; err != context.Canceled {
			t.Fatalf("WatchHealth = %v, want it cancelled", err)
		}
	})
}

// TestWatchStallIsBroken: a watch whose connection stays open while
// nothing arrives (a proxy that swallows data) is broken once it brought
// no event, bookmark or end for watchIdle: WatchHealth reports it
// unhealthy (so its secrets are polled) until a watch is open again, the
// requests that hang meanwhile are bounded, and the change made during the
// silence is reported once the server answers. A quiet server that
// brings nothing for far longer, but ends each watch at the timeout the
// watch asked for, is never taken for broken.
func TestWatchStallIsBroken(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := newFakeCluster()
		c.put("ns", "a", data("1"))
		var mu sync.Mutex
		var health []bool
		reports := func() []bool {
			mu.Lock()
			defer mu.Unlock()
			out := health
			health = nil
			return out
		}
		p := c.provider(t, Options{})
		rec := &recorder{}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- p.WatchHealth(ctx, []providers.Ref{ref(t, "k8s://ns/a")}, rec.changed, func(up bool) {
				mu.Lock()
				health = append(health, up)
				mu.Unlock()
			})
		}()
		settle()

		// Quiet but alive: no event and no bookmark for 10 minutes; the
		// server ends each watch at its timeout and it is opened again.
		_, _, watches0 := c.counts()
		for range 10 {
			settle()
		}
		_, _, watches := c.counts()
		if got := reports(); len(got) != 0 || c.openWatches() != 1 {
			t.Fatalf("a quiet server: health reports %v (%d watches open), want none", got, c.openWatches())
		}
		if n := watches - watches0; n < 10/3 || n > 10/2 {
			t.Errorf("a quiet server: %d watches in 10 minutes, want one per 2-2.5 minutes", n)
		}
		if to := c.lastWatch().TimeoutSeconds; to == nil || *to < int64(watchTimeout/time.Second) || *to >= int64((watchTimeout+watchTimeoutJitter)/time.Second) {
			t.Errorf("the watch asked for timeoutSeconds %v, want [%v, %v)", to, watchTimeout, watchTimeout+watchTimeoutJitter)
		}
		if !c.lastWatch().AllowWatchBookmarks {
			t.Error("the watch does not ask for bookmarks")
		}

		// Silent: the open watch brings nothing more, not even its end,
		// and every request hangs. A change is made meanwhile.
		c.silence(true)
		c.put("ns", "a", data("2"))
		time.Sleep(watchIdle + time.Second)
		synctest.Wait()
		if got := reports(); !slices.Equal(got, []bool{false}) {
			t.Fatalf("health reports %v %v into the silence, want [false]", got, watchIdle+time.Second)
		}
		for range 5 {
			settle()
		}
		if got := reports(); len(got) != 0 {
			t.Fatalf("health reports %v while still silent, want none more", got)
		}
		if got := rec.take(); len(got) != 0 {
			t.Fatalf("reported %v while silent", got)
		}
		_, _, w1 := c.counts()
		settle()
		if _, _, w2 := c.counts(); w2 <= w1 {
			t.Error("no new watch request in a minute of silence: a request that hangs is not bounded")
		}

		// The server answers again.
		c.silence(false)
		settle()
		if got := reports(); !slices.Equal(got, []bool{true}) || c.openWatches() != 1 {
			t.Fatalf("health reports %v once the server answers (%d watches open), want [true] and 1", got, c.openWatches())
		}
		if got := rec.take(); !slices.Equal(got, []string{"ns/a"}) {
			t.Fatalf("reported %v once the server answers, want the change made during the silence", got)
		}
		cancel()
		if err := <-done; err != context.Canceled {
			t.Fatalf("WatchHealth = %v, want it cancelled", err)
		}
	})
}

// TestWatchCoalesces: while changed runs, further updates of the same
// Secret are reported once, not once each, and streams are not blocked.
func TestWatchCoalesces(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := newFakeCluster()
		c.put("ns", "a", data("1"))
		release := make(chan struct{})
		var mu sync.Mutex
		calls := 0
		changed := func(providers.Ref) {
			mu.Lock()
			calls++
			first := calls == 1
			mu.Unlock()
			if first {
				<-release
			}
		}
		watching(t, c.provider(t, Options{}), []providers.Ref{ref(t, "k8s://ns/a")}, changed)
		c.put("ns", "a", data("2"))
		settle() // changed is now blocked in its first call
		for i := range 5 {
			c.put("ns", "a", data(itoa(10+i)))
		}
		settle()
		close(release)
		settle()
		mu.Lock()
		defer mu.Unlock()
		if calls != 2 {
			t.Errorf("changed called %d times, want 2 (the first update, then the coalesced burst)", calls)
		}
	})
}

func TestWatchNothingToWatch(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p, err := New(Options{}, func(string) string { return "" }, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		p.connect = func() (secretsAPI, error) {
			t.Error("client built with nothing to watch")
			return nil, errors.New("no")
		}
		stop := watching(t, p, nil, func(providers.Ref) {})
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("Watch: %v, want context.Canceled", err)
		}
	})
}

func TestWatchInvalidRef(t *testing.T) {
	t.Parallel()
	c := newFakeCluster()
	err := c.provider(t, Options{}).Watch(t.Context(), []providers.Ref{{Scheme: "k8s", Path: "no-namespace"}}, func(providers.Ref) {})
	if !errors.Is(err, providers.ErrInvalidReference) {
		t.Errorf("Watch: %v, want ErrInvalidReference", err)
	}
}
