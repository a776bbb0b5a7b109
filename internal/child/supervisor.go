package child

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// forwarded lists the signals a Supervisor passes on to the child.
var forwarded = []os.Signal{
	syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH,
}

// ErrStopping is returned by Supervisor.Restart when the supervisor is
// stopping (a forwarded SIGTERM, its context done) or has stopped: no new
// child is started then.
var ErrStopping = errors.New("restart child: the supervisor is stopping")

// Run runs the command opts describes as keyward's child, under a
// Supervisor that never restarts it, and returns the code keyward should
// exit with: the child's exit status, or 128+N when it was killed by signal
// N. err is nil whenever the child ran, whatever its code; when it could not
// be started, code is 127 or 126 (err an *ExitError) or 1, and err says why.
// See Supervisor.Run for the signals, the stop and the terminal.
func Run(ctx context.Context, opts Options) (code int, err error) {
	return NewSupervisor(SupervisorOptions{Options: opts}).Run(ctx)
}

// SupervisorOptions describe the workload a Supervisor runs.
type SupervisorOptions struct {
	// Options describe the command, its files, its stop signal and stop
	// timeout, and the logger. StopTimeout also bounds how long the child
	// has after a SIGTERM that keyward forwarded.
	Options
	// Environ, when set, returns the child's complete environment before
	// every start (the first and each restart), so a restarted child sees
	// the current secrets; Options.Env is then ignored. An error ends Run
	// (code 1) instead of starting the child.
	Environ func() ([]string, error)
	// Rand returns numbers in [0, 1) for the splay of restarts; nil uses
	// math/rand/v2. Tests set it.
	Rand func() float64
}

// A Supervisor runs the workload as keyward's child until it exits, and
// restarts it on request. It is the only child supervisor of keyward:
// exec --supervise (through Run), exec with a watch, and agent -- COMMAND.
// Signal and Restart are safe for concurrent use and act only while Run
// runs; a Supervisor must be made with NewSupervisor and run once.
type Supervisor struct {
	opts SupervisorOptions
	log  *slog.Logger
	reqs chan restartReq
	done chan struct{} // closed when Run returns

	mu  sync.Mutex
	cur *Child // the running child; nil between a restart's stop and start
}

type restartReq struct {
	timeout time.Duration
	result  chan error
}

// NewSupervisor returns a Supervisor for the command opts describes. It
// checks nothing and starts nothing; Run does.
func NewSupervisor(opts SupervisorOptions) *Supervisor {
	var log *slog.Logger
	opts.Options, log = withDefaults(opts.Options)
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	return &Supervisor{opts: opts, log: log, reqs: make(chan restartReq), done: make(chan struct{})}
}

// Signal sends sig to the running child. It fails when no child runs (Run
// not yet started or returned, or a restart between its stop and start).
func (s *Supervisor) Signal(sig os.Signal) error {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c == nil {
		return ErrNotStarted
	}
	return c.Signal(sig)
}

// Restart waits a random time up to splay (so that the replicas of a
// workload that see one rotation do not all restart at once), then asks
// Run to stop the child gracefully (StopSignal, then SIGKILL after
// stopTimeout, or StopTimeout when 0) and to start it again with a fresh
// environment. It returns once the new child runs, or with the error that
// prevented it: ErrStopping when the supervisor stops meanwhile (the old
// child is then not replaced), ctx's error, or a failed start (Run then
// ends with that start's exit code). Concurrent restarts share one stop
// and start. It waits for Run to start, and fails at once after Run
// returned.
func (s *Supervisor) Restart(ctx context.Context, stopTimeout, splay time.Duration) error {
	if splay > 0 {
		d := time.Duration(s.opts.Rand() * float64(splay))
		s.log.Info("restarting the child after a random splay", "splay", d.Round(time.Millisecond))
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.done:
			return ErrStopping
		case <-ctx.Done():
			return fmt.Errorf("restart child: %w", ctx.Err())
		}
	}
	req := restartReq{timeout: stopTimeout, result: make(chan error, 1)}
	select {
	case s.reqs <- req:
	case <-s.done:
		return ErrStopping
	case <-ctx.Done():
		return fmt.Errorf("restart child: %w", ctx.Err())
	}
	select {
	case err := <-req.result:
		return err
	case <-ctx.Done():
		return fmt.Errorf("restart child: %w", ctx.Err())
	}
}

