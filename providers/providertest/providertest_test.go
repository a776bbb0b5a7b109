package providertest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

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

	mu     sync.Mutex
	store  map[string][][]byte // name → versions
	born   map[string]int      // name → when it was created (a counter)
	clock  int
	denied map[string]bool
}

var (
	_ providers.Provider      = (*mem)(nil)
	_ providers.VersionProber = (*mem)(nil)
	_ providers.BatchFetcher  = (*mem)(nil)
)

func (m *mem) put(name string, v []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.store[name]; !ok {
		m.clock++
		m.born[name] = m.clock
	}
	m.store[name] = append(m.store[name], append([]byte(nil), v...))
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
	return providers.Secret{Value: providers.NewValue(b), Version: m.version(ref.Path, n)}, nil
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
	m := &mem{broken: broken, store: map[string][][]byte{}, born: map[string]int{}, denied: map[string]bool{}}
	ref := func(name string) providers.Ref { return providers.Ref{Scheme: memKind, Path: name} }
	return providertest.Harness{
		Kind:       memKind,
		New:        func(*testing.T) providers.Provider { return m },
		BinarySafe: true,
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
		Delete:  func(t *testing.T, name string) { m.delete(name) },
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
