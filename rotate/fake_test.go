package rotate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/render"
)

// Test doubles for the engine: an in-memory store behind fake providers
// with each optional capability, a fake child and a fake command runner.
// Every secret value in these tests starts with "sv-" so that logs and
// errors can be checked for leaks.

const scheme = "fake"

type entry struct {
	value   string // JSON object text, or raw bytes
	version int
	lease   *providers.Lease
}

// store is the fake secret store. Its methods are safe for concurrent use.
type store struct {
	mu       sync.Mutex
	entries  map[string]*entry
	calls    map[string]int // "fetch db", "probe db", "renew db"
	fetchErr map[string]error
	probeErr error
	renewErr error
	watchers []func(providers.Ref) // of the running watches
	healths  []func(bool)          // of the running health watches
	refs     [][]providers.Ref
	watchErr error         // while set, a watch fails at once
	kill     chan struct{} // closed to make the running watches fail
	watches  int           // watch calls
	delay    time.Duration // each fetch takes this long
}

func newStore() *store {
	return &store{entries: map[string]*entry{}, calls: map[string]int{}, fetchErr: map[string]error{}, kill: make(chan struct{})}
}

// set stores value at path as a new version.
func (s *store) set(path, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[path]
	if e == nil {
		e = &entry{}
		s.entries[path] = e
	}
	e.value = value
	e.version++
}

// remove deletes path: a later set starts again at version 1.
func (s *store) remove(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.entries, path)
}

func (s *store) setLease(path string, l *providers.Lease) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries[path].lease = l
}

func (s *store) failFetch(path string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.fetchErr, path)
	} else {
		s.fetchErr[path] = err
	}
}

func (s *store) count(call string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[call]
}

func (s *store) fetch(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
	s.mu.Lock()
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls["fetch "+ref.Path]++
	if err := ctx.Err(); err != nil {
		return providers.Secret{}, err
	}
	if ref.Field != "" {
		return providers.Secret{}, errors.New("provider got a field")
	}
	if err := s.fetchErr[ref.Path]; err != nil {
		return providers.Secret{}, err
	}
	e, ok := s.entries[ref.Path]
	if !ok {
		return providers.Secret{}, fmt.Errorf("%s: %w", ref.Path, providers.ErrNotFound)
	}
	sec := providers.Secret{Value: providers.StringValue(e.value), Version: fmt.Sprint(e.version)}
	if e.lease != nil {
		l := *e.lease
		l.Obtained = time.Now()
		sec.Lease = &l
	}
	return sec, nil
}

func (s *store) probe(_ context.Context, ref providers.Ref) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls["probe "+ref.Path]++
	if s.probeErr != nil {
		return "", s.probeErr
	}
	e, ok := s.entries[ref.Path]
	if !ok {
		return "", providers.ErrNotFound
	}
	return fmt.Sprint(e.version), nil
}

func (s *store) renew(_ context.Context, ref providers.Ref, l providers.Lease) (providers.Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls["renew "+ref.Path]++
	if s.renewErr != nil {
		return providers.Lease{}, s.renewErr
	}
	l.Obtained = time.Now()
	return l, nil
}

// watch blocks like a real Watcher, delivering trigger calls, until ctx
// is done or breakWatch makes it fail.
func (s *store) watch(ctx context.Context, refs []providers.Ref, changed func(providers.Ref)) error {
	s.mu.Lock()
	s.watches++
	if err := s.watchErr; err != nil {
		s.mu.Unlock()
		return err
	}
	s.watchers = append(s.watchers, changed)
	s.refs = append(s.refs, refs)
	kill := s.kill
	s.mu.Unlock()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-kill:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.watchErr
	}
}

// watchHealth is watch that records healthy for setHealthy.
func (s *store) watchHealth(ctx context.Context, refs []providers.Ref, changed func(providers.Ref), healthy func(bool)) error {
	s.mu.Lock()
	s.healths = append(s.healths, healthy)
	s.mu.Unlock()
	return s.watch(ctx, refs, changed)
}

// setHealthy tells every health watch's caller that its watch is healthy
// or not (from the test goroutine).
func (s *store) setHealthy(up bool) {
	s.mu.Lock()
	hs := s.healths
	s.mu.Unlock()
	for _, h := range hs {
		h(up)
	}
}