// Run starts the child and supervises it until it exits, and returns the
// code keyward should exit with: the child's status, or 128+N when signal N
// killed it (err is nil whenever the child ran). Restarts are not exits:
// the code is the last child's. When the child cannot be started, Run
// returns code 127 (not found), 126 (not executable) or 1 with the error.
//
// While the child runs, Run forwards to it the signals a user or an
// orchestrator sends to ask a workload for something: SIGINT, SIGTERM,
// SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH. Never SIGCHLD (about
// keyward's own children) nor SIGURG (the Go runtime's preemption signal,
// which keyward receives all the time). SIGTSTP, SIGTTIN and SIGTTOU keep
// their default action, so Ctrl-Z suspends keyward and the child together
// and the shell's fg resumes both.
//
// One exception avoids double delivery: a SIGINT that arrives while keyward
// and the child are both in the foreground process group of keyward's
// controlling terminal is not forwarded, because the terminal sent it
// (Ctrl-C) to the whole group and the child already has it; a second one is
// "force quit" to many programs (the berglas exec bug). The cost: in that
// situation a SIGINT sent with kill(1) to keyward alone is not passed on;
// send it to the process group or to the child. The other signals are
// always forwarded, also the SIGWINCH and SIGQUIT a terminal sends to the
// group, because images use them as stop signals (SIGWINCH for httpd,
// SIGQUIT for nginx) and a second one from a terminal is harmless.
//
// Stopping is bounded. A forwarded SIGTERM is a request to stop: a child
// still running StopTimeout later gets SIGKILL. When ctx is done, Run sends
// StopSignal (and SIGCONT, so that a stopped child acts on it), and SIGKILL
// StopTimeout later. A restart's stop is bounded the same way by its own
// timeout. Once stopping, Run starts no new child: a pending restart fails
// with ErrStopping, and Run returns the last child's code.
//
// As PID 1, the children also reap orphaned processes re-parented to
// keyward (see Child.Start).
//
// Run calls signal.Notify for exactly those seven signals and signal.Stop
// before it returns; all goroutines it started have ended when it returns,
// except a copy from a non-file Stdin that is blocked in Read (see Options).
// Two Runs at once would both forward every signal to their children. Run
// may be called once.
func (s *Supervisor) Run(ctx context.Context) (code int, err error) {
	defer close(s.done)
	sigs := make(chan os.Signal, 2*len(forwarded))
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)

	c, err := s.start(ctx)
	if err != nil {
		return startFailure(c, err)
	}
	tty := openTerminal()
	if tty >= 0 {
		defer func() { _ = unix.Close(tty) }()
	}

	var k killTimer
	defer k.stop()
	var restarts []restartReq // waiting for the old child to exit
	stopping := false
	cancelled := ctx.Done()
	endRestarts := func(err error) {
		for _, r := range restarts {
			r.result <- err
		}
		restarts = nil
	}
	defer func() { endRestarts(ErrStopping) }()

	for {
		select {
		case sig := <-sigs:
			c.forward(sig.(syscall.Signal), tty)
			if sig == syscall.SIGTERM {
				stopping = true
				k.arm(s.opts.StopTimeout)
			}
		case <-k.c:
			k.c = nil
			s.log.Warn("the child did not exit in time after it was asked to stop; killing it", "pid", c.Pid(), "timeout", k.timeout)
			if err := c.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
				s.log.Warn("killing the child", "err", err)
			}
		case req := <-s.reqs:
			if stopping {
				req.result <- ErrStopping
				continue
			}
			restarts = append(restarts, req)
			if len(restarts) > 1 {
				k.arm(s.restartTimeout(req.timeout)) // the earlier deadline wins
				continue
			}
			s.log.Info("restarting the child", "pid", c.Pid(), "signal", s.opts.StopSignal, "timeout", s.restartTimeout(req.timeout))
			s.setCurrent(nil)
			s.sendStop(c)
			k.arm(s.restartTimeout(req.timeout))
		case <-cancelled:
			cancelled = nil
			stopping = true
			if len(restarts) == 0 { // a restart has sent the stop signal already
				s.log.Debug("stopping the child", "pid", c.Pid(), "signal", s.opts.StopSignal, "timeout", s.opts.StopTimeout)
				s.sendStop(c)
			}
			k.arm(s.opts.StopTimeout)
		case <-c.Done():
			if len(restarts) == 0 || stopping {
				s.setCurrent(nil)
				return c.Wait()
			}
			if code, err := c.Wait(); err == nil {
				s.log.Debug("child stopped for restart", "code", code)
			}
			k.stop()
			k = killTimer{}
			nc, err := s.start(ctx)
			if err != nil {
				err = fmt.Errorf("restart child: %w", err)
				endRestarts(err)
				return startFailure(nc, err)
			}
			s.log.Info("child restarted", "pid", nc.Pid())
			c = nc
			endRestarts(nil)
		}
	}
}

