package runner

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers"
)

// stuckKind is a provider kind whose first fetch answers and whose later
// fetches ignore their context until the test ends: a store that hangs
// while the agent shuts down. Only TestShutdownOverrunLoggedOnce uses it.
const stuckKind = "stuck-test"

var stuck struct {
	mu      sync.Mutex
	calls   int
	hanging chan struct{} // closed when a fetch starts hanging
	release chan struct{} // closing it ends the hanging fetches
}

func init() {
	providers.Register(providers.Kind{
		Name: stuckKind,
		New:  func(providers.Instance) (providers.Provider, error) { return stuckProvider{}, nil },
	})
}

type stuckProvider struct{}

func (stuckProvider) Fetch(context.Context, providers.Ref) (providers.Secret, error) {
	stuck.mu.Lock()
	stuck.calls++
	first := stuck.calls == 1
	hanging, release := stuck.hanging, stuck.release
	stuck.mu.Unlock()
	if first {
		return providers.Secret{Value: providers.StringValue("v1")}, nil
	}
	select {
	case <-hanging:
	default:
		close(hanging)
	}
	<-release
	return providers.Secret{}, errors.New("released")
}

func (stuckProvider) Close() error { return nil }

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestShutdownOverrunLoggedOnce: a shutdown cut short by its bound (a
// fetch that ignores cancellation) is reported once: logged when there is
// a child (keyward exits with the child's code), returned and not logged
// as well when there is none (keyward prints it and exits 1).
func TestShutdownOverrunLoggedOnce(t *testing.T) {
	for _, withChild := range []bool{true, false} {
		name := "no child"
		if withChild {
			name = "child"
		}
		t.Run(name, func(t *testing.T) {
			stuck.mu.Lock()
			stuck.calls, stuck.hanging, stuck.release = 0, make(chan struct{}), make(chan struct{})
			release := stuck.release
			stuck.mu.Unlock()
			defer close(release)

			dir := t.TempDir()
			testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), `version: 1
providers:
  stuck:
    kind: `+stuckKind+`
secrets:
  A: stuck://a
files:
  - path: out/a
    format: raw
    secret: A
watch:
  interval: 10ms
  jitter: 0
`)
			cfg, err := config.Load(t.Context(), filepath.Join(dir, "keyward.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var logs syncBuffer
			stdin, stdinW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			defer stdinW.Close()
			env := Env{
				Environ: []string{"PATH=" + os.Getenv("PATH")},
				Stdin:   stdin, Stdout: os.Stdout, Stderr: os.Stderr,
				Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			}
			r, err := New(cfg, env, Options{EnvRefs: withChild, FileGroup: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var argv []string
			if withChild {
				// The child runs until its stdin closes.
				argv = []string{"sh", "-c", "read x; exit 0"}
			}
			go func() {
				<-stuck.hanging
				if withChild {
					stdinW.Close()
				} else {
					cancel()
				}
			}()
			err = r.Run(ctx, argv, WatchOptions{StopTimeout: time.Second, ShutdownTimeout: 100 * time.Millisecond})
			const overrun = "shutdown did not finish"
			logged := strings.Count(logs.String(), overrun)
			if withChild {
				var ee *ExitError
				if !errors.As(err, &ee) || ee.Code != 0 {
					t.Fatalf("Run = %v, want the child's exit code 0", err)
				}
				if logged != 1 {
					t.Errorf("the overrun is logged %d times, want once:\n%s", logged, logs.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), overrun) {
				t.Fatalf("Run = %v, want the overrun", err)
			}
			if logged != 0 {
				t.Errorf("the overrun is returned and logged %d times as well, want only returned:\n%s", logged, logs.String())
			}
		})
	}
}
