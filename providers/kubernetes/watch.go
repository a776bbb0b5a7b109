package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/keyward/keyward/internal/backoff"
	"github.com/keyward/keyward/providers"
)

// Backoff of a watch stream that keeps failing.
const (
	watchBackoffBase = 100 * time.Millisecond
	watchBackoffCap  = 5 * time.Second
	// A watch that lasted this long ended normally (the API server's
	// timeout); it is resumed at once rather than after a backoff.
	watchHealthy = 30 * time.Second
)

// A watch that hangs (its connection stays open but nothing arrives: a
// proxy or load balancer that swallows data, a half-dead path) is seen
// only by what the watch itself promises. client-go's HTTP/2 health check
// (a PING after 30s without a frame, the connection closed 15s later
// without an answer) catches a dead connection only when it speaks HTTP/2
// end to end with the API server: not over HTTP/1.1 (plain http://, a
// proxy without HTTP/2, DISABLE_HTTP2), nor behind an HTTP/2 proxy that
// answers PINGs itself. Bookmarks come about once a minute, but only when
// the API server's watch cache serves the watch. So each watch asks the
// API server to end it after watchTimeout plus up to watchTimeoutJitter
// (timeoutSeconds, which the API server honours whatever serves the watch),
// and a watch that brought nothing (no event, no bookmark, no end) for
// watchIdle, longer than that, is broken: it is stopped, counted as a
// failed attempt (the watch reports itself unhealthy, so its secrets are
// polled at the normal interval) and opened again. A list or a watch
// request not answered within requestTimeout fails the same way.
const (
	watchTimeout       = 2 * time.Minute
	watchTimeoutJitter = 30 * time.Second
	watchIdle          = 3 * time.Minute
	requestTimeout     = 30 * time.Second
)

// watchBounds are the bounds above, for one provider (tests shorten them).
type watchBounds struct {
	timeout, jitter, idle, request time.Duration
}

var defaultWatchBounds = watchBounds{timeout: watchTimeout, jitter: watchTimeoutJitter, idle: watchIdle, request: requestTimeout}

// errNoAnswer is the cause of a list or watch request's context that
// ended for want of an answer.
var errNoAnswer = errors.New("no answer from the API server")

// observed is what a stream knows of one Secret: whether it exists and,
// if so, its resourceVersion.
type observed struct {
	present bool
	rv      string
}

// stream is one list+watch: a namespace and a field selector, and the
// names of the referenced Secrets it covers.
type stream struct {
	ns       string
	name     string // the one Secret of a WatchSecret stream; "" for WatchNamespace
	selector string // field selector; "" for the whole namespace
	names    map[string]bool
}

// Watch implements providers.Watcher. It watches the Secrets refs name
// (grouping the references to one Secret) and calls changed, never
// concurrently, with each reference whose Secret was modified, deleted or
// created, until ctx is done; then it stops every watch and returns
// ctx.Err().
//
// With the default WatchSecret scope it runs one list+watch per Secret,
// restricted with the field selector metadata.name=NAME, so RBAC can limit
// get, list and watch with resourceNames; WatchNamespace runs one per
// namespace. Each stream lists first (a Secret whose resourceVersion
// differs from what Fetch last returned is reported, closing the gap
// between the caller's Fetch and the watch), then watches from the list's
// resourceVersion with bookmarks. A watch that ends (API server timeout or
// restart, network failure) resumes from the last resourceVersion seen, and
// so does one that brought nothing for watchIdle (a hung connection: see
// watchIdle); when the API server answers 410 Gone the stream lists again
// and reports only the Secrets whose resourceVersion or existence differs
// from what it knew, so no change is lost and unchanged Secrets are not
// reported. Changes coalesce: a burst of updates to one Secret while
// changed runs is reported once more, not once per update.
//
// Watch returns an error, after stopping the other streams, when the
// first list or watch of a stream is refused for good (RBAC denial wraps
// providers.ErrPermissionDenied and names verb, resource and namespace;
// rejected credentials likewise) or a reference is malformed. Later
// failures are retried with backoff and logged, not returned.
func (p *Provider) Watch(ctx context.Context, refs []providers.Ref, changed func(providers.Ref)) error {
	return p.WatchHealth(ctx, refs, changed, nil)
}

