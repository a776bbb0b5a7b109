package child

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// forwarded lists the signals Run passes on to the child.
var forwarded = []os.Signal{
	syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH,
}

// Run runs the command opts describes as keyward's child and returns the
// code keyward should exit with: the child's exit status, or 128+N when it
// was killed by signal N. err is nil whenever the child ran, whatever its
// code; when it could not be started, code is 127 or 126 (err an *ExitError)
// or 1, and err says why.
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
// When ctx is done, Run stops the child gracefully (Stop: StopSignal, then
// SIGKILL after StopTimeout) and still returns the child's own code.
//
// As PID 1, Run also reaps orphaned processes re-parented to keyward,
// without ever taking the child's exit status from it; other processes
// keyward starts meanwhile must be started through this package (see
// Child.Start).
//
// Run calls signal.Notify for exactly those seven signals and signal.Stop
// before it returns; all goroutines it started have ended when it returns,
// except a copy from a non-file Stdin that is blocked in Read (see Options).
// Two Runs at once would both forward every signal to their children.
func Run(ctx context.Context, opts Options) (code int, err error) {
	sigs := make(chan os.Signal, 2*len(forwarded))
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)

	c := New(opts)
	if err := c.Start(ctx); err != nil {
		return c.Wait()
	}
	tty := openTerminal()
	if tty >= 0 {
		defer func() { _ = unix.Close(tty) }()
	}

	var stopping sync.WaitGroup
	defer stopping.Wait()
	cancelled := ctx.Done()
	for {
		select {
		case sig := <-sigs:
			c.forward(sig.(syscall.Signal), tty)
		case <-cancelled:
			cancelled = nil
			stopping.Add(1)
			go func() {
				defer stopping.Done()
				if err := c.Stop(context.WithoutCancel(ctx)); err != nil {
					c.log.Warn("stopping the child", "err", err)
				}
			}()
		case <-c.Done():
			return c.Wait()
		}
	}
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