// breakWatch makes the running watches fail with err, and every watch
// started from now on, until healWatch.
func (s *store) breakWatch(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watchErr = err
	s.watchers, s.refs = nil, nil
	close(s.kill)
	s.kill = make(chan struct{})
}

// healWatch lets the next watch run.
func (s *store) healWatch() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watchErr = nil
}

// watchCalls returns how many times watch was called.
func (s *store) watchCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.watches
}

// running returns how many watches are running.
func (s *store) running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.watchers)
}

// trigger reports path as changed to every watcher (from the test goroutine).
func (s *store) trigger(path string) {
	s.mu.Lock()
	ws, rs := s.watchers, s.refs
	s.mu.Unlock()
	for i, w := range ws {
		for _, r := range rs[i] {
			if r.Path == path {
				w(r)
			}
		}
	}
}

// Providers with different capability sets (found by type assertion).
type (
	plainProvider   struct{ s *store }
	proberProvider  struct{ plainProvider }
	watcherProvider struct{ plainProvider }
	renewerProvider struct{ plainProvider }
	// watchProberProvider is like Kubernetes: a watch and a version probe.
	watchProberProvider struct{ proberProvider }
	// healthWatcherProvider's watch reconnects by itself and reports its
	// health, like Kubernetes.
	healthWatcherProvider struct{ plainProvider }
)

var (
	_ providers.VersionProber = proberProvider{}
	_ providers.Watcher       = watcherProvider{}
	_ providers.LeaseRenewer  = renewerProvider{}
	_ providers.Watcher       = watchProberProvider{}
	_ providers.VersionProber = watchProberProvider{}
	_ providers.HealthWatcher = healthWatcherProvider{}
)

func (p plainProvider) Fetch(ctx context.Context, r providers.Ref) (providers.Secret, error) {
	return p.s.fetch(ctx, r)
}
func (p plainProvider) Close() error { return nil }
func (p proberProvider) ProbeVersion(ctx context.Context, r providers.Ref) (string, error) {
	return p.s.probe(ctx, r)
}
func (p watcherProvider) Watch(ctx context.Context, refs []providers.Ref, changed func(providers.Ref)) error {
	return p.s.watch(ctx, refs, changed)
}
func (p watchProberProvider) Watch(ctx context.Context, refs []providers.Ref, changed func(providers.Ref)) error {
	return p.s.watch(ctx, refs, changed)
}
func (p healthWatcherProvider) Watch(ctx context.Context, refs []providers.Ref, changed func(providers.Ref)) error {
	return p.s.watch(ctx, refs, changed)
}
func (p healthWatcherProvider) WatchHealth(ctx context.Context, refs []providers.Ref, changed func(providers.Ref), healthy func(bool)) error {
	return p.s.watchHealth(ctx, refs, changed, healthy)
}
func (p renewerProvider) Renew(ctx context.Context, r providers.Ref, l providers.Lease) (providers.Lease, error) {
	return p.s.renew(ctx, r, l)
}

// testKinds numbers the provider kinds newSet registers.
var testKinds atomic.Int64

// newSet returns a providers.Set whose instance of each name in ps is
// that provider: each gets a kind of its own, registered for this test
// binary (the kinds accept ?version=).
func newSet(t testing.TB, ps map[string]providers.Provider) *providers.Set {
	t.Helper()
	var declared []providers.Instance
	for name, p := range ps {
		kind := fmt.Sprintf("rotate-test-%d", testKinds.Add(1))
		providers.Register(providers.Kind{
			Name:   kind,
			Params: []string{"version"},
			New:    func(providers.Instance) (providers.Provider, error) { return p, nil },
		})
		declared = append(declared, providers.Instance{Name: name, Kind: kind})
	}
	set := providers.NewSet(providers.Instance{}, declared)
	t.Cleanup(func() { _ = set.Close() })
	return set
}

// oneSet returns a providers.Set with p under the scheme "fake".
func oneSet(t testing.TB, p providers.Provider) *providers.Set {
	return newSet(t, map[string]providers.Provider{scheme: p})
}

// fakeChild records the actions.
type fakeChild struct {
	mu       sync.Mutex
	signals  []os.Signal
	restarts []time.Time
	timeouts []time.Duration
	splays   []time.Duration
}

func (c *fakeChild) Signal(sig os.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.signals = append(c.signals, sig)
	return nil
}

