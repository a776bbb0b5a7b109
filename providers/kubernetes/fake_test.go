package kubernetes

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// fakeCluster is an in-memory API server for the unit tests: Secrets with
// increasing resourceVersions, an event history that watches replay from
// their resourceVersion, compaction (watching from before it is 410 Gone),
// field-selector watches, server-side closing of watches (also at the
// timeoutSeconds a watch asks for), a server that goes silent (silence),
// and injected errors. It implements secretsAPI.
type fakeCluster struct {
	mu        sync.Mutex
	rv        int
	secrets   map[string]*corev1.Secret // ns/name
	history   []fakeEvent
	compacted int // watching from a resourceVersion below this is 410 Gone
	watches   []*fakeWatch
	// silent: requests are never answered and open watches bring
	// nothing, as behind a proxy that swallows data (silence).
	silent bool

	// Injected failures, consulted before each call; nil means none.
	failGet   func(ns, name string) error
	failList  func(ns string, opts metav1.ListOptions) error
	failWatch func(ns string, opts metav1.ListOptions) error

	// Calls made, for assertions.
	gets, lists int
	watchCalls  []metav1.ListOptions
}

type fakeEvent struct {
	rv  int
	typ watch.EventType
	obj *corev1.Secret
}

type fakeWatch struct {
	ns, name string // name "" watches the whole namespace
	w        *watch.RaceFreeFakeWatcher
	frozen   bool // opened before a silence: it never brings anything again
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{rv: 100, secrets: map[string]*corev1.Secret{}}
}

// provider returns a Provider that talks to c.
func (c *fakeCluster) provider(t *testing.T, opts Options) *Provider {
	t.Helper()
	p, err := New(opts, func(string) string { return "" }, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	p.connect = func() (secretsAPI, error) { return c, nil }
	return p
}

// put creates or replaces a Secret and returns its resourceVersion.
func (c *fakeCluster) put(ns, name string, data map[string][]byte) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rv++
	typ := watch.Added
	if _, ok := c.secrets[ns+"/"+name]; ok {
		typ = watch.Modified
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: strconv.Itoa(c.rv)},
		Data:       data,
	}
	c.secrets[ns+"/"+name] = s
	c.emit(fakeEvent{c.rv, typ, s})
	return s.ResourceVersion
}

// del deletes a Secret.
func (c *fakeCluster) del(ns, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.secrets[ns+"/"+name]
	if !ok {
		return
	}
	delete(c.secrets, ns+"/"+name)
	c.rv++
	gone := s.DeepCopy()
	gone.ResourceVersion = strconv.Itoa(c.rv)
	c.emit(fakeEvent{c.rv, watch.Deleted, gone})
}

func (c *fakeCluster) emit(ev fakeEvent) {
	c.history = append(c.history, ev)
	for _, fw := range c.watches {
		if !fw.frozen && fw.matches(ev.obj) {
			fw.w.Action(ev.typ, ev.obj.DeepCopy())
		}
	}
}

func (fw *fakeWatch) matches(s *corev1.Secret) bool {
	return s.Namespace == fw.ns && (fw.name == "" || fw.name == s.Name)
}

// closeWatches ends every open watch, as an API server does at its
// timeout or when it stops.
func (c *fakeCluster) closeWatches() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, fw := range c.watches {
		if !fw.frozen {
			fw.w.Stop()
		}
	}
	c.watches = nil
}

// compact forgets the history: watching from any resourceVersion seen so
// far is now 410 Gone. With expireOpen, open watches receive a 410 error
// event (as from the watch cache) instead of staying open.
func (c *fakeCluster) compact(expireOpen bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.compacted = c.rv + 1
	c.history = nil
	if expireOpen {
		for _, fw := range c.watches {
			st := apierrors.NewResourceExpired("too old resource version").ErrStatus
			fw.w.Error(&st)
		}
	}
}

// bookmark sends a bookmark at the current resourceVersion to every watch.
func (c *fakeCluster) bookmark() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, fw := range c.watches {
		if fw.frozen {
			continue
		}
		fw.w.Action(watch.Bookmark, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{ResourceVersion: strconv.Itoa(c.rv)}})
	}
}

