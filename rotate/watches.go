package rotate

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/backoff"
	"github.com/keyward/keyward/providers"
)

// watches runs the native watch of every provider that has one and tells
// the engine's loop what they report: which secrets may have changed, and
// which watches run. Its lock guards only those reports, which the loop
// takes (take) when woken.
type watches struct {
	log      *slog.Logger
	rand     func() float64
	logEvery time.Duration
	metrics  *Metrics

	mu    sync.Mutex      // guards dirty and up
	dirty map[string]bool // source keys a watch reported
	up    map[string]bool // schemes whose Watch is running
	wake  chan struct{}   // size 1: a watch reported a change or went up or down
}

func newWatches(log *slog.Logger, rand func() float64, logEvery time.Duration, m *Metrics) *watches {
	return &watches{log: log, rand: rand, logEvery: logEvery, metrics: m,
		dirty: map[string]bool{}, up: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// start runs, in wg, the native watch of every provider of sources that
// has one, over its sources' references, until ctx is done.
func (w *watches) start(ctx context.Context, wg *sync.WaitGroup, sources []*source) {
	byScheme := map[string][]providers.Ref{}
	watchers := map[string]providers.Watcher{}
	for _, s := range sources {
		if pw, ok := s.prov.(providers.Watcher); ok {
			watchers[s.ref.Scheme] = pw
			byScheme[s.ref.Scheme] = append(byScheme[s.ref.Scheme], s.ref)
		}
	}
	for scheme, pw := range watchers {
		refs := byScheme[scheme]
		wg.Go(func() { w.run(ctx, scheme, pw, refs) })
	}
}

// take returns the source keys reported since the last take and which
// schemes' watches run now.
func (w *watches) take() (dirty, up map[string]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	dirty = w.dirty
	w.dirty = map[string]bool{}
	return dirty, maps.Clone(w.up)
}

// notify is the Watcher callback: it marks the ref's source for a check
// after the debounce.
func (w *watches) notify(r providers.Ref) {
	w.mu.Lock()
	w.dirty[r.Key()] = true
	w.mu.Unlock()
	w.signal()
}

// setUp records whether scheme's Watch is running and wakes the loop to
// adjust the polling of its secrets.
func (w *watches) setUp(scheme string, up bool) {
	w.mu.Lock()
	if up {
		w.up[scheme] = true
	} else {
		delete(w.up, scheme)
	}
	w.mu.Unlock()
	w.signal()
}

func (w *watches) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run runs one provider's Watch, restarting it with backoff when it fails.
// While Watch runs, the provider's secrets are polled only at the safety
// interval; from its return until it is called again, and while a
// providers.HealthWatcher says it is not healthy, at the normal interval
// (so a failing store shows in keyward_secret_up as a polled one does). The
// file and Kubernetes watchers, once restarted, report what changed while
// they were down (the file watcher reports every ref once it is set up);
// the polling covers the gap meanwhile.
func (w *watches) run(ctx context.Context, scheme string, pw providers.Watcher, refs []providers.Ref) {
	bo := backoff.Backoff{Base: time.Second, Max: time.Minute, Rand: w.rand}
	every := backoff.Every{Interval: w.logEvery}
	for {
		start := time.Now()
		w.setUp(scheme, true)
		var err error
		if hw, ok := pw.(providers.HealthWatcher); ok {
			// A watch that reconnects by itself says when it does not
			// cover its secrets: they are polled meanwhile.
			err = hw.WatchHealth(ctx, refs, w.notify, func(up bool) { w.setUp(scheme, up) })
		} else {
			err = pw.Watch(ctx, refs, w.notify)
		}
		w.setUp(scheme, false)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("watch ended")
		}
		if time.Since(start) > time.Minute {
			bo.Reset()
		}
		w.metrics.watchError()
		d := bo.Next()
		if ok, n := every.Allow(); ok {
			w.log.Warn("watch failed; polling at the normal interval until the watch is back", "provider", scheme, "err", err, "retry_in", d.Round(time.Millisecond), "suppressed", n)
		}
		if backoff.Wait(ctx, d) != nil {
			return
		}
	}
}
