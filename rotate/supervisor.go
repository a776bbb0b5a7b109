package rotate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keyward/keyward/internal/child"
)

// forwarded lists the signals a Supervisor passes on to the child, as
// keyward exec --supervise does (internal/child.Run).
var forwarded = []os.Signal{
	syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH,
}

// DefaultStopTimeout is how long a child has after its stop signal before
// SIGKILL, when SupervisorOptions.StopTimeout is 0.
const DefaultStopTimeout = child.DefaultStopTimeout

// SupervisorOptions describe the workload a Supervisor runs.
type SupervisorOptions struct {
	// Args is the command and its arguments. Required.
	Args []string
	// Env returns the child's complete environment; it is called before
	// every start, so a restarted child sees the current secrets.
	// Required.
	Env func() ([]string, error)
	// Dir is the child's working directory; empty means keyward's.
	Dir string
	// Stdin, Stdout and Stderr are the child's standard files, as in
	// internal/child.Options.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// StopSignal stops the child (restart, shutdown); 0 means SIGTERM.
	StopSignal syscall.Signal
	// StopTimeout is how long the child has after its stop signal before
	// SIGKILL, at shutdown and for a restart without its own timeout; 0
	// means DefaultStopTimeout. It also bounds keyward's shutdown after a
	// SIGTERM that it forwarded.
	StopTimeout time.Duration
	// Logger receives the supervisor's lines; nil discards them.
	Logger *slog.Logger
}

// Supervisor runs the workload as keyward's child and restarts it on
// request: the restart of an on_change action. It implements Child. Run
// must be running for Signal and Restart to act.
type Supervisor struct {
	opts SupervisorOptions
	log  *slog.Logger
	reqs chan restartReq
	done chan struct{} // closed when Run returns

	mu  sync.Mutex
	cur *child.Child
}

var _ Child = (*Supervisor)(nil)

type restartReq struct {
	timeout time.Duration
	result  chan error
}

