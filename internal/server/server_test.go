package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// start listens and serves s until the test ends, and returns a client and
// the base URL that reach it.
func start(t *testing.T, s *Server) (*http.Client, string) {
	t.Helper()
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	client := &http.Client{}
	base := "http://" + s.Addr()
	if strings.HasPrefix(s.opts.Listen, "unix:") {
		sock := s.Addr()
		client.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}
		base = "http://keyward"
	}
	return client, base
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	t.Parallel()
	s := New(Options{Listen: "127.0.0.1:0"})
	renders := prometheus.NewCounter(prometheus.CounterOpts{Name: "keyward_test_renders_total", Help: "test"})
	s.Registry().MustRegister(renders)
	renders.Add(3)
	var mu sync.Mutex
	var secretsErr, tokensErr error = errors.New("first render not done"), nil
	set := func(s, t error) { mu.Lock(); secretsErr, tokensErr = s, t; mu.Unlock() }
	s.AddReadyCheck("secrets", func() error { mu.Lock(); defer mu.Unlock(); return secretsErr })
	s.AddReadyCheck("tokens", func() error { mu.Lock(); defer mu.Unlock(); return tokensErr })
	s.Handle("GET /v1/ping/{name}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("pong " + r.PathValue("name")))
	}))
	c, base := start(t, s)

	cases := []struct {
		path string
		code int
		body string
	}{
		{"/healthz", 200, "ok\n"},
		{"/readyz", 503, "secrets: first render not done\n"},
		{"/v1/ping/x", 200, "pong x"},
		{"/nope", 404, ""},
	}
	for _, cs := range cases {
		code, body := get(t, c, base+cs.path)
		if code != cs.code || (cs.body != "" && body != cs.body) {
			t.Errorf("GET %s = %d %q, want %d %q", cs.path, code, body, cs.code, cs.body)
		}
	}
	set(nil, errors.New("token partner expired"))
	if code, body := get(t, c, base+"/readyz"); code != 503 || body != "tokens: token partner expired\n" {
		t.Errorf("readyz = %d %q", code, body)
	}
	set(nil, nil)
	if code, _ := get(t, c, base+"/readyz"); code != 200 {
		t.Errorf("readyz = %d with every check passing", code)
	}
	code, body := get(t, c, base+"/metrics")
	if code != 200 || !strings.Contains(body, "keyward_test_renders_total 3") || !strings.Contains(body, "process_resident_memory_bytes") {
		t.Errorf("metrics = %d, body lacks the registered counter or process metrics:\n%.400s", code, body)
	}
	resp, err := c.Post(base+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d", resp.StatusCode)
	}
}

func TestUnixSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "keyward.sock")
	s := New(Options{Listen: "unix:" + sock, NoProcessMetrics: true})
	c, base := start(t, s)
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a 0600 socket", fi.Mode())
	}
	if di, err := os.Stat(filepath.Dir(sock)); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory: %v %v", di.Mode(), err)
	}
	if code, _ := get(t, c, base+"/healthz"); code != 200 {
		t.Fatalf("healthz = %d", code)
	}
	entries, _ := os.ReadDir(filepath.Dir(sock))
	if len(entries) != 1 {
		t.Fatalf("staging directory left behind: %v", entries)
	}
	// A second server on the same live socket is refused.
	if err := New(Options{Listen: "unix:" + sock}).Listen(); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second Listen on a live socket: %v", err)
	}
}

func TestUnixSocketStaleAndShutdown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "k.sock")
	// A stale socket: bound, then closed without unlinking.
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()

	s := New(Options{Listen: "unix:" + sock, NoProcessMetrics: true})
	if err := s.Listen(); err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket not removed at shutdown: %v", err)
	}
}

func TestListenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	regular := filepath.Join(dir, "file")
	if err := os.WriteFile(regular, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"unix:" + regular:  "not a socket",
		"unix:relative.sk": "not absolute",
		"127.0.0.1:99999":  "listen",
	}
	for listen, want := range cases {
		err := New(Options{Listen: listen}).Listen()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Listen(%q) = %v, want an error containing %q", listen, err, want)
		}
	}
	if got, _ := os.ReadFile(regular); string(got) != "x" {
		t.Fatal("a regular file at the socket path was modified")
	}
	s := New(Options{Listen: "127.0.0.1:0"})
	if err := s.Serve(context.Background()); err == nil {
		t.Fatal("Serve before Listen succeeded")
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	defer s.ln.Close()
	if err := s.Listen(); err == nil {
		t.Fatal("second Listen succeeded")
	}
}

// TestRedact: with Redact set, the body of every error response (a route's
// own, /readyz's reasons) and every metric label value pass through it; a
// success body (a token served on purpose) does not.
func TestRedact(t *testing.T) {
	t.Parallel()
	const value = "v4lue-kept-in-keyward"
	redact := func(s string) string { return strings.ReplaceAll(s, value, "***") }
	s := New(Options{Listen: "127.0.0.1:0", NoProcessMetrics: true, Redact: redact})
	s.Handle("GET /ok", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "token "+value) }))
	s.Handle("GET /fail", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "99")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":"upstream said `+value+`"}`)
	}))
	s.AddReadyCheck("tokens", func() error { return errors.New("refused: " + value) })
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kw_test_total", Help: "test"}, []string{"reason"})
	c.WithLabelValues("echo " + value).Inc()
	s.Registry().MustRegister(c)
	client, base := start(t, s)
	for path, want := range map[string]int{"/ok": 200, "/fail": 503, "/readyz": 503, "/metrics": 200} {
		code, body := get(t, client, base+path)
		if code != want {
			t.Errorf("%s: status %d, want %d", path, code, want)
		}
		leaked := strings.Contains(body, value)
		if path == "/ok" && !leaked {
			t.Errorf("%s: a success body was changed", path)
		}
		if path != "/ok" && (leaked || !strings.Contains(body, "***")) {
			t.Errorf("%s: leaked value of the test secret, or nothing was redacted", path)
		}
	}
	// The scrape redacted a copy: the collector's own label is unchanged.
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "reason" && lp.GetValue() != "echo "+value {
					t.Errorf("a /metrics scrape rewrote the label of %s in the registry", mf.GetName())
				}
			}
		}
	}
}