var _ providers.HealthWatcher = (*Provider)(nil)

// WatchHealth implements providers.HealthWatcher: it is Watch, and it calls
// healthy(false) when a list or watch of a stream fails or a watch stalls
// (the stream retries it with backoff) and healthy(true) once every stream
// has a watch open again.
func (p *Provider) WatchHealth(ctx context.Context, refs []providers.Ref, changed func(providers.Ref), healthy func(bool)) error {
	targets := map[string][]providers.Ref{} // ns/name -> refs
	seen := map[string]bool{}
	var streams []*stream
	byNS := map[string]*stream{}
	for _, r := range refs {
		ns, name, err := SplitRef(r)
		if err != nil {
			return fmt.Errorf("%s: %w", r.String(), err)
		}
		if seen[r.Key()] {
			continue
		}
		seen[r.Key()] = true
		key := ns + "/" + name
		if _, dup := targets[key]; !dup {
			if p.opts.WatchScope == WatchNamespace {
				s := byNS[ns]
				if s == nil {
					s = &stream{ns: ns, names: map[string]bool{}}
					byNS[ns] = s
					streams = append(streams, s)
				}
				s.names[name] = true
			} else {
				streams = append(streams, &stream{
					ns: ns, name: name,
					selector: fields.OneTermEqualSelector("metadata.name", name).String(),
					names:    map[string]bool{name: true},
				})
			}
		}
		targets[key] = append(targets[key], r.Whole())
	}
	if len(streams) == 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	api, err := p.client()
	if err != nil {
		return err
	}

	n := &notifier{dirty: map[string]bool{}, failing: map[*stream]bool{}, wake: make(chan struct{}, 1)}
	reported := true // what healthy was last told: a watch starts healthy
	sctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, len(streams))
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Go(func() {
			if err := p.runStream(sctx, api, s, n); err != nil && sctx.Err() == nil {
				errc <- err
			}
		})
	}
	stop := func() {
		cancel()
		wg.Wait()
	}
	p.logger.Debug("kubernetes watch started", "secrets", len(targets), "streams", len(streams), "scope", p.scope())
	for {
		select {
		case <-ctx.Done():
			stop()
			return ctx.Err()
		case err := <-errc:
			stop()
			return err
		case <-n.wake:
			keys, ok := n.take()
			for _, key := range keys {
				for _, r := range targets[key] {
					changed(r)
				}
			}
			if ok != reported && healthy != nil {
				healthy(ok)
			}
			reported = ok
		}
	}
}

func (p *Provider) scope() string {
	if p.opts.WatchScope == "" {
		return WatchSecret
	}
	return p.opts.WatchScope
}

// notifier collects the Secrets (ns/name) reported by the streams, and
// which streams are failing, until Watch's loop takes them: a size-1 wake
// channel and sets, so streams never block on a slow changed callback and
// bursts coalesce.
type notifier struct {
	mu      sync.Mutex
	dirty   map[string]bool
	failing map[*stream]bool
	wake    chan struct{}
}

func (n *notifier) mark(key string) {
	n.mu.Lock()
	n.dirty[key] = true
	n.mu.Unlock()
	n.signal()
}

// fail records whether stream s is failing (retrying a list or watch).
func (n *notifier) fail(s *stream, failing bool) {
	n.mu.Lock()
	if failing {
		n.failing[s] = true
	} else {
		delete(n.failing, s)
	}
	n.mu.Unlock()
	n.signal()
}

func (n *notifier) signal() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// take returns the Secrets reported since the last take, sorted, and
// whether every stream works.
func (n *notifier) take() (keys []string, healthy bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	keys = make([]string, 0, len(n.dirty))
	for k := range n.dirty {
		keys = append(keys, k)
	}
	clear(n.dirty)
	sort.Strings(keys)
	return keys, len(n.failing) == 0
}

// streamState is what one stream goroutine knows; it is not shared.
type streamState struct {
	p     *Provider
	s     *stream
	n     *notifier
	known map[string]observed
}