func (c *fakeChild) Restart(_ context.Context, timeout, splay time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.restarts = append(c.restarts, time.Now())
	c.timeouts = append(c.timeouts, timeout)
	c.splays = append(c.splays, splay)
	return nil
}

func (c *fakeChild) counts() (signals, restarts int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.signals), len(c.restarts)
}

// commands records the commands run.
type commands struct {
	mu  sync.Mutex
	ran [][]string
}

func (c *commands) run(_ context.Context, argv []string, _ time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ran = append(c.ran, argv)
	return nil
}

func (c *commands) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ran)
}

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// count returns how many log lines contain s.
func (l *lockedBuffer) count(s string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// rig is one engine under test with its doubles.
type rig struct {
	t      *testing.T
	dir    string
	store  *store
	eng    *Engine
	child  *fakeChild
	cmds   *commands
	logs   *lockedBuffer
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// ref returns a reference to field of the secret at path ("" for the whole).
func ref(path, field string) providers.Ref {
	return providers.Ref{Scheme: scheme, Path: path, Field: field}
}

// newRig builds an engine over provider p (wrapping st), with the given
// secrets and files (relative paths are made absolute under a temp dir);
// tweak adjusts the options. It does not call Init.
func newRig(t *testing.T, st *store, p providers.Provider, secrets map[string]providers.Ref, files []File, tweak func(*Options)) *rig {
	t.Helper()
	r := &rig{t: t, dir: t.TempDir(), store: st, child: &fakeChild{}, cmds: &commands{}, logs: &lockedBuffer{}, reg: prometheus.NewRegistry()}
	for i := range files {
		files[i].Path = filepath.Join(r.dir, files[i].Path)
		files[i].UID, files[i].GID = -1, -1
	}
	var ps *providers.Set
	if p != nil {
		ps = oneSet(t, p)
	}
	opts := Options{
		Providers:  ps,
		Secrets:    secrets,
		Files:      files,
		Child:      r.child,
		RunCommand: r.cmds.run,
		Jitter:     0,
		Logger:     slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:    NewMetrics(r.reg),
		Rand:       func() float64 { return 0.5 },
	}
	if tweak != nil {
		tweak(&opts)
	}
	eng, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r.eng = eng
	t.Cleanup(r.checkNoLeak)
	return r
}

// start runs Init and then Run in the background.
func (r *rig) start() {
	r.t.Helper()
	if err := r.eng.Init(context.Background()); err != nil {
		r.t.Fatalf("Init: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- r.eng.Run(ctx) }()
	r.t.Cleanup(r.stop)
}

// stop ends Run and checks that it returned context.Canceled.
func (r *rig) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; !errors.Is(err, context.Canceled) {
		r.t.Errorf("Run returned %v, want context.Canceled", err)
	}
}

// checkNoLeak fails the test if a secret value shows up in the logs.
func (r *rig) checkNoLeak() {
	if strings.Contains(r.logs.String(), "sv-") {
		r.t.Errorf("a secret value appears in the logs:\n%s", r.logs.String())
	}
}

func (r *rig) read(name string) string {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, name))
	if err != nil {
		r.t.Fatal(err)
	}
	return string(b)
}

func (r *rig) inode(name string) uint64 {
	r.t.Helper()
	fi, err := os.Stat(filepath.Join(r.dir, name))
	if err != nil {
		r.t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// metric returns the value of the metric name with the given label
// values (name=value pairs), or -1 when there is none.
func (r *rig) metric(name string, labels ...string) float64 {
	r.t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if got[labels[i]] != labels[i+1] {
					continue next
				}
			}
			return value(m)
		}
	}
	return -1
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}

// labelValues lists every label value of every series in the registry.
func (r *rig) labelValues() []string {
	r.t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				out = append(out, lp.GetValue())
			}
		}
	}
	sort.Strings(out)
	return out
}

// fileSpec is a shorthand for a File.
func rawFile(path, secret string, oc *Action) File {
	return File{File: render.File{Path: path, Format: render.FormatRaw, Secret: secret}, OnChange: oc}
}

func dotenvFile(path string, oc *Action, secrets ...string) File {
	return File{File: render.File{Path: path, Format: render.FormatDotenv, Secrets: secrets}, OnChange: oc}
}
