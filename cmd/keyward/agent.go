package main

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/keyward/keyward/internal/backoff"
	"github.com/keyward/keyward/internal/child"
	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/harden"
	"github.com/keyward/keyward/internal/oauth"
	"github.com/keyward/keyward/internal/server"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/render"
	"github.com/keyward/keyward/rotate"
)

// Defaults of the agent's flags.
const (
	defaultInitTimeout     = time.Minute
	defaultShutdownTimeout = 15 * time.Second
)

func newAgentCmd(g *globals) *cobra.Command {
	var w watchRun
	cmd := &cobra.Command{
		Use:   "agent -c FILE [-- COMMAND [ARG...]]",
		Short: "Render secrets and keep them fresh until SIGTERM (sidecar, daemon)",
		Long: `agent resolves every secret of the config and renders its files (retrying until
--init-timeout), then keeps them fresh until it receives SIGTERM or SIGINT: it
watches the secrets that can be watched (file), renews leases, polls the others
(watch.interval, default 30s with a cheap version probe, 5m without), re-renders
only the files a rotation affects, and runs the on_change actions.

Failures keep the previous files and values; the failing secret is retried with
backoff and logged at most once a minute. With a server: section, /healthz,
/readyz (first render done, no lease or token expired) and /metrics are served.

tokens: are obtained before the child starts and refreshed at about 2/3 of
their lifetime into their files and onto the server's GET /v1/tokens/NAME
(POST /v1/tokens/NAME/refresh forces a refresh). The child also gets
KEYWARD_TOKEN_<NAME> (the token at its start: env does not follow refreshes),
KEYWARD_TOKEN_ENDPOINT and, on a TCP listener, KEYWARD_TOKEN_GUARD_FILE (the
0600 file with the value the X-Keyward-Token header must carry; set it in
keyward's environment to choose the file, by default
/run/keyward/endpoint-token-HOST-PORT as root; each agent locks its own).

With -- COMMAND the agent also runs the workload as its child, like
keyward exec with a watch: the child gets the config's variables as exec gives
them (env:, or every secret under its own name without it), the signals keyward
receives, on_change signals and restarts (a restart gives it a fresh
environment), and keyward exits with its code. Without a command, on_change may
only run commands (signal and restart need a child).

Shutdown is bounded: a child still running --stop-timeout after a forwarded
SIGTERM is killed, and the agent's own shutdown (in-flight fetches, on_change
commands, the server) then takes at most --shutdown-timeout, whatever a store
does. Without a child, SIGQUIT prints every goroutine's stack and exits 2, as
Go programs do.

Exit status: 0 after SIGTERM, 1 a secret could not be fetched in time or a
runtime failure (also a shutdown cut short by --shutdown-timeout), 78 the
config is invalid; with a command, the command's.`,
		Example: `  # sidecar: render into a shared volume and keep it fresh
  keyward agent -c /etc/keyward/keyward.yaml

  # daemon around a workload that reloads on SIGHUP
  keyward agent -c keyward.yaml -- nginx -g 'daemon off;'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if n := cmd.ArgsLenAtDash(); n > 0 || n < 0 && len(args) > 0 {
				return usageError("agent takes no arguments before --: keyward agent -c FILE [-- COMMAND [ARG...]]")
			}
			cfg, err := loadConfig(g, true)
			if err != nil {
				return err
			}
			w.args = args
			w.retryInit = true
			w.stdout, w.stderr = g.stdout, g.stderr
			return runWatched(cmd.Context(), g, cfg, w)
		},
	}
	cmd.Flags().SetInterspersed(false)
	envFileRefsFlag(cmd, &w.envFileRefs)
	fileGroupFlag(cmd, &w.fileGroup)
	cmd.Flags().DurationVar(&w.initTimeout, "init-timeout", defaultInitTimeout, "how long to keep retrying the first fetch and render before giving up (0: no limit)")
	cmd.Flags().DurationVar(&w.stopTimeout, "stop-timeout", child.DefaultStopTimeout, "with a command: how long the child has to exit after its stop signal before SIGKILL (shutdown, and restarts without on_change.timeout)")
	cmd.Flags().DurationVar(&w.shutdownTimeout, "shutdown-timeout", defaultShutdownTimeout, "how long the agent's own shutdown may take after SIGTERM, or after the child exited (in-flight fetches, on_change commands, the server); keyward exits when it is over")
	return cmd
}

// watchRun is one run of the rotation engine: keyward agent, or keyward
// exec when the config has watch or on_change.
type watchRun struct {
	args            []string // the child's command; empty for none
	envFileRefs     bool     // resolve file: references in the child's environment (--env-file-refs)
	fileGroup       int      // the files' group (--file-group); -1 for none
	retryInit       bool     // retry the first fetch until initTimeout (agent)
	initTimeout     time.Duration
	stopTimeout     time.Duration
	shutdownTimeout time.Duration
	stdout, stderr  io.Writer
	// output, when set, replaces the child's and the on_change commands'
	// stdout and stderr (exec --mask); flush runs after the child's last
	// exit.
	output func() (stdout, stderr io.Writer, flush func())
}

// runWatched renders cfg's files, keeps them fresh with the rotation
// engine and, when w.args is set, supervises the child. It returns
// *childExit with the child's code when there is a child, nil after
// SIGTERM/SIGINT when there is none.
func runWatched(parent context.Context, g *globals, cfg *config.Config, w watchRun) error {
	hasChild := len(w.args) > 0
	top, err := actionOf(cfg.OnChange, cfg.Path, "on_change")
	if err != nil {
		return err
	}
	files, err := withFileGroup(renderFiles(cfg), w.fileGroup)
	if err != nil {
		return err
	}
	rfiles := make([]rotate.File, len(files))
	for i, f := range files {
		rfiles[i].File = f
		rfiles[i].OnChange, err = actionOf(cfg.Files[i].OnChange, cfg.Path, fmt.Sprintf("files[%d].on_change", i))
		if err != nil {
			return err
		}
	}
	if !hasChild {
		for i, a := range append([]*rotate.Action{top}, fileActions(rfiles)...) {
			if a != nil && (a.Kind == rotate.ActionSignal || a.Kind == rotate.ActionRestart) {
				where := "on_change"
				if i > 0 {
					where = fmt.Sprintf("files[%d].on_change", i-1)
				}
				return configError(fmt.Errorf("%s: %s: %s needs a child process: run the workload with keyward agent -c FILE -- COMMAND, or keyward exec", cfg.Path, where, a.Kind))
			}
		}
		if len(cfg.Env) > 0 {
			g.logger.Warn("env: is ignored without a command: it is the environment of a child (keyward agent -c FILE -- COMMAND)")
		}
	}
	if err := harden.DisableCoreDumps(); err != nil {
		g.logger.Warn("could not disable core dumps", "err", err)
	}

	s, err := newSession(g, cfg)
	if err != nil {
		return err
	}
	defer s.set.Close()
	environ := g.env.environ()
	refs := configRefs(cfg)
	envRefs := map[string]providers.Ref{}
	if hasChild {
		if envRefs, err = s.envRefs(environ, w.envFileRefs); err != nil {
			return err
		}
		for name, r := range envRefs {
			refs[envRefPrefix+name] = r
		}
	}
	if err := s.check(refs); err != nil {
		return err
	}
	var envSecrets []string
	if hasChild {
		seen := map[string]bool{}
		for _, secret := range cfg.EnvVars() {
			seen[secret] = true
		}
		for name := range envRefs {
			seen[envRefPrefix+name] = true
		}
		for n := range seen {
			envSecrets = append(envSecrets, n)
		}
		sort.Strings(envSecrets)
	}

	// ctx bounds the engine and the server. SIGTERM and SIGINT end the
	// agent (sigCtx) until a child runs; then the supervisor forwards them
	// to the child instead, and keyward ends when the child does. Either
	// way the shutdown that follows (tasks) lasts at most
	// w.shutdownTimeout.
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	sigCtx, stopSignals := signal.NotifyContext(ctx, unix.SIGTERM, unix.SIGINT)
	defer stopSignals()

	var reg prometheus.Registerer = prometheus.NewRegistry()
	var srv *server.Server
	if cfg.Server != nil {
		srv = server.New(server.Options{Listen: cfg.Server.Listen, Logger: g.logger, Redact: g.masker.String})
		if err := srv.Listen(); err != nil {
			return err
		}
		reg = srv.Registry()
	}
	metrics := rotate.NewMetrics(reg)

	// With --mask, the child's and the on_change commands' output pass
	// through the process's masker, which learns every value (secrets,
	// rotated secrets, access tokens) before the child or a file can see it.
	out, errOut, flush := w.stdout, w.stderr, func() {}
	if w.output != nil {
		out, errOut, flush = w.output()
	}
	tokens, err := newTokens(g, cfg, s, reg, nil)
	if err != nil {
		return err
	}
	var tokenEnv map[string]providers.Value
	if tokens != nil && srv != nil {
		var cleanup func()
		if tokenEnv, cleanup, err = serveTokens(g, tokens, srv); err != nil {
			return err
		}
		defer cleanup()
	}

	var eng *rotate.Engine
	childEnv := func() ([]string, error) {
		return childEnvironment(environ, envRefs, cfg, eng.Values(), func(added map[string]providers.Value) {
			tokenChildEnv(tokens, tokenEnv, added)
		})
	}
	// The supervisor is built after the first render (its output may
	// depend on the values); the engine acts on it only once it runs.
	var engChild rotate.Child
	later := &laterChild{}
	if hasChild {
		engChild = later
	}
	// on_change commands get keyward's environment without its own
	// credentials, and keyward's stdout and stderr.
	cmdEnv, err := render.Env(environ, nil, nil, cfg.KeepEnv)
	if err != nil {
		return err
	}
	opts := rotate.Options{
		BeforeApply: g.learn,
		Providers:   s.set,
		Secrets:     refs,
		Files:       rfiles,
		EnvSecrets:  envSecrets,
		OnChange:    top,
		Child:       engChild,
		RunCommand:  rotate.ChildCommandRunner(cmdEnv, out, errOut, g.logger),
		Jitter:      config.DefaultWatchJitter,
		Logger:      g.logger,
		Metrics:     metrics,
	}
	if cfg.Watch != nil {
		opts.Interval, opts.Jitter, opts.Debounce = cfg.Watch.Interval, cfg.Watch.Jitter, cfg.Watch.Debounce
	}
	if eng, err = rotate.New(opts); err != nil {
		return err
	}

	work := &tasks{cancel: cancel, timeout: w.shutdownTimeout}
	defer func() {
		stopSignals()
		if err := work.shutdown(); err != nil {
			g.logger.Warn("shutdown", "err", err)
		}
	}()
	serveErr := make(chan error, 1)
	if srv != nil {
		srv.AddReadyCheck("secrets", eng.Ready)
		work.Go(func() { serveErr <- srv.Serve(ctx) })
	}

	if err := initEngine(sigCtx, g, eng, w); err != nil {
		return err
	}
	tokenTimeout := defaultInitTimeout
	if w.retryInit {
		tokenTimeout = w.initTimeout
	}
	if err := initTokens(sigCtx, tokens, tokenTimeout); err != nil {
		return err
	}
	if tokens != nil {
		// Run only ends with ctx.
		work.Go(func() { _ = tokens.Run(ctx) })
	}

	var sup *child.Supervisor
	if hasChild {
		sup = child.NewSupervisor(child.SupervisorOptions{
			Options: child.Options{
				Args:        w.args,
				Stdin:       g.stdin,
				Stdout:      out,
				Stderr:      errOut,
				StopTimeout: w.stopTimeout,
				Logger:      g.logger,
			},
			Environ: childEnv,
		})
		later.set(sup)
	}

	engErr := make(chan error, 1)
	work.Go(func() { engErr <- eng.Run(ctx) })

	if !hasChild {
		select {
		case <-sigCtx.Done():
			g.logger.Info("shutting down")
		case err := <-engErr:
			return fmt.Errorf("rotation engine: %w", err)
		case err := <-serveErr:
			return err
		}
		stopSignals() // a second SIGTERM or SIGINT ends keyward at once
		return work.shutdown()
	}

	stopSignals()
	if cause := context.Cause(sigCtx); cause != nil && cause != context.Canceled {
		// SIGTERM or SIGINT came after the first render but before the
		// supervisor took the signals over: do not start the child.
		return fmt.Errorf("not starting the child: %w", cause)
	}
	if err := harden.ChildCoreLimit(); err != nil {
		g.logger.Warn("could not restore the core limit for the child", "err", err)
	}
	supCtx, cancelSup := context.WithCancel(parent)
	defer cancelSup()
	supDone := make(chan struct{})
	var code int
	var runErr error
	go func() {
		defer close(supDone)
		code, runErr = sup.Run(supCtx)
	}()
	select {
	case <-supDone:
	case err := <-engErr:
		// The engine only ends with its context; stop the child with it.
		g.logger.Error("rotation engine stopped; stopping the child", "err", err)
		cancelSup()
		<-supDone
	case err := <-serveErr:
		g.logger.Error("server stopped; stopping the child", "err", err)
		cancelSup()
		<-supDone
	}
	flush()
	if err := work.shutdown(); err != nil {
		g.logger.Warn("shutdown", "err", err)
	}
	if runErr != nil {
		if c, ok := child.ExitCode(runErr); ok {
			return &exitError{code: c, err: runErr}
		}
		return runErr
	}
	return &childExit{code: code}
}

// initEngine runs the first fetch and render: once (exec), or retried with
// backoff until w.initTimeout (agent). A configuration problem (an invalid
// reference, a provider not in this build, a file that cannot be rendered)
// is not retried.
func initEngine(ctx context.Context, g *globals, eng *rotate.Engine, w watchRun) error {
	if !w.retryInit {
		return eng.Init(ctx)
	}
	if w.initTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.initTimeout)
		defer cancel()
	}
	bo := &backoff.Backoff{Base: 500 * time.Millisecond, Max: 30 * time.Second}
	every := backoff.Every{Interval: 30 * time.Second}
	var last error
	err := backoff.Retry(ctx, bo, func(ctx context.Context) error {
		err := eng.Init(ctx)
		var re *render.Error
		switch {
		case err == nil:
			return nil
		case errors.Is(err, providers.ErrInvalidReference), errors.Is(err, providers.ErrUnavailable), errors.As(err, &re):
			return backoff.Permanent(err)
		}
		if ctx.Err() == nil {
			last = err
			if ok, _ := every.Allow(); ok {
				g.logger.Warn("initial fetch failed; retrying", "err", err)
			}
		}
		return err
	})
	if err != nil && ctx.Err() != nil {
		if last == nil { // stopped during the first attempt
			last = err
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("initial render not done within --init-timeout %v: %w", w.initTimeout, last)
		}
		return fmt.Errorf("initial render interrupted: %w", last)
	}
	return err
}

// tasks are the goroutines of a watched run: the server, the token loop and
// the rotation engine, which all end with the run's context. shutdown
// cancels that context and waits for them for at most timeout
// (--shutdown-timeout): a store, a command or a client that does not honour
// cancellation cannot hold keyward past it. What still runs then ends with
// the process.
type tasks struct {
	cancel  context.CancelFunc
	timeout time.Duration
	wg      sync.WaitGroup
	once    sync.Once
	err     error
}

// Go runs f as one of the tasks.
func (t *tasks) Go(f func()) { t.wg.Go(f) }

// shutdown cancels the tasks and waits for them, at most t.timeout. It
// returns an error naming the bound when they did not all end in time;
// later calls return the first call's result without waiting again.
func (t *tasks) shutdown() error {
	t.once.Do(func() {
		t.cancel()
		done := make(chan struct{})
		go func() {
			t.wg.Wait()
			close(done)
		}()
		timer := time.NewTimer(t.timeout)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
			t.err = fmt.Errorf("shutdown did not finish within --shutdown-timeout %v; exiting anyway", t.timeout)
		}
	})
	return t.err
}

// laterChild is the engine's Child until the supervisor exists.
type laterChild struct {
	mu  sync.Mutex
	sup *child.Supervisor
}

func (l *laterChild) set(s *child.Supervisor) {
	l.mu.Lock()
	l.sup = s
	l.mu.Unlock()
}

func (l *laterChild) get() (*child.Supervisor, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sup == nil {
		return nil, errors.New("the child is not started yet")
	}
	return l.sup, nil
}

// Signal implements rotate.Child.
func (l *laterChild) Signal(sig os.Signal) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Signal(sig)
}

// Restart implements rotate.Child.
func (l *laterChild) Restart(ctx context.Context, stopTimeout time.Duration) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Restart(ctx, stopTimeout)
}

// actionOf converts one config on_change section; nil stays nil.
func actionOf(oc *config.OnChange, path, where string) (*rotate.Action, error) {
	if oc == nil {
		return nil, nil
	}
	a := &rotate.Action{Timeout: oc.Timeout, Splay: oc.Splay}
	switch {
	case oc.Signal != "":
		sig := unix.SignalNum("SIG" + oc.Signal)
		if sig == 0 {
			return nil, configError(fmt.Errorf("%s: %s.signal: unknown signal %q", path, where, oc.Signal))
		}
		a.Kind, a.Signal = rotate.ActionSignal, sig
	case oc.Restart:
		a.Kind = rotate.ActionRestart
	case len(oc.Command) > 0:
		a.Kind, a.Command = rotate.ActionCommand, oc.Command
	default:
		a.Kind = rotate.ActionNone
	}
	return a, nil
}

func fileActions(files []rotate.File) []*rotate.Action {
	out := make([]*rotate.Action, len(files))
	for i, f := range files {
		out[i] = f.OnChange
	}
	return out
}

// --- OAuth2 tokens (config tokens:) ---

// Environment of the child when the config has tokens.
const (
	// envTokenPrefix + NAME (upper-cased, other characters as '_') holds
	// each access token as it was when the child started: env cannot
	// follow a refresh, the token file and the endpoint do.
	envTokenPrefix = "KEYWARD_TOKEN_"
	// envTokenEndpoint is the endpoint's base: http://HOST:PORT, or
	// unix:/path for a unix socket.
	envTokenEndpoint = "KEYWARD_TOKEN_ENDPOINT"
	// envTokenGuardFile names the 0600 file holding the per-start random
	// value the X-Keyward-Token header must carry on a TCP listener. In
	// keyward's own environment it chooses that file's path.
	envTokenGuardFile = "KEYWARD_TOKEN_GUARD_FILE"
)

// tokenAuth maps the config's auth: to the client authentication method.
var tokenAuth = map[string]string{
	config.AuthBasic:               oauth.ClientSecretBasic,
	config.AuthPost:                oauth.ClientSecretPost,
	config.AuthPrivateKeyJWT:       oauth.PrivateKeyJWT,
	config.AuthTLSClient:           oauth.TLSClientAuth,
	config.AuthSelfSignedTLSClient: oauth.SelfSignedTLSClientAuth,
	config.AuthNone:                oauth.None,
}

// tokenSpecs converts the config's tokens, sorted by name.
func tokenSpecs(cfg *config.Config, only func(config.Token) bool) []rotate.TokenSpec {
	var out []rotate.TokenSpec
	for _, name := range sortedKeys(cfg.Tokens) {
		t := cfg.Tokens[name]
		if only != nil && !only(t) {
			continue
		}
		out = append(out, rotate.TokenSpec{
			Name: name, TokenURL: t.TokenURL, Grant: t.Grant, RefreshToken: t.RefreshToken,
			ClientID: t.ClientID, Auth: tokenAuth[t.AuthStyle],
			ClientSecret: t.ClientSecret, PrivateKey: t.PrivateKey, Certificate: t.Certificate,
			KeyID: t.KeyID, SigningAlg: t.SigningAlg,
			Scopes: t.Scopes, Audience: t.Audience, Resource: t.Resource, Params: t.Params,
			RefreshBefore:   t.RefreshBefore,
			DefaultLifetime: t.DefaultLifetime, File: t.File, FileFormat: t.FileFormat,
		})
	}
	return out
}

// newTokens builds the token loop for cfg's tokens (nil when there are
// none); an invalid client reference is a configuration error. The masker
// learns every client credential and access token before it is used.
func newTokens(g *globals, cfg *config.Config, s *session, reg prometheus.Registerer, only func(config.Token) bool) (*rotate.Tokens, error) {
	specs := tokenSpecs(cfg, only)
	if len(specs) == 0 {
		return nil, nil
	}
	var m *rotate.TokenMetrics
	if reg != nil {
		m = rotate.NewTokenMetrics(reg)
	}
	tk, err := rotate.NewTokens(rotate.TokenOptions{Providers: s.set, Tokens: specs, Logger: g.logger, Metrics: m,
		OnToken: func(name string, v providers.Value) {
			g.learn(map[string]providers.Resolved{"token:" + name: {Value: v}})
		},
		OnCredential: func(name, what string, v providers.Value) {
			g.learn(map[string]providers.Resolved{what + ":" + name: {Value: v}})
		}})
	if err != nil {
		return nil, configError(fmt.Errorf("%s: %w", cfg.Path, err))
	}
	return tk, nil
}

// initTokens gets every token once, retrying transient failures for at
// most timeout (0: until ctx ends).
func initTokens(ctx context.Context, tk *rotate.Tokens, timeout time.Duration) error {
	if tk == nil {
		return nil
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := tk.Init(ctx); err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	return nil
}

// tokenEnvName is the child's variable for token name.
func tokenEnvName(name string) string {
	b := []byte(strings.ToUpper(name))
	for i, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	return envTokenPrefix + string(b)
}

// tokenChildEnv adds each current token, and how to reach the endpoint,
// to added.
func tokenChildEnv(tk *rotate.Tokens, endpoint map[string]providers.Value, added map[string]providers.Value) {
	if tk == nil {
		return
	}
	for _, name := range tk.Names() {
		if tok, ok := tk.Get(name); ok {
			added[tokenEnvName(name)] = tok.AccessToken
		}
	}
	maps.Copy(added, endpoint)
}

// serveTokens registers the token endpoint on srv. On a unix socket (0600)
// no header is needed; on TCP a random guard value is written to a 0600
// file that this agent owns ($KEYWARD_TOKEN_GUARD_FILE, else
// defaultGuardPath) and required in the X-Keyward-Token header. It returns
// the child's variables naming the endpoint and a cleanup that removes the
// guard file if it still is this agent's.
func serveTokens(g *globals, tk *rotate.Tokens, srv *server.Server) (map[string]providers.Value, func(), error) {
	srv.AddReadyCheck("tokens", tk.Ready)
	addr := srv.Addr()
	if strings.HasPrefix(srv.Addr(), "/") {
		tk.Register(srv, "")
		g.logger.Info("serving tokens", "socket", addr)
		return map[string]providers.Value{envTokenEndpoint: providers.StringValue("unix:" + addr)}, func() {}, nil
	}
	raw := make([]byte, 32)
	if _, err := cryptorand.Read(raw); err != nil {
		return nil, nil, fmt.Errorf("token endpoint guard: %w", err)
	}
	guard := hex.EncodeToString(raw)
	g.learn(map[string]providers.Resolved{"token_guard": {Value: providers.StringValue(guard)}})
	path, private := g.env.getenv(envTokenGuardFile), false
	if path == "" {
		path, private = defaultGuardPath(g.env.getenv, addr), true
	}
	gf, err := createGuardFile(path, []byte(guard), private)
	if err != nil {
		return nil, nil, fmt.Errorf("token endpoint guard file: %w", err)
	}
	tk.Register(srv, guard)
	g.logger.Info("serving tokens", "addr", addr, "guard_file", path, "header", rotate.TokenGuardHeader)
	env := map[string]providers.Value{
		envTokenEndpoint:  providers.StringValue("http://" + addr),
		envTokenGuardFile: providers.StringValue(path),
	}
	return env, func() {
		if err := gf.Close(); err != nil {
			g.logger.Warn("removing the token endpoint guard file", "err", err)
		}
	}, nil
}