// NewSupervisor returns a Supervisor for the command opts describes. It
// starts nothing.
func NewSupervisor(opts SupervisorOptions) *Supervisor {
	if opts.StopSignal == 0 {
		opts.StopSignal = syscall.SIGTERM
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Supervisor{opts: opts, log: log, reqs: make(chan restartReq), done: make(chan struct{})}
}

// Signal sends sig to the running child. It fails when no child runs.
func (s *Supervisor) Signal(sig os.Signal) error {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	if c == nil {
		return errors.New("signal child: not started")
	}
	return c.Signal(sig)
}

// Restart asks Run to stop the child gracefully (its stop signal, then
// SIGKILL after stopTimeout, or the supervisor's StopTimeout when 0) and to
// start it again with a fresh environment. It returns once the new child
// runs, or with the error that prevented it (the supervisor then ends, with
// the failed start's exit code). It fails at once when Run is not running.
func (s *Supervisor) Restart(ctx context.Context, stopTimeout time.Duration) error {
	req := restartReq{timeout: stopTimeout, result: make(chan error, 1)}
	select {
	case s.reqs <- req:
	case <-s.done:
		return errors.New("restart child: the supervisor has stopped")
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

// Run starts the child and supervises it until it exits on its own, and
// returns the code keyward should exit with: the child's status, or 128+N
// when signal N killed it (err is nil whenever the child ran). Meanwhile it
// forwards INT, TERM, HUP, QUIT, USR1, USR2 and WINCH to the child (not an
// INT that the terminal already sent to the whole foreground group), kills
// the child when it has not exited StopTimeout after a forwarded TERM, and
// serves Restart. When ctx is done, Run stops the child gracefully and
// returns its code. Restarts are not exits: the code is the last child's.
//
// When the child cannot be started, Run returns code 127 (not found), 126
// (not executable) or 1 with the error. Run may be called once; it returns
// after every goroutine it started has exited.
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
	var kill *time.Timer
	var killC <-chan time.Time
	defer func() {
		if kill != nil {
			kill.Stop()
		}
	}()
	for {
		select {
		case sig := <-sigs:
			s.forward(c, sig.(syscall.Signal), tty)
			if sig == syscall.SIGTERM && kill == nil {
				kill = time.NewTimer(s.opts.StopTimeout)
				killC = kill.C
			}
		case <-killC:
			killC = nil
			s.log.Warn("child did not exit after SIGTERM; killing it", "pid", c.Pid(), "timeout", s.opts.StopTimeout)
			_ = c.Signal(syscall.SIGKILL)
		case req := <-s.reqs:
			nc, err := s.restart(ctx, c, req.timeout)
			req.result <- err
			if err != nil {
				return startFailure(nc, err)
			}
			c = nc
		case <-c.Done():
			s.setCurrent(nil)
			return c.Wait()
		case <-ctx.Done():
			s.stop(ctx, c, s.opts.StopTimeout)
			s.setCurrent(nil)
			return c.Wait()
		}
	}
}

// startFailure returns Run's result for a child that could not start.
func startFailure(c *child.Child, err error) (int, error) {
	if c == nil {
		return 1, err
	}
	code, werr := c.Wait()
	if werr == nil {
		werr = err
	}
	return code, werr
}

func (s *Supervisor) setCurrent(c *child.Child) {
	s.mu.Lock()
	s.cur = c
	s.mu.Unlock()
}

// start builds the environment and starts a child.
func (s *Supervisor) start(ctx context.Context) (*child.Child, error) {
	env, err := s.opts.Env()
	if err != nil {
		return nil, fmt.Errorf("child environment: %w", err)
	}
	c := child.New(child.Options{
		Args:       s.opts.Args,
		Env:        env,
		Dir:        s.opts.Dir,
		Stdin:      s.opts.Stdin,
		Stdout:     s.opts.Stdout,
		Stderr:     s.opts.Stderr,
		StopSignal: s.opts.StopSignal,
		// Stop is always called with a deadline (see stop), which is what
		// bounds it; this only keeps child's own timer out of the way.
		StopTimeout: 24 * time.Hour,
		Logger:      s.log,
	})
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

// stop stops c gracefully within timeout, then kills it, and waits for it.
func (s *Supervisor) stop(ctx context.Context, c *child.Child, timeout time.Duration) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := c.Stop(sctx); err != nil {
		s.log.Warn("child did not exit after its stop signal; killed it", "pid", c.Pid(), "signal", s.opts.StopSignal, "timeout", timeout)
	}
	<-c.Done()
}

// restart stops c and starts a new child.
func (s *Supervisor) restart(ctx context.Context, c *child.Child, timeout time.Duration) (*child.Child, error) {
	if timeout <= 0 {
		timeout = s.opts.StopTimeout
	}
	s.log.Info("restarting the child", "pid", c.Pid(), "signal", s.opts.StopSignal, "timeout", timeout)
	s.setCurrent(nil)
	s.stop(ctx, c, timeout)
	if code, err := c.Wait(); err == nil {
		s.log.Debug("child stopped for restart", "code", code)
	}
	nc, err := s.start(ctx)
	if err != nil {
		return nc, fmt.Errorf("restart child: %w", err)
	}
	s.log.Info("child restarted", "pid", nc.Pid())
	return nc, nil
}

// forward passes sig on to c, unless the terminal already sent it.
func (s *Supervisor) forward(c *child.Child, sig syscall.Signal, tty int) {
	if sig == syscall.SIGINT && inForegroundGroup(c.Pid(), tty) {
		s.log.Debug("not forwarding signal: the terminal sent it to the child's process group", "signal", sig)
		return
	}
	s.log.Debug("forwarding signal", "signal", sig, "pid", c.Pid())
	if err := c.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.log.Warn("forwarding signal", "signal", sig, "err", err)
	}
}

// inForegroundGroup reports whether keyward and process pid are both in
// the foreground process group of the terminal tty (-1: none).
func inForegroundGroup(pid, tty int) bool {
	if tty < 0 || pid == 0 {
		return false
	}
	fg, err := unix.IoctlGetInt(tty, unix.TIOCGPGRP)
	if err != nil || fg != unix.Getpgrp() {
		return false
	}
	pgid, err := unix.Getpgid(pid)
	return err == nil && pgid == fg
}

// openTerminal opens keyward's controlling terminal, or returns -1. A
// variable so tests behave the same with and without a terminal.
var openTerminal = func() int {
	fd, err := unix.Open("/dev/tty", unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}
