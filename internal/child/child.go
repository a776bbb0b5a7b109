// Package child is the process side of keyward exec. Exec replaces keyward
// with the workload (nothing of keyward runs afterwards); Child and Run keep
// keyward as the workload's parent instead, to forward signals to it, stop it
// gracefully, restart it, mirror its exit code and, as PID 1, reap zombies.
//
// The child shares keyward's process group and, when they are files, its
// terminal: job control (Ctrl-Z, fg) and TTY programs work as if keyward were
// not there. See Run for how signals are forwarded without doubling the ones
// the terminal already sends to the whole foreground group.
package child

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
)

// Defaults for Options.
const (
	DefaultStopSignal  = syscall.SIGTERM
	DefaultStopTimeout = 10 * time.Second
)

// ErrNotStarted is returned by Signal, Stop and Wait on a Child whose Start
// has not yet been called or has not yet started the process.
var ErrNotStarted = errors.New("child: not started")

// Options describes the command a Child runs.
type Options struct {
	// Args is the command and its arguments. Args[0] is resolved as Exec
	// resolves it, with the PATH from Env. Required.
	Args []string
	// Env is the child's complete environment; nil means keyward's own
	// (os.Environ()), an empty non-nil slice an empty environment.
	Env []string
	// Dir is the child's working directory; empty means keyward's.
	Dir string

	// Stdin, Stdout and Stderr are the child's standard files. An *os.File
	// (os.Stdin, a terminal, a pipe) is handed to the child as it is, so TTY
	// programs see the real terminal; nil means /dev/null. Anything else is
	// connected through a pipe and copied by a goroutine: output is copied
	// until the child and every process that inherited the pipe close it,
	// or at most 2s after the child exited; Stdin is copied until it returns
	// EOF or an error, or until the first write after the child exited (a
	// Read still blocked 2s after the exit is left to return on its own,
	// after Wait). When
	// Stdout and Stderr are the same writer, both use one pipe, so the
	// writer is never called concurrently.
	Stdin          io.Reader
	Stdout, Stderr io.Writer

	// StopSignal is the signal Stop sends first; zero means SIGTERM.
	StopSignal syscall.Signal
	// StopTimeout is how long Stop waits after StopSignal before it sends
	// SIGKILL; zero means 10s.
	StopTimeout time.Duration
	// Logger receives debug lines (start, exit, forwarded signals, reaped
	// orphans) and warnings (a stop escalated to SIGKILL). Nil discards. No
	// line carries the environment.
	Logger *slog.Logger
}

// A Child is one run of a command under keyward's supervision. It is
// single-use: to restart, Stop it and start a new Child (with a new Env if
// secrets rotated). Its methods are safe for concurrent use; a Child must be
// made with New.
//
// The child process stays in keyward's process group. Stop and Signal reach
// only the child itself, not processes it started; a child that runs other
// processes is expected to pass signals on, as a shell's exec or an init
// would.
type Child struct {
	opts Options
	log  *slog.Logger

	// mu guards the fields below. Reaping happens with mu held, so Signal,
	// which also holds it, never signals a pid that was reaped and reused.
	mu      sync.Mutex
	started bool
	pid     int  // 0 until the process exists
	reaped  bool // the process is gone (or never started)
	status  unix.WaitStatus
	waitErr error

	exited chan struct{} // closed when reaped becomes true
	done   chan struct{} // closed when code and err are final and output copied
	wg     sync.WaitGroup
	code   int
	err    error

	io stdio
}