// restartTimeout is the stop timeout of a restart asked with timeout.
func (s *Supervisor) restartTimeout(timeout time.Duration) time.Duration {
	if timeout <= 0 {
		return s.opts.StopTimeout
	}
	return timeout
}

// sendStop sends the stop signal to c, and SIGCONT so that a stopped child
// acts on it.
func (s *Supervisor) sendStop(c *Child) {
	if err := c.Signal(s.opts.StopSignal); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.log.Warn("stopping the child", "signal", s.opts.StopSignal, "err", err)
	}
	if s.opts.StopSignal != syscall.SIGKILL && s.opts.StopSignal != syscall.SIGCONT {
		_ = c.Signal(syscall.SIGCONT)
	}
}

// killTimer is the deadline after which a stopping child gets SIGKILL. Of
// two stop requests, the earlier deadline wins.
type killTimer struct {
	t       *time.Timer
	at      time.Time
	timeout time.Duration
	c       <-chan time.Time // nil when not armed or already fired
}

func (k *killTimer) arm(d time.Duration) {
	at := time.Now().Add(d)
	if k.t != nil && !k.at.After(at) {
		return
	}
	k.stop()
	k.t, k.at, k.timeout = time.NewTimer(d), at, d
	k.c = k.t.C
}

func (k *killTimer) stop() {
	if k.t != nil {
		k.t.Stop()
	}
}

// startFailure returns Run's result for a child that could not start.
func startFailure(c *Child, err error) (int, error) {
	if c == nil {
		return 1, err
	}
	code, werr := c.Wait()
	if werr == nil {
		werr = err
	}
	return code, werr
}

func (s *Supervisor) setCurrent(c *Child) {
	s.mu.Lock()
	s.cur = c
	s.mu.Unlock()
}

// start builds the environment and starts a child. The Child is returned
// also when its Start failed, so that its exit code can be read.
func (s *Supervisor) start(ctx context.Context) (*Child, error) {
	opts := s.opts.Options
	if s.opts.Environ != nil {
		env, err := s.opts.Environ()
		if err != nil {
			return nil, fmt.Errorf("child environment: %w", err)
		}
		opts.Env = env
	}
	c := New(opts)
	// Hold mu across the start, so that a Signal racing with it (the child
	// may already have said it is ready) waits for it rather than failing.
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := c.Start(ctx); err != nil {
		return c, err
	}
	s.cur = c
	return c, nil
}

// forward passes sig on to the child, unless the terminal already sent it.
func (c *Child) forward(sig syscall.Signal, tty int) {
	if sig == syscall.SIGINT && c.inForegroundGroup(tty) {
		c.log.Debug("not forwarding signal: the terminal sent it to the child's process group", "signal", sig)
		return
	}
	c.log.Debug("forwarding signal", "signal", sig, "pid", c.Pid())
	if err := c.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.log.Warn("forwarding signal", "signal", sig, "err", err)
	}
}

// inForegroundGroup reports whether keyward and the child are both in the
// foreground process group of the terminal tty (-1: none). A child that
// made its own group (an interactive shell does) is not.
func (c *Child) inForegroundGroup(tty int) bool {
	if tty < 0 {
		return false
	}
	fg, err := unix.IoctlGetInt(tty, unix.TIOCGPGRP)
	if err != nil || fg != unix.Getpgrp() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pid == 0 || c.reaped {
		return false
	}
	pgid, err := unix.Getpgid(c.pid)
	return err == nil && pgid == fg
}

// openTerminal opens keyward's controlling terminal, or returns -1 when it
// has none. A variable so tests run under a terminal behave as without one.
var openTerminal = func() int {
	fd, err := unix.Open("/dev/tty", unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}
