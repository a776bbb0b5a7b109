package providertest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/providertest"
)

// memKind is an in-memory store with every feature the suite can test:
// versions, denials, version probes and batch fetches. It exercises the
// suite's paths that the file provider skips, and, broken on purpose,
// shows that the suite notices.
const memKind = "providertest-mem"

func init() {
	providers.Register(providers.Kind{
		Name:   memKind,
		Params: []string{"version"},
		New: func(in providers.Instance) (providers.Provider, error) {
			var m *mem
			if err := in.Decode(&m); err != nil {
				return nil, err
			}
			return m, nil
		},
	})
}

type mem struct {
	broken string // which rule to break, for TestSuiteCatches

	mu       sync.Mutex
	store    map[string][][]byte // name → versions
	born     map[string]int      // name → when it was created (a counter)
	clock    int
	denied   map[string]bool
	leases   map[string]string // name → lease ID of a leased secret
	watchers []chan string     // of the running watches: names put
}

var (
	_ providers.Provider      = (*mem)(nil)
	_ providers.VersionProber = (*mem)(nil)
	_ providers.BatchFetcher  = (*mem)(nil)
	_ providers.Watcher       = (*mem)(nil)
	_ providers.LeaseRenewer  = (*mem)(nil)
)

// leaseTTL is the duration of the mem store's leases.
const leaseTTL = time.Hour

// Watch reports each put of a watched name, from its own goroutine (never
// concurrently), until ctx is done.
func (m *mem) Watch(ctx context.Context, refs []providers.Ref, changed func(providers.Ref)) error {
	ch := make(chan string, 64)
	m.mu.Lock()
	m.watchers = append(m.watchers, ch)
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.watchers = slices.DeleteFunc(m.watchers, func(c chan string) bool { return c == ch })
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case name := <-ch:
			if m.broken == "watch-silent" {
				continue
			}
			for _, r := range refs {
				if r.Path == name {
					changed(r)
				}
			}
		}
	}
}

// Renew extends a lease the store gave out by leaseTTL.
func (m *mem) Renew(ctx context.Context, ref providers.Ref, l providers.Lease) (providers.Lease, error) {
	if err := ctx.Err(); err != nil {
		return providers.Lease{}, fmt.Errorf("mem renew %s: %w", ref.Path, err)
	}
	m.mu.Lock()
	known := m.leases[ref.Path] == l.ID
	m.mu.Unlock()
	switch {
	case !l.Renewable:
		return providers.Lease{}, fmt.Errorf("mem renew %s: %w", l.ID, providers.ErrLeaseNotRenewable)
	case !time.Now().Before(l.Expires()):
		return providers.Lease{}, fmt.Errorf("mem renew %s: expired: %w", l.ID, providers.ErrLeaseNotRenewable)
	case !known && m.broken != "renew-unknown":
		return providers.Lease{}, fmt.Errorf("mem renew %s: no such lease: %w", l.ID, providers.ErrLeaseNotRenewable)
	}
	l.Duration, l.Obtained = leaseTTL, time.Now()
	return l, nil
}

func (m *mem) put(name string, v []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.store[name]; !ok {
		m.clock++
		m.born[name] = m.clock
	}
	m.store[name] = append(m.store[name], append([]byte(nil), v...))
	for _, ch := range m.watchers {
		select {
		case ch <- name:
		default:
		}
	}
}

func (m *mem) delete(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.store, name)
	delete(m.born, name)
}