// observe records what the API server says of a Secret of the stream and
// reports it when it differs from what was known. The first sighting is
// compared with what Fetch last returned, if anything.
func (st *streamState) observe(name string, o observed) {
	if !st.s.names[name] {
		return
	}
	key := st.s.ns + "/" + name
	prev, ok := st.known[name]
	if !ok {
		prev, ok = st.p.lastFetched(key)
	}
	st.known[name] = o
	if ok && prev != o {
		st.n.mark(key)
	}
}

// reconcile applies a full listing: every Secret of the stream is either
// in it (present, with its resourceVersion) or gone.
func (st *streamState) reconcile(list *corev1.SecretList) {
	listed := map[string]bool{}
	for i := range list.Items {
		it := &list.Items[i]
		listed[it.Name] = true
		st.observe(it.Name, observed{present: true, rv: it.ResourceVersion})
	}
	names := make([]string, 0, len(st.s.names))
	for name := range st.s.names {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !listed[name] {
			st.observe(name, observed{})
		}
	}
}

// runStream lists and watches one stream until ctx is done (it returns
// nil then) or its first list or watch is refused for good.
func (p *Provider) runStream(ctx context.Context, api secretsAPI, s *stream, n *notifier) error {
	st := &streamState{p: p, s: s, n: n, known: map[string]observed{}}
	b := newBackoff(watchBackoffBase, watchBackoffCap)
	log := p.logger.With("namespace", s.ns)
	if s.name != "" {
		log = log.With("secret", s.name)
	}
	var (
		established bool // a watch of this stream has been opened once
		failing     bool // the last attempt failed
		needList    = true
		rv          string
	)
	what := s.ns + "/" + s.name
	if s.name == "" {
		what = s.ns + "/*"
	}
	// att records the failures of verb in a row, so that the log counts
	// the attempts; nil while the stream works.
	var (
		att     *providers.Attempts
		attVerb string
	)
	// retry handles a failed call: it returns the error that ends the
	// stream, or nil after backing off. The failure is recorded in the
	// provider's Retries: logged at most once a minute for all streams
	// together, counted by the agent.
	retry := func(verb string, err error) error {
		if ctx.Err() != nil {
			return nil
		}
		if !established && permanent(err) {
			return apiError(ctx, verb, s.ns, s.name, err)
		}
		failing = true
		n.fail(s, true)
		d := b.NextAfter(retryAfter(err))
		if att == nil || attVerb != verb {
			att, attVerb = p.retries.Call(verb, what), verb
		}
		att.Failed(retryCause(err), d)
		_ = p.sleep(ctx, d)
		return nil
	}
	for ctx.Err() == nil {
		if needList {
			list, err := p.list(ctx, api, s)
			if err != nil {
				if e := retry("list", err); e != nil {
					return e
				}
				continue
			}
			st.reconcile(list)
			rv = list.ResourceVersion
			needList = false
		}
		w, stopWatch, err := p.openWatch(ctx, api, s, rv)
		if err != nil {
			if expired(err) {
				log.Debug("kubernetes watch expired; listing again", "resourceVersion", rv)
				needList = true
				_ = p.sleep(ctx, b.Next())
				continue
			}
			if e := retry("watch", err); e != nil {
				return e
			}
			continue
		}
		if failing {
			log.Info("kubernetes watch resumed")
			failing, att = false, nil
			n.fail(s, false)
		}
		established = true
		start := time.Now()
		var end error
		rv, end = st.consume(ctx, w, rv, b)
		stopWatch()
		switch {
		case ctx.Err() != nil:
		case expired(end):
			log.Debug("kubernetes watch expired; listing again", "resourceVersion", rv)
			needList = true
		case end != nil:
			_ = retry("watch", end)
		case broken(w) != nil:
			_ = retry("watch", broken(w))
		case time.Since(start) < watchHealthy:
			// Closed early without an error: back off so that a
			// server closing watches at once is not hammered.
			_ = p.sleep(ctx, b.Next())
		}
	}
	return nil
}

