package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// fakeAPI is a vaultAPI answering from a function, recording every request.
type fakeAPI struct {
	handle func(req request) (*api.Secret, error)

	mu   sync.Mutex
	reqs []request
}

var _ vaultAPI = (*fakeAPI)(nil)

func (f *fakeAPI) do(ctx context.Context, req request) (*api.Secret, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return f.handle(req)
}

func (f *fakeAPI) closeIdle() {}

// count returns how many requests went to path (with method, when not "").
func (f *fakeAPI) count(method, path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.reqs {
		if r.path == path && (method == "" || r.method == method) {
			n++
		}
	}
	return n
}

func (f *fakeAPI) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

// vaultErr is Vault's error answer with status and messages.
func vaultErr(status int, msgs ...string) error {
	return &api.ResponseError{HTTPMethod: "GET", URL: "http://vault.test/v1/x", StatusCode: status, Errors: msgs}
}

// secretJSON parses a Vault answer written as JSON, as the real client does
// (numbers as json.Number).
func secretJSON(t testing.TB, s string) *api.Secret {
	t.Helper()
	sec, err := api.ParseSecret(strings.NewReader(s))
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	return sec
}

// mountAnswer is the sys/internal/ui/mounts answer for a mount.
func mountAnswer(t testing.TB, path, typ, version string) *api.Secret {
	opts := "null"
	if version != "" {
		opts = `{"version":"` + version + `"}`
	}
	return secretJSON(t, `{"data":{"path":"`+path+`","type":"`+typ+`","options":`+opts+`}}`)
}

// kv2Answer is a KV v2 read answer with data and version, created at
// createdTime(version).
func kv2Answer(t testing.TB, data map[string]any, version int) *api.Secret {
	b, err := json.Marshal(map[string]any{"data": map[string]any{
		"data":     data,
		"metadata": map[string]any{"version": version, "created_time": createdTime(version), "deletion_time": "", "destroyed": false},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return secretJSON(t, string(b))
}

// createdTime is the created_time the fakes give KV v2 version n, written
// as Vault writes it.
func createdTime(n int) string {
	return time.Date(2026, 1, 1, 0, 0, n, 123456789, time.UTC).Format(time.RFC3339Nano)
}

// clock is a settable time for token and lease tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// fakeProvider builds a Provider over f with the given auth and env.
func fakeProvider(t testing.TB, f *fakeAPI, auth AuthOptions, env map[string]string) (*Provider, *clock, *logBuffer) {
	t.Helper()
	getenv := func(k string) string { return env[k] }
	s, err := resolveSettings(Options{Auth: auth}, getenv, t.TempDir())
	if err != nil {
		t.Fatalf("settings: %v", err)
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := newProvider("vault", s, f, log, getenv, t.TempDir())
	c := newClock()
	p.now = c.now
	return p, c, logs
}

// standard answers shared by the handlers of several tests.
func lookupSelfOK(t testing.TB) *api.Secret {
	return secretJSON(t, `{"data":{"ttl":0,"renewable":false,"policies":["root"]}}`)
}

func slogTo(w *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