// withDefaults returns opts with a zero StopSignal or StopTimeout set to
// its default, and the logger to use: opts.Logger, or one that discards.
func withDefaults(opts Options) (Options, *slog.Logger) {
	if opts.StopSignal == 0 {
		opts.StopSignal = DefaultStopSignal
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return opts, log
}

// New returns a Child that will run the command opts describes. It checks
// nothing and starts nothing; Start does.
func New(opts Options) *Child {
	opts, log := withDefaults(opts)
	return &Child{
		opts:   opts,
		log:    log,
		exited: make(chan struct{}),
		done:   make(chan struct{}),
	}
}

// Start starts the process and returns once it runs. ctx is checked before
// the start; it does not bound the child's lifetime (use Stop, or Run).
//
// When the command cannot be started, Start returns an *ExitError (code
// CodeNotFound, CodeNotExecutable, or 1 when the system is out of memory or
// processes) or, for a missing Dir or an empty Args, a plain error; Wait
// then returns the same error with its code (1 for a plain error). A second
// call returns an error and changes nothing.
//
// When keyward is PID 1, the exit status is not collected by the Child but
// by a reaper that also reaps the orphaned processes re-parented to keyward
// and hands each Child its own status. While a Child runs in that mode, a
// process keyward starts by other means (os/exec, an SDK's credential
// helper) is reaped as an orphan too and its Wait fails with ECHILD: start
// such processes through this package (a Child with Stdout set to a buffer
// serves for command output).
func (c *Child) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return errors.New("child: already started")
	}
	c.started = true
	c.mu.Unlock()

	if err := c.start(ctx); err != nil {
		code, ok := ExitCode(err)
		if !ok {
			code = 1
		}
		c.mu.Lock()
		c.reaped = true
		c.mu.Unlock()
		close(c.exited)
		c.code, c.err = code, err
		close(c.done)
		return err
	}
	return nil
}

func (c *Child) start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("start child: %w", err)
	}
	if len(c.opts.Args) == 0 {
		return errors.New("start child: no command")
	}
	name := c.opts.Args[0]
	env := c.opts.Env
	if env == nil {
		env = os.Environ()
	}
	path, err := lookPath(name, env)
	if err != nil {
		return err
	}
	if err := c.io.open(c.opts.Stdin, c.opts.Stdout, c.opts.Stderr); err != nil {
		return fmt.Errorf("start %q: %w", name, err)
	}
	attr := &os.ProcAttr{Dir: c.opts.Dir, Env: env, Files: c.io.files[:]}

	var p *os.Process
	pid1 := os.Getpid() == 1
	if pid1 {
		// Register under the reaper's lock, so no reaper round can collect
		// this child before it is known to be ours.
		reaper.mu.Lock()
		p, err = os.StartProcess(path, c.opts.Args, attr)
		if err == nil {
			reaper.children[p.Pid] = c
		}
		reaper.mu.Unlock()
	} else {
		p, err = os.StartProcess(path, c.opts.Args, attr)
	}
	c.io.closeChildEnds()
	if err != nil {
		c.io.closeParentEnds()
		return startError(name, err)
	}
	pid := p.Pid
	// Waiting and signalling go through the pid under c.mu, not through
	// os.Process: release its pidfd.
	_ = p.Release()

	c.mu.Lock()
	c.pid = pid
	c.mu.Unlock()
	c.log.Debug("child started", "pid", pid, "command", name, "pid1", pid1)

	c.io.startCopying(&c.wg)
	c.wg.Add(1)
	if pid1 {
		chld := make(chan os.Signal, 1)
		signal.Notify(chld, syscall.SIGCHLD)
		go c.reapLoop(chld)
	} else {
		go c.waitLoop(pid)
	}
	return nil
}

// startError maps an os.StartProcess failure to the error Start returns.
func startError(name string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) && pe.Op == "chdir" {
		return fmt.Errorf("start %q: %w", name, err)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return execError(name, errno)
	}
	return fmt.Errorf("start %q: %w", name, err)
}

// Pid returns the child's process id, or 0 before it started or when it
// could not be started.
func (c *Child) Pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pid
}

// Signal sends sig (a syscall.Signal) to the child process. It returns
// ErrNotStarted before the process exists and an error wrapping
// os.ErrProcessDone once it has exited. It never signals another process
// that reused the child's pid.
func (c *Child) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("signal child: unsupported signal %v", sig)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.reaped:
		return fmt.Errorf("signal child: %w", os.ErrProcessDone)
	case c.pid == 0:
		return ErrNotStarted
	}
	if err := unix.Kill(c.pid, s); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signal child: %w", os.ErrProcessDone)
		}
		return fmt.Errorf("signal child %d: %w", c.pid, err)
	}
	return nil
}

