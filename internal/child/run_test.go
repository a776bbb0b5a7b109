package child

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func TestRunExitCode(t *testing.T) {
	tests := []struct {
		name   string
		script string
		want   int
	}{
		{"zero", "exit 0", 0},
		{"three", "exit 3", 3},
		{"max", "exit 255", 255},
		{"killed by SIGKILL", "kill -KILL $$", 128 + 9},
		{"killed by SIGTERM", "kill -TERM $$", 128 + 15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, err := Run(t.Context(), Options{Args: []string{"/bin/sh", "-c", tt.script}})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if code != tt.want {
				t.Errorf("code = %d, want %d", code, tt.want)
			}
		})
	}
}

// The forwarding tests send signals to the test process itself, so they
// must not run in parallel with anything that runs a child.

func TestRunForwardsSignals(t *testing.T) {
	for _, sig := range []struct {
		name string
		sig  syscall.Signal
	}{
		{"INT", syscall.SIGINT},
		{"TERM", syscall.SIGTERM},
		{"HUP", syscall.SIGHUP},
		{"QUIT", syscall.SIGQUIT},
		{"USR1", syscall.SIGUSR1},
		{"USR2", syscall.SIGUSR2},
		{"WINCH", syscall.SIGWINCH},
	} {
		t.Run(sig.name, func(t *testing.T) {
			r := startRun(t, t.Context(), Options{Args: []string{"/bin/sh", "-c", trapScript(sig.name)}})
			r.expect("ready")
			if err := syscall.Kill(syscall.Getpid(), sig.sig); err != nil {
				t.Fatal(err)
			}
			r.expect(sig.name)
			r.stdin.Close()
			r.expect("bye")
			if code, err := r.wait(); code != 0 || err != nil {
				t.Fatalf("Run = %d, %v; want 0, nil", code, err)
			}
		})
	}
}

func TestRunDoesNotForwardURG(t *testing.T) {
	r := startRun(t, t.Context(), Options{Args: []string{"/bin/sh", "-c", trapScript("URG", "USR1")}})
	r.expect("ready")
	// SIGURG is the Go runtime's preemption signal: it must stay keyward's.
	// Had it been forwarded, it would reach the child before the USR1 sent
	// after it, and the child would print URG before bye.
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGURG); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	r.expect("USR1")
	r.stdin.Close()
	r.expect("bye")
	if code, err := r.wait(); code != 0 || err != nil {
		t.Fatalf("Run = %d, %v; want 0, nil", code, err)
	}
	rest, _ := io.ReadAll(r.out)
	if len(rest) != 0 {
		t.Errorf("child printed more after bye: %q", rest)
	}
}

func TestRunStopsWhenContextIsDone(t *testing.T) {
	t.Run("child exits on SIGTERM", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		r := startRun(t, ctx, Options{Args: []string{"/bin/sh", "-c", "trap 'echo TERM; exit 0' TERM\n" + trapScript()}})
		r.expect("ready")
		cancel()
		r.expect("TERM")
		if code, err := r.wait(); code != 0 || err != nil {
			t.Fatalf("Run = %d, %v; want 0, nil", code, err)
		}
	})
	t.Run("child ignores SIGTERM", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		const timeout = 200 * time.Millisecond
		r := startRun(t, ctx, Options{
			Args:        []string{"/bin/sh", "-c", "trap '' TERM\n" + trapScript()},
			StopTimeout: timeout,
		})
		r.expect("ready")
		start := time.Now()
		cancel()
		code, err := r.wait()
		if code != 128+9 || err != nil {
			t.Fatalf("Run = %d, %v; want 137, nil", code, err)
		}
		if d := time.Since(start); d < timeout {
			t.Errorf("killed after %v, before StopTimeout %v", d, timeout)
		}
	})
	t.Run("custom stop signal", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		r := startRun(t, ctx, Options{
			Args:       []string{"/bin/sh", "-c", "trap 'echo USR2; exit 4' USR2\n" + trapScript()},
			StopSignal: syscall.SIGUSR2,
		})
		r.expect("ready")
		cancel()
		r.expect("USR2")
		if code, err := r.wait(); code != 4 || err != nil {
			t.Fatalf("Run = %d, %v; want 4, nil", code, err)
		}
	})
}

func TestRunStartFailure(t *testing.T) {
	t.Parallel()
	code, err := Run(t.Context(), Options{Args: []string{"keyward-no-such-command"}})
	if code != CodeNotFound {
		t.Errorf("code = %d, want %d", code, CodeNotFound)
	}
	const want = `exec "keyward-no-such-command": executable file not found in $PATH`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
	if !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("err = %v, want one that is exec.ErrNotFound", err)
	}
	if c, ok := ExitCode(err); !ok || c != CodeNotFound {
		t.Errorf("ExitCode(err) = %d, %v; want 127, true", c, ok)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	code, err = Run(ctx, Options{Args: []string{"/bin/sh", "-c", "exit 0"}})
	if code != 1 || !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a done context = %d, %v; want 1, context.Canceled", code, err)
	}
}

// TestRunKillsAfterForwardedTERM: a SIGTERM forwarded to a child that
// ignores it is followed by SIGKILL after StopTimeout, as under a watch
// (keyward exec --supervise --stop-timeout).
func TestRunKillsAfterForwardedTERM(t *testing.T) {
	r := startRun(t, t.Context(), Options{
		Args:        []string{"/bin/sh", "-c", "trap 'echo TERM' TERM\n" + trapScript()},
		StopTimeout: 200 * time.Millisecond,
	})
	r.expect("ready")
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r.expect("TERM")
	if code, err := r.wait(); code != 128+int(syscall.SIGKILL) || err != nil {
		t.Fatalf("Run = %d, %v; want 137 (killed after StopTimeout)", code, err)
	}
}
