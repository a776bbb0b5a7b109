package rotate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keyward/keyward/internal/child"
)

// ActionKind is what an on_change action does.
type ActionKind int

// The kinds of on_change action.
const (
	// ActionNone does nothing beyond re-rendering.
	ActionNone ActionKind = iota
	// ActionSignal sends Action.Signal to the child.
	ActionSignal
	// ActionRestart restarts the child gracefully with a fresh environment.
	ActionRestart
	// ActionCommand runs Action.Command.
	ActionCommand
)

// String returns the kind's name as used in logs and metric labels.
func (k ActionKind) String() string {
	switch k {
	case ActionSignal:
		return "signal"
	case ActionRestart:
		return "restart"
	case ActionCommand:
		return "command"
	}
	return "none"
}

// DefaultCommandTimeout bounds an on_change command without a timeout.
const DefaultCommandTimeout = 30 * time.Second

// Action is one on_change action.
type Action struct {
	Kind ActionKind
	// Signal is sent to the child (ActionSignal).
	Signal syscall.Signal
	// Command is run without a shell (ActionCommand).
	Command []string
	// Timeout is, for ActionRestart, the time the child has after its stop
	// signal before SIGKILL (0: the Child's default); for ActionCommand,
	// how long the command may run (0: DefaultCommandTimeout).
	Timeout time.Duration
	// Splay is, for ActionRestart, the upper bound of a random delay
	// before the restart.
	Splay time.Duration
}

// String describes the action for logs: "signal HUP", "restart",
// "command /bin/reload", "none". Command arguments are left out.
func (a Action) String() string {
	switch a.Kind {
	case ActionSignal:
		return "signal " + strings.TrimPrefix(unixSignalName(a.Signal), "SIG")
	case ActionCommand:
		if len(a.Command) > 0 {
			return "command " + a.Command[0]
		}
	}
	return a.Kind.String()
}

func unixSignalName(s syscall.Signal) string {
	if n := unix.SignalName(s); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(s))
}

// Child is the workload process the on_change actions act on.
// internal/child's Supervisor implements it; tests fake it.
type Child interface {
	// Signal sends sig to the running child.
	Signal(sig os.Signal) error
	// Restart waits a random time up to splay, then stops the child
	// gracefully (its stop signal, then SIGKILL after stopTimeout, or the
	// child's default when 0) and starts it again with a fresh
	// environment. It returns once the new child runs.
	Restart(ctx context.Context, stopTimeout, splay time.Duration) error
}

var _ Child = (*child.Supervisor)(nil)

// CommandRunner runs an on_change command: argv without a shell, stopped
// after timeout. It returns an error when the command cannot start, fails
// or times out; the error names the program, never its output.
type CommandRunner func(ctx context.Context, argv []string, timeout time.Duration) error

// ChildCommandRunner returns a CommandRunner that starts commands through
// internal/child (so that, as PID 1, keyward's reaper and the command's own
// wait do not race), with environment env (nil: keyward's own), stdout and
// stderr as given (nil: discarded). A command still running at its timeout
// or when ctx ends gets SIGTERM, then SIGKILL 5 s later.
func ChildCommandRunner(env []string, stdout, stderr io.Writer, log *slog.Logger) CommandRunner {
	return func(ctx context.Context, argv []string, timeout time.Duration) error {
		if timeout <= 0 {
			timeout = DefaultCommandTimeout
		}
		c := child.New(child.Options{
			Args:        argv,
			Env:         env,
			Stdout:      stdout,
			Stderr:      stderr,
			StopTimeout: 5 * time.Second,
			Logger:      log,
		})
		if err := c.Start(ctx); err != nil {
			return fmt.Errorf("on_change command %s: %w", argv[0], err)
		}
		t := time.NewTimer(timeout)
		defer t.Stop()
		var stopErr error
		select {
		case <-c.Done():
		case <-t.C:
			stopErr = fmt.Errorf("on_change command %s: timed out after %v", argv[0], timeout)
		case <-ctx.Done():
			stopErr = fmt.Errorf("on_change command %s: %w", argv[0], ctx.Err())
		}
		if stopErr != nil {
			_ = c.Stop(context.WithoutCancel(ctx))
			_, _ = c.Wait()
			return stopErr
		}
		code, err := c.Wait()
		if err != nil {
			return fmt.Errorf("on_change command %s: %w", argv[0], err)
		}
		if code != 0 {
			return fmt.Errorf("on_change command %s: exited with code %d", argv[0], code)
		}
		return nil
	}
}

// plan is the set of actions one apply runs: at most one restart, each
// distinct signal once, each distinct command once.
type plan struct {
	restart  *Action
	signals  []syscall.Signal
	commands []Action
}

func (p *plan) add(a Action) {
	switch a.Kind {
	case ActionRestart:
		if p.restart == nil {
			r := a
			p.restart = &r
			return
		}
		// Several restarts asked for: the most patient timeout and splay.
		p.restart.Timeout = max(p.restart.Timeout, a.Timeout)
		p.restart.Splay = max(p.restart.Splay, a.Splay)
	case ActionSignal:
		if !slices.Contains(p.signals, a.Signal) {
			p.signals = append(p.signals, a.Signal)
		}
	case ActionCommand:
		for i, c := range p.commands {
			if slices.Equal(c.Command, a.Command) {
				p.commands[i].Timeout = max(c.Timeout, a.Timeout)
				return
			}
		}
		p.commands = append(p.commands, a)
	}
}

func (p *plan) empty() bool { return p.restart == nil && len(p.signals) == 0 && len(p.commands) == 0 }

// errNoChild is returned by a signal or restart action when keyward runs
// no child.
var errNoChild = errors.New("no child process to act on (run the workload with keyward exec or keyward agent -- COMMAND)")
