// Package server is keyward's local HTTP listener (the config's server:
// section): /healthz, /readyz and Prometheus /metrics from a private
// registry, on a loopback TCP port or a unix socket created with mode 0600.
// Other parts of keyward add their own routes (the token endpoint) with
// Handle and their own readiness conditions with AddReadyCheck.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// ShutdownTimeout bounds how long Serve waits for requests in flight once
// its context is done.
const ShutdownTimeout = 5 * time.Second

// Options configure a Server.
type Options struct {
	// Listen is "HOST:PORT" (TCP) or "unix:/abs/path" (a unix socket).
	// The config package has already refused a non-loopback HOST unless
	// allowed; Server does not second-guess it.
	Listen string
	// Logger receives the listener's lines; nil discards them.
	Logger *slog.Logger
	// NoProcessMetrics leaves out the Go runtime and process collectors
	// (tests that compare metric output exactly set it).
	NoProcessMetrics bool
	// Redact, when set, hides secret values in what the server says: the
	// body of every response with an error status (400 and above, the
	// token endpoint's errors and /readyz's reasons included) and every
	// metric label value pass through it. Success bodies of other routes
	// (a token on purpose) do not.
	Redact func(string) string
}

// ReadyCheck reports whether one part of keyward is ready: nil when it is,
// otherwise an error whose message says why in a few words, without the
// check's name (/readyz prints "NAME: MESSAGE"). The message is served on
// /readyz, so it must never contain a secret value or token.
type ReadyCheck func() error

// Server serves keyward's local endpoints. Build it with New, add routes and
// checks, then Listen and Serve. Handle and AddReadyCheck are safe to call at
// any time from any goroutine.
type Server struct {
	opts Options
	log  *slog.Logger
	reg  *prometheus.Registry
	mux  *http.ServeMux

	mu     sync.Mutex
	checks map[string]ReadyCheck
	ln     net.Listener
	sock   string // unix socket path to remove on shutdown
}

// New returns a Server with /healthz, /readyz and /metrics routes and a
// fresh private Prometheus registry (with the Go runtime and process
// collectors unless opts.NoProcessMetrics). It does not listen yet.
func New(opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:   opts,
		log:    log,
		reg:    prometheus.NewRegistry(),
		mux:    http.NewServeMux(),
		checks: map[string]ReadyCheck{},
	}
	if !opts.NoProcessMetrics {
		s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	var gatherer prometheus.Gatherer = s.reg
	if opts.Redact != nil {
		gatherer = redactedGatherer{s.reg, opts.Redact}
	}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}))
	return s
}

// redactedGatherer passes every label value of the families it gathers
// through redact.
type redactedGatherer struct {
	g      prometheus.Gatherer
	redact func(string) string
}

func (r redactedGatherer) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := r.g.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			// The label pairs are the collectors' own, shared by every
			// Gather: the redacted ones go into a copy.
			var labels []*dto.LabelPair
			for i, lp := range m.GetLabel() {
				if v := lp.GetValue(); v != "" {
					if red := r.redact(v); red != v {
						if labels == nil {
							labels = slices.Clone(m.Label)
						}
						labels[i] = &dto.LabelPair{Name: lp.Name, Value: &red}
					}
				}
			}
			if labels != nil {
				m.Label = labels
			}
		}
	}
	return mfs, err
}

// handler is the mux, with the bodies of error responses redacted.
func (s *Server) handler() http.Handler {
	if s.opts.Redact == nil {
		return s.mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mux.ServeHTTP(&redactingResponse{ResponseWriter: w, redact: s.opts.Redact}, r)
	})
}

// redactingResponse redacts each Write of a response whose status is an
// error (the handlers here write an error body in one Write).
type redactingResponse struct {
	http.ResponseWriter
	redact func(string) string
	status int
}