// version is the Version of version n of name: its number and when the
// secret was created, as GCP and Vault tell a re-created secret apart.
func (m *mem) version(name string, n int) string {
	if m.broken == "reused-version" {
		return strconv.Itoa(n)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return strconv.Itoa(n) + "@" + strconv.Itoa(m.born[name])
}

func (m *mem) lookup(ctx context.Context, ref providers.Ref) ([]byte, int, error) {
	if err := ctx.Err(); err != nil && m.broken != "ignore-ctx" {
		return nil, 0, fmt.Errorf("mem %s: %w", ref.Path, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.denied[ref.Path] {
		return nil, 0, fmt.Errorf("mem %s: %w", ref.Path, providers.ErrPermissionDenied)
	}
	vs, ok := m.store[ref.Path]
	if !ok {
		if m.broken == "leak" {
			for _, v := range m.store {
				return nil, 0, fmt.Errorf("mem %s: not found, did you mean %s: %w", ref.Path, v[0], providers.ErrNotFound)
			}
		}
		if m.broken == "plain-not-found" {
			return nil, 0, fmt.Errorf("mem %s: no such secret", ref.Path)
		}
		return nil, 0, fmt.Errorf("mem %s: %w", ref.Path, providers.ErrNotFound)
	}
	n := len(vs)
	if s, ok := ref.Params["version"]; ok {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 || n > len(vs) {
			return nil, 0, fmt.Errorf("mem %s version %s: %w", ref.Path, s, providers.ErrNotFound)
		}
	}
	return vs[n-1], n, nil
}

func (m *mem) Fetch(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
	b, n, err := m.lookup(ctx, ref)
	if err != nil {
		return providers.Secret{}, err
	}
	sec := providers.Secret{Value: providers.NewValue(b), Version: m.version(ref.Path, n)}
	m.mu.Lock()
	if id, ok := m.leases[ref.Path]; ok {
		sec.Lease = &providers.Lease{ID: id, Duration: leaseTTL, Renewable: true, Obtained: time.Now()}
	}
	m.mu.Unlock()
	return sec, nil
}

func (m *mem) ProbeVersion(ctx context.Context, ref providers.Ref) (string, error) {
	_, n, err := m.lookup(ctx, ref)
	if err != nil {
		return "", err
	}
	if m.broken == "probe" {
		return "v" + m.version(ref.Path, n), nil
	}
	return m.version(ref.Path, n), nil
}

func (m *mem) FetchBatch(ctx context.Context, refs []providers.Ref) ([]providers.Secret, []error) {
	secs, errs := make([]providers.Secret, len(refs)), make([]error, len(refs))
	for i, r := range refs {
		secs[i], errs[i] = m.Fetch(ctx, r)
	}
	return secs, errs
}

func (m *mem) Close() error { return nil }

func memHarness(t *testing.T, broken string) providertest.Harness {
	m := &mem{broken: broken, store: map[string][][]byte{}, born: map[string]int{}, denied: map[string]bool{}, leases: map[string]string{}}
	ref := func(name string) providers.Ref { return providers.Ref{Scheme: memKind, Path: name} }
	return providertest.Harness{
		Kind:         memKind,
		New:          func(*testing.T) providers.Provider { return m },
		WatchTimeout: 2 * time.Second,
		BinarySafe:   true,
		PutValue: func(t *testing.T, name string, v []byte) providers.Ref {
			m.put(name, v)
			return ref(name)
		},
		PutObject: func(t *testing.T, name string, fields map[string]any) providers.Ref {
			b, err := json.Marshal(fields)
			if err != nil {
				t.Fatal(err)
			}
			m.put(name, b)
			return ref(name)
		},
		PutVersions: func(t *testing.T, name string, values [][]byte) providertest.Versions {
			vs := providertest.Versions{Latest: ref(name), Missing: ref(name)}
			vs.Missing.Params = map[string]string{"version": strconv.Itoa(len(values) + 1)}
			for i, v := range values {
				m.put(name, v)
				r := ref(name)
				r.Params = map[string]string{"version": strconv.Itoa(i + 1)}
				vs.Pinned = append(vs.Pinned, r)
			}
			return vs
		},
		Delete: func(t *testing.T, name string) { m.delete(name) },
		PutLeased: func(t *testing.T, name string) providers.Ref {
			m.put(name, []byte(`{"username":"u","password":"p"}`))
			m.mu.Lock()
			m.leases[name] = "mem/creds/" + name
			m.mu.Unlock()
			return ref(name)
		},
		Missing: func(t *testing.T, name string) providers.Ref { return ref(name) },
		Denied: func(t *testing.T, name string, v []byte) providers.Ref {
			m.put(name, v)
			m.mu.Lock()
			m.denied[name] = true
			m.mu.Unlock()
			return ref(name)
		},
		PutMalformed: func(t *testing.T, name string, v []byte) providers.Ref {
			m.put(name, append([]byte(`{"password": `), v...))
			r := ref(name)
			r.Field = "password"
			return r
		},
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	providertest.Run(t, memHarness(t, os.Getenv("PROVIDERTEST_BROKEN")))
}

// TestSuiteCatches runs the suite in a child process against a store
// that breaks one rule, and checks that the suite fails saying why.
func TestSuiteCatches(t *testing.T) {
	if os.Getenv("PROVIDERTEST_BROKEN") != "" {
		t.Skip("child process")
	}
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		broken string
		want   string
	}{
		{"leak", "appears whole in"},
		{"plain-not-found", "want an error wrapping providers.ErrNotFound"},
		{"ignore-ctx", "want an error wrapping context.Canceled"},
		{"probe", "ProbeVersion"},
		{"reused-version", "the secret created again reports the deleted one's Version"},
		{"watch-silent", "was not reported within"},
		{"renew-unknown", "Renew of a lease the store does not know"},
	}
	for _, tt := range tests {
		t.Run(tt.broken, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), exe, "-test.run=^TestRun$", "-test.count=1")
			cmd.Env = append(os.Environ(), "PROVIDERTEST_BROKEN="+tt.broken)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("the suite passed a store that breaks %q (err %v):\n%s", tt.broken, err, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("the suite failed without saying %q:\n%s", tt.want, out)
			}
			// Stored values end in 24 hex digits (names in 8).
			if tt.broken == "leak" && regexp.MustCompile(`-[0-9a-f]{24}`).Match(out) {
				t.Errorf("the failure report prints the leaked value:\n%s", out)
			}
		})
	}
}