// Stop stops the child gracefully: it sends StopSignal, then SIGCONT (so a
// stopped child acts on it), waits up to StopTimeout for the child to exit,
// then sends SIGKILL. It returns nil once the process has exited, also when
// it had exited before; the exit code is Wait's.
//
// If ctx ends before the child has exited, Stop sends SIGKILL and returns
// ctx's error without waiting further. Stop returns ErrNotStarted before the
// process exists. Concurrent calls are safe; each waits for the exit.
func (c *Child) Stop(ctx context.Context) error {
	c.mu.Lock()
	started, pid := c.started, c.pid
	c.mu.Unlock()
	if !started {
		return ErrNotStarted
	}
	select {
	case <-c.exited:
		return nil
	default:
	}
	if pid == 0 {
		return ErrNotStarted
	}
	c.log.Debug("stopping child", "pid", pid, "signal", c.opts.StopSignal, "timeout", c.opts.StopTimeout)
	if err := c.Signal(c.opts.StopSignal); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop child: %w", err)
	}
	if c.opts.StopSignal != syscall.SIGKILL && c.opts.StopSignal != syscall.SIGCONT {
		_ = c.Signal(syscall.SIGCONT)
	}
	t := time.NewTimer(c.opts.StopTimeout)
	defer t.Stop()
	select {
	case <-c.exited:
		return nil
	case <-ctx.Done():
		_ = c.Signal(syscall.SIGKILL)
		return fmt.Errorf("stop child: %w", ctx.Err())
	case <-t.C:
	}
	c.log.Warn("child did not exit after its stop signal; killing it", "pid", pid, "signal", c.opts.StopSignal, "timeout", c.opts.StopTimeout)
	if err := c.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop child: %w", err)
	}
	select {
	case <-c.exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop child: %w", ctx.Err())
	}
}

// Done returns a channel that is closed when the child has exited and its
// output has been copied, that is when Wait no longer blocks. Before Start
// the channel exists but is not closed.
func (c *Child) Done() <-chan struct{} { return c.done }

// Wait blocks until the child has exited and its output has been copied, and
// all of the Child's goroutines have ended, then returns the code keyward
// should exit with: the child's exit status, or 128+N when it was killed by
// signal N. err is nil whenever the child ran; it is Start's error when the
// child could not be started (code 127, 126, or 1 for other failures), a
// wait failure (code 1), or ErrNotStarted before Start. A non-zero exit of
// the child is not an error. Wait may be called any number of times, from
// any goroutine.
func (c *Child) Wait() (code int, err error) {
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	if !started {
		return 1, ErrNotStarted
	}
	<-c.done
	c.wg.Wait()
	return c.code, c.err
}

// reap collects the exit status of pid, which has exited, and marks the
// Child as exited. It is called once, by waitLoop or by the PID-1 reaper.
func (c *Child) reap(pid int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ws unix.WaitStatus
	for {
		wpid, err := unix.Wait4(pid, &ws, reapWaitFlags, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			c.waitErr = fmt.Errorf("wait for child %d: %w", pid, err)
		} else if wpid != pid {
			c.waitErr = fmt.Errorf("wait for child %d: not waitable", pid)
		}
		break
	}
	c.status = ws
	c.reaped = true
	close(c.exited)
}

// finish copies the remaining output and publishes the result. It runs on
// the Child's own waiting goroutine, after reap.
func (c *Child) finish() {
	c.io.drain(c.log)
	c.mu.Lock()
	ws, werr, pid := c.status, c.waitErr, c.pid
	c.mu.Unlock()
	switch {
	case werr != nil:
		c.code, c.err = 1, werr
	case ws.Exited():
		c.code = ws.ExitStatus()
	case ws.Signaled():
		c.code = 128 + int(ws.Signal())
	default:
		c.code, c.err = 1, fmt.Errorf("wait for child %d: unexpected status %#x", pid, uint32(ws))
	}
	c.log.Debug("child exited", "pid", pid, "code", c.code)
	close(c.done)
}

// waitLoop waits for pid without reaping it, so the reap can happen under
// c.mu (see Signal), then reaps it. Used when keyward is not PID 1.
func (c *Child) waitLoop(pid int) {
	defer c.wg.Done()
	for {
		err := waitExited(pid)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			c.mu.Lock()
			c.waitErr = fmt.Errorf("wait for child %d: %w", pid, err)
			c.reaped = true
			c.mu.Unlock()
			close(c.exited)
			break
		}
		c.reap(pid)
		break
	}
	c.finish()
}