// list lists the Secrets of stream s, failing with errNoAnswer when the
// API server does not answer within requestTimeout.
func (p *Provider) list(ctx context.Context, api secretsAPI, s *stream) (*corev1.SecretList, error) {
	lctx, cancel := context.WithTimeoutCause(ctx, p.bounds.request, errNoAnswer)
	defer cancel()
	list, err := api.List(lctx, s.ns, metav1.ListOptions{FieldSelector: s.selector})
	if err != nil && ctx.Err() == nil && context.Cause(lctx) == errNoAnswer {
		err = fmt.Errorf("list: %w within %v", errNoAnswer, p.bounds.request)
	}
	return list, err
}

// openWatch opens a watch of stream s from resourceVersion rv, with
// bookmarks, which the API server ends after watchTimeout plus a random
// part of watchTimeoutJitter (so that many streams do not all reopen
// together). It fails with errNoAnswer when the API server does not
// answer within requestTimeout. stop ends the watch and its request.
func (p *Provider) openWatch(ctx context.Context, api secretsAPI, s *stream, rv string) (w watch.Interface, stop func(), err error) {
	d := p.bounds.timeout
	if p.bounds.jitter > 0 {
		d += rand.N(p.bounds.jitter)
	}
	timeout := int64(d / time.Second)
	// The watch's stream lives on wctx: only the wait for the answer is
	// bounded.
	wctx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(p.bounds.request, func() { cancel(errNoAnswer) })
	w, err = api.Watch(wctx, s.ns, metav1.ListOptions{
		FieldSelector:       s.selector,
		ResourceVersion:     rv,
		AllowWatchBookmarks: true,
		TimeoutSeconds:      &timeout,
	})
	if !timer.Stop() && ctx.Err() == nil {
		// Not answered in time (or answered just as the time ran out,
		// on a context that is now cancelled).
		if err == nil {
			w.Stop()
		}
		cancel(nil)
		return nil, nil, fmt.Errorf("watch: %w within %v", errNoAnswer, p.bounds.request)
	}
	if err != nil {
		cancel(nil)
		return nil, nil, err
	}
	return w, func() {
		w.Stop()
		cancel(nil)
	}, nil
}

// consume handles the events of one watch until it closes, ctx is done,
// the server sends an error or nothing arrives for the idle bound (an
// error saying the watch stalled).
// It returns the last resourceVersion seen and the error, if any.
func (st *streamState) consume(ctx context.Context, w watch.Interface, rv string, b *backoff.Backoff) (string, error) {
	limit := st.p.bounds.idle
	idle := time.NewTimer(limit)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return rv, nil
		case <-idle.C:
			return rv, fmt.Errorf("watch stalled: no event, bookmark or end from the API server for %v", limit)
		case ev, ok := <-w.ResultChan():
			if !ok {
				return rv, nil
			}
			idle.Reset(limit)
			switch ev.Type {
			case watch.Added, watch.Modified, watch.Deleted:
				sec, ok := ev.Object.(*corev1.Secret)
				if !ok {
					continue
				}
				if ev.Type == watch.Deleted {
					st.observe(sec.Name, observed{})
				} else {
					st.observe(sec.Name, observed{present: true, rv: sec.ResourceVersion})
				}
				if sec.ResourceVersion != "" {
					rv = sec.ResourceVersion
				}
				b.Reset()
			case watch.Bookmark:
				if m, err := meta.Accessor(ev.Object); err == nil && m.GetResourceVersion() != "" {
					rv = m.GetResourceVersion()
				}
				b.Reset()
			case watch.Error:
				return rv, apierrors.FromObject(ev.Object)
			}
		}
	}
}

// broken returns the error that ended a watch's stream (a reset
// connection, a timeout), which the watch reports only by closing, or nil.
func broken(w watch.Interface) error {
	if b, ok := w.(interface{ Err() error }); ok {
		return b.Err()
	}
	return nil
}

// expired reports whether err says the resourceVersion is too old to
// watch from (410 Gone / Expired): the stream must list again.
func expired(err error) bool {
	return err != nil && (apierrors.IsResourceExpired(err) || apierrors.IsGone(err))
}