// silence makes the server silent (on) or answer again: while silent,
// List and Watch block until their context ends, and the watches open
// when it began bring nothing more, ever (not even their end), as the
// connections of a client behind a proxy that swallows data.
func (c *fakeCluster) silence(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.silent = on
	if on {
		for _, fw := range c.watches {
			fw.frozen = true
		}
	}
}

// hang blocks until ctx ends when the server is silent; c.mu is held on
// entry and on return.
func (c *fakeCluster) hang(ctx context.Context) error {
	if !c.silent {
		return nil
	}
	c.mu.Unlock()
	<-ctx.Done()
	c.mu.Lock()
	return ctx.Err()
}

func (c *fakeCluster) openWatches() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, fw := range c.watches {
		if !fw.w.IsStopped() {
			n++
		}
	}
	return n
}

func (c *fakeCluster) counts() (gets, lists, watches int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gets, c.lists, len(c.watchCalls)
}

func (c *fakeCluster) lastWatch() metav1.ListOptions {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.watchCalls) == 0 {
		return metav1.ListOptions{}
	}
	return c.watchCalls[len(c.watchCalls)-1]
}

func itoa(i int) string { return strconv.Itoa(i) }

func selectedName(opts metav1.ListOptions) (string, error) {
	if opts.FieldSelector == "" {
		return "", nil
	}
	name, ok := strings.CutPrefix(opts.FieldSelector, "metadata.name=")
	if !ok || strings.ContainsAny(name, ",=") {
		return "", apierrors.NewBadRequest("unsupported field selector " + opts.FieldSelector)
	}
	return name, nil
}

func (c *fakeCluster) Get(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gets++
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.failGet != nil {
		if err := c.failGet(ns, name); err != nil {
			return nil, err
		}
	}
	s, ok := c.secrets[ns+"/"+name]
	if !ok {
		return nil, apierrors.NewNotFound(corev1.Resource("secrets"), name)
	}
	return s.DeepCopy(), nil
}

func (c *fakeCluster) GetMeta(ctx context.Context, ns, name string) (*metav1.PartialObjectMetadata, error) {
	s, err := c.Get(ctx, ns, name)
	if err != nil {
		return nil, err
	}
	return &metav1.PartialObjectMetadata{ObjectMeta: s.ObjectMeta}, nil
}

func (c *fakeCluster) List(ctx context.Context, ns string, opts metav1.ListOptions) (*corev1.SecretList, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lists++
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := c.hang(ctx); err != nil {
		return nil, err
	}
	if c.failList != nil {
		if err := c.failList(ns, opts); err != nil {
			return nil, err
		}
	}
	name, err := selectedName(opts)
	if err != nil {
		return nil, err
	}
	out := &corev1.SecretList{ListMeta: metav1.ListMeta{ResourceVersion: strconv.Itoa(c.rv)}}
	for _, s := range c.secrets {
		if s.Namespace == ns && (name == "" || s.Name == name) {
			out.Items = append(out.Items, *s.DeepCopy())
		}
	}
	return out, nil
}

func (c *fakeCluster) Watch(ctx context.Context, ns string, opts metav1.ListOptions) (watch.Interface, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.watchCalls = append(c.watchCalls, opts)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := c.hang(ctx); err != nil {
		return nil, err
	}
	if c.failWatch != nil {
		if err := c.failWatch(ns, opts); err != nil {
			return nil, err
		}
	}
	from, err := strconv.Atoi(opts.ResourceVersion)
	if err != nil {
		return nil, fmt.Errorf("fake: the provider must watch from a resourceVersion, got %q", opts.ResourceVersion)
	}
	if from < c.compacted-1 {
		return nil, apierrors.NewResourceExpired("too old resource version")
	}
	name, err := selectedName(opts)
	if err != nil {
		return nil, err
	}
	fw := &fakeWatch{ns: ns, name: name, w: watch.NewRaceFreeFake()}
	for _, ev := range c.history {
		if ev.rv > from && fw.matches(ev.obj) {
			fw.w.Action(ev.typ, ev.obj.DeepCopy())
		}
	}
	c.watches = append(c.watches, fw)
	if opts.TimeoutSeconds != nil {
		// The API server ends the watch at the timeout it asked for.
		time.AfterFunc(time.Duration(*opts.TimeoutSeconds)*time.Second, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if !fw.frozen {
				fw.w.Stop()
			}
		})
	}
	return fw.w, nil
}