func (w *redactingResponse) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		if code >= 400 {
			w.Header().Del("Content-Length") // the body may change length
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *redactingResponse) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.status < 400 {
		return w.ResponseWriter.Write(p)
	}
	if _, err := w.ResponseWriter.Write([]byte(w.redact(string(p)))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *redactingResponse) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Registry is the server's private registry: register keyward's metrics
// here, never on the global default registry.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Handle adds a route, with net/http.ServeMux pattern syntax
// ("GET /v1/tokens/{name}"). It panics on a pattern that conflicts with an
// existing one, like ServeMux.Handle.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// AddReadyCheck adds (or replaces) the readiness condition called name.
// /readyz answers 200 only when every check returns nil.
func (s *Server) AddReadyCheck(name string, check ReadyCheck) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = check
}

// Ready runs every check and returns the failures as "name: reason",
// sorted; none means ready.
func (s *Server) Ready() []string {
	s.mu.Lock()
	names := make([]string, 0, len(s.checks))
	checks := make([]ReadyCheck, 0, len(s.checks))
	for n := range s.checks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		checks = append(checks, s.checks[n])
	}
	s.mu.Unlock()
	var out []string
	for i, c := range checks {
		if err := c(); err != nil {
			out = append(out, names[i]+": "+err.Error())
		}
	}
	return out
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fails := s.Ready()
	if len(fails) == 0 {
		_, _ = w.Write([]byte("ok\n"))
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(strings.Join(fails, "\n") + "\n"))
}

// Listen binds the configured address. A unix socket is created with mode
// 0600 from the start (bound in a private 0700 directory, then renamed into
// place), replacing a stale socket file but refusing a path that is not a
// socket or a socket another process still serves. Listen may be called once.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return errors.New("server: already listening")
	}
	if path, ok := strings.CutPrefix(s.opts.Listen, "unix:"); ok {
		ln, err := listenUnix(path)
		if err != nil {
			return err
		}
		s.ln, s.sock = ln, path
		return nil
	}
	ln, err := net.Listen("tcp", s.opts.Listen)
	if err != nil {
		return fmt.Errorf("server listen %s: %w", s.opts.Listen, err)
	}
	s.ln = ln
	return nil
}

// Addr is the bound address ("127.0.0.1:PORT" or the socket path), or ""
// before Listen.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	if s.sock != "" {
		return s.sock
	}
	return s.ln.Addr().String()
}

// Serve serves on the bound listener until ctx is done, then shuts down
// gracefully (at most ShutdownTimeout for requests in flight), removes a
// unix socket, and returns nil. It returns an error when Listen was not
// called or serving fails.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	ln, sock := s.ln, s.sock
	s.mu.Unlock()
	if ln == nil {
		return errors.New("server: Serve before Listen")
	}
	srv := &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("serving health and metrics", "addr", s.Addr())
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
		if serr := srv.Shutdown(sctx); serr != nil {
			_ = srv.Close()
		}
		cancel()
		err = <-errc
	}
	if sock != "" {
		_ = os.Remove(sock)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("server: %w", err)
}

// listenUnix binds a unix socket at path with mode 0600 and no window in
// which it is wider: the socket is bound inside a fresh 0700 directory next
// to path, chmodded, then renamed over path.
func listenUnix(path string) (net.Listener, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("server listen unix:%s: path is not absolute", path)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("server listen unix:%s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("server listen unix:%s: another process is serving on it", path)
		}
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("server listen unix:%s: %w", path, err)
	}
	tmp, err := os.MkdirTemp(dir, ".keyward-sock-")
	if err != nil {
		return nil, fmt.Errorf("server listen unix:%s: %w", path, err)
	}
	defer os.RemoveAll(tmp)
	staged := filepath.Join(tmp, "s")
	ln, err := net.Listen("unix", staged)
	if err != nil {
		return nil, fmt.Errorf("server listen unix:%s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(staged, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("server listen unix:%s: %w", path, err)
	}
	if err := os.Rename(staged, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("server listen unix:%s: %w", path, err)
	}
	return ln, nil
}
