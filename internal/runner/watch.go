package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/keyward/keyward/internal/backoff"
	"github.com/keyward/keyward/internal/child"
	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/harden"
	"github.com/keyward/keyward/internal/server"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/render"
	"github.com/keyward/keyward/rotate"
)

// WatchOptions configure the watched mode.
type WatchOptions struct {
	// RetryInit retries the first fetch and render until InitTimeout
	// (agent); otherwise it is tried once (exec with a watch).
	RetryInit bool
	// InitTimeout bounds the retries of the first fetch and render, and
	// the first fetch of the tokens (0: no bound).
	InitTimeout time.Duration
	// StopTimeout is how long the child has after its stop signal before
	// SIGKILL (shutdown, and restarts without on_change.timeout).
	StopTimeout time.Duration
	// ShutdownTimeout bounds keyward's own shutdown after SIGTERM or the
	// child's exit (--shutdown-timeout).
	ShutdownTimeout time.Duration
	// Output, when set, gives stdout and stderr in place of Env's (exec
	// and agent --mask): it is called once for the child and once for the
	// on_change commands, each writing through its own pair. Each flush
	// runs once the shutdown that follows the child's last exit (or,
	// without a child, the agent's stop) is over.
	Output func() (stdout, stderr io.Writer, flush func())
}

// Run is the watched mode: it renders the config's files, keeps them fresh
// with the rotation engine, keeps the tokens fresh, serves the server: section,
// and with argv supervises the child (whose environment has the current
// values at every start). New must have been given Options.EnvRefs when
// there is a child. Run returns an *ExitError with the child's code when
// there is a child, nil after SIGTERM or SIGINT when there is none.
// Whatever it started has ended when it returns, or, past
// o.ShutdownTimeout, is left to end with the process: a shutdown cut
// short so is logged when there is a child, and returned when there is
// none.
func (r *Runner) Run(parent context.Context, argv []string, o WatchOptions) (result error) {
	cfg, log := r.cfg, r.env.Logger
	if cfg == nil {
		return errors.New("the watched mode needs a config")
	}
	hasChild := len(argv) > 0
	top, err := actionOf(cfg.OnChange, cfg.Path, "on_change")
	if err != nil {
		return err
	}
	rfiles := make([]rotate.File, len(r.files))
	for i, f := range r.files {
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
			// Info, not a warning: one config commonly serves an init
			// container, a sidecar and exec mode alike.
			log.Info("env: is not used without a command: it is the environment of a child (keyward agent -c FILE -- COMMAND)")
		}
	}
	if err := harden.DisableCoreDumps(); err != nil {
		log.Warn("could not disable core dumps", "err", err)
	}
	if err := r.Check(); err != nil {
		return err
	}
	r.sweepLeftovers()
	var envSecrets []string
	if hasChild {
		seen := map[string]bool{}
		for _, secret := range cfg.EnvVars() {
			seen[secret] = true
		}
		for name := range r.envRefs {
			seen[EnvRefPrefix+name] = true
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
	// o.ShutdownTimeout.
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	sigCtx, stopSignals := StopOnSignal(ctx)
	defer stopSignals()

	var reg prometheus.Registerer = prometheus.NewRegistry()
	var srv *server.Server
	if cfg.Server != nil {
		srv = server.New(server.Options{Listen: cfg.Server.Listen, Logger: log, Redact: r.env.Redact})
		if err := srv.Listen(); err != nil {
			return err
		}
		reg = srv.Registry()
	}
	metrics := rotate.NewMetrics(reg)

	// With --mask, the child's and the on_change commands' output pass
	// through the process's masker, which learns every value (secrets,
	// rotated secrets, access tokens) before the child or a file can see it.
	// The child and the commands write at the same time, each through
	// writers of its own: what one holds back (the possible beginning of
	// a value) is completed by its own next write, never written out
	// because the other's came in between.
	out, errOut, cmdOut, cmdErrOut, flush := r.env.Stdout, r.env.Stderr, r.env.Stdout, r.env.Stderr, func() {}
	if o.Output != nil {
		var flushChild, flushCmds func()
		out, errOut, flushChild = o.Output()
		cmdOut, cmdErrOut, flushCmds = o.Output()
		flush = func() { flushChild(); flushCmds() }
	}
	tokens, err := r.newTokens(reg, nil)
	if err != nil {
		return err
	}
	var tokenEnv map[string]providers.Value
	if tokens != nil && srv != nil {
		var cleanup func()
		if tokenEnv, cleanup, err = r.serveTokens(tokens, srv); err != nil {
			return err
		}
		defer cleanup()
	}

	// The supervisor exists before the engine: at every start it takes
	// the child's environment from the engine's current values, and the
	// engine's on_change actions act on it (a signal fails until the
	// child runs; a restart waits for it).
	var eng *rotate.Engine
	var sup *child.Supervisor
	var engChild rotate.Child
	if hasChild {
		sup = child.NewSupervisor(child.SupervisorOptions{
			Options: child.Options{
				Args:        argv,
				Stdin:       r.env.Stdin,
				Stdout:      out,
				Stderr:      errOut,
				StopTimeout: o.StopTimeout,
				Logger:      log,
			},
			Environ: func() ([]string, error) {
				return ChildEnv(cfg, r.env.Environ, r.envRefs, eng.Values(), func(added map[string]providers.Value) {
					tokenChildEnv(tokens, tokenEnv, added)
				})
			},
		})
		engChild = sup
	}
	// on_change commands get keyward's environment without its own
	// credentials, and keyward's stdout and stderr.
	cmdEnv, err := render.Env(r.env.Environ, nil, nil, cfg.KeepEnv)
	if err != nil {
		return err
	}
	opts := rotate.Options{
		BeforeApply: r.env.Learn,
		Providers:   r.set,
		Secrets:     r.refs,
		Files:       rfiles,
		EnvSecrets:  envSecrets,
		OnChange:    top,
		Child:       engChild,
		RunCommand:  rotate.ChildCommandRunner(cmdEnv, cmdOut, cmdErrOut, log),
		Jitter:      config.DefaultWatchJitter,
		Logger:      log,
		Metrics:     metrics,
	}
	if cfg.Watch != nil {
		opts.Interval, opts.Jitter, opts.Debounce = cfg.Watch.Interval, cfg.Watch.Jitter, cfg.Watch.Debounce
	}
	if eng, err = rotate.New(opts); err != nil {
		return err
	}

	work := &tasks{cancel: cancel, timeout: o.ShutdownTimeout}
	defer func() {
		stopSignals()
		// A shutdown cut short is reported once: returned without a
		// child, logged here otherwise.
		if err := work.shutdown(); err != nil && !errors.Is(result, err) {
			log.Warn("shutdown", "err", err)
		}
		// Only now that no on_change command or child writes any more:
		// what the output writers hold back is written out, on every
		// way out.
		flush()
	}()
	serveErr := make(chan error, 1)
	if srv != nil {
		srv.AddReadyCheck("secrets", eng.Ready)
		work.Go(func() { serveErr <- srv.Serve(ctx) })
	}

	if err := r.initEngine(sigCtx, eng, o); err != nil {
		return err
	}
	tokenTimeout := DefaultInitTimeout
	if o.RetryInit {
		tokenTimeout = o.InitTimeout
	}
	if err := initTokens(sigCtx, tokens, tokenTimeout); err != nil {
		return err
	}
	if tokens != nil {
		// Run only ends with ctx.
		work.Go(func() { _ = tokens.Run(ctx) })
	}

	engErr := make(chan error, 1)
	work.Go(func() { engErr <- eng.Run(ctx) })

	if !hasChild {
		select {
		case <-sigCtx.Done():
			log.Info("shutting down")
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
		log.Warn("could not restore the core limit for the child", "err", err)
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
		log.Error("rotation engine stopped; stopping the child", "err", err)
		cancelSup()
		<-supDone
	case err := <-serveErr:
		log.Error("server stopped; stopping the child", "err", err)
		cancelSup()
		<-supDone
	}
	// The deferred shutdown stops the engine, the server and the
	// on_change commands.
	if runErr != nil {
		return childError(runErr)
	}
	return &ExitError{Code: code}
}

// initEngine runs the first fetch and render: once (exec), or retried with
// backoff until o.InitTimeout (agent). A configuration problem (an invalid
// reference, a provider not in this build, a file that cannot be rendered)
// is not retried, nor is an error marked permanent (backoff.IsPermanent:
// a file refused for what it is, not a regular file, a directory, over
// the size limit), which needs the config or the file changed. A missing
// or unreadable file is retried: it may be mounted or written later.
func (r *Runner) initEngine(ctx context.Context, eng *rotate.Engine, o WatchOptions) error {
	if !o.RetryInit {
		return eng.Init(ctx)
	}
	if o.InitTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.InitTimeout)
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
		case backoff.IsPermanent(err):
			return err
		case errors.Is(err, providers.ErrInvalidReference), errors.Is(err, providers.ErrUnavailable), errors.As(err, &re):
			return backoff.Permanent(err)
		}
		if ctx.Err() == nil {
			last = err
			if ok, _ := every.Allow(); ok {
				r.env.Logger.Warn("initial fetch failed; retrying", "err", err)
			}
		}
		return err
	})
	if err != nil && ctx.Err() != nil {
		if last == nil { // stopped during the first attempt
			last = err
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("initial render not done within --init-timeout %v: %w", o.InitTimeout, last)
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
