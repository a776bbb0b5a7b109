package child

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// These tests run real processes (sh), so they wait on the child's output
// through a pipe, with a deadline, instead of using synctest.

const lineTimeout = 10 * time.Second

// script is a child that announces itself with its generation, reports
// the signals in traps, and waits in a loop that traps interrupt.
func script(traps string) []string {
	return []string{"sh", "-c", traps + `; echo "start $GEN"; while :; do sleep 1 & wait $!; done`}
}

// supervised runs a Supervisor over args until the test ends. Each start
// gets GEN=1, 2, …; lines the child prints arrive on the returned channel.
type supervised struct {
	t     *testing.T
	s     *Supervisor
	lines chan string
	code  chan int
	err   chan error
	gen   atomic.Int32
}

func superviseTest(t *testing.T, args []string, tweak func(*SupervisorOptions)) (*supervised, context.CancelFunc) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	sv := &supervised{t: t, lines: make(chan string, 100), code: make(chan int, 1), err: make(chan error, 1)}
	opts := SupervisorOptions{
		Options: Options{
			Args:        args,
			Stdout:      w,
			Stderr:      w,
			StopTimeout: 5 * time.Second,
		},
		Environ: func() ([]string, error) {
			return []string{"PATH=" + os.Getenv("PATH"), fmt.Sprintf("GEN=%d", sv.gen.Add(1))}, nil
		},
	}
	if tweak != nil {
		tweak(&opts)
	}
	sv.s = NewSupervisor(opts)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			sv.lines <- sc.Text()
		}
		close(sv.lines)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		code, err := sv.s.Run(ctx)
		w.Close()
		sv.code <- code
		sv.err <- err
	}()
	t.Cleanup(func() {
		cancel()
		<-sv.s.done
		r.Close()
	})
	return sv, cancel
}

// expect waits for the next line of the child's output to be want.
func (sv *supervised) expect(want string) {
	sv.t.Helper()
	select {
	case got, ok := <-sv.lines:
		if !ok {
			sv.t.Fatalf("child output ended, want %q", want)
		}
		if got != want {
			sv.t.Fatalf("child said %q, want %q", got, want)
		}
	case <-time.After(lineTimeout):
		sv.t.Fatalf("child did not say %q", want)
	}
}

func (sv *supervised) result() (int, error) {
	sv.t.Helper()
	select {
	case code := <-sv.code:
		return code, <-sv.err
	case <-time.After(lineTimeout):
		sv.t.Fatal("Run did not return")
		return 0, nil
	}
}

func TestSupervisorExitCode(t *testing.T) {
	t.Parallel()
	sv, _ := superviseTest(t, []string{"sh", "-c", "echo hi; exit 7"}, nil)
	sv.expect("hi")
	if code, err := sv.result(); code != 7 || err != nil {
		t.Fatalf("Run = %d, %v", code, err)
	}
	if err := sv.s.Signal(syscall.SIGHUP); err == nil {
		t.Fatal("Signal after the child exited succeeded")
	}
	if err := sv.s.Restart(context.Background(), 0, 0); err == nil {
		t.Fatal("Restart after Run returned succeeded")
	}
}

func TestSupervisorStartFailure(t *testing.T) {
	t.Parallel()
	sv, _ := superviseTest(t, []string{"no-such-command-kw"}, nil)
	code, err := sv.result()
	if code != 127 || err == nil || !strings.Contains(err.Error(), "no-such-command-kw") {
		t.Fatalf("Run = %d, %v", code, err)
	}
}

func TestSupervisorSignalAndRestart(t *testing.T) {
	t.Parallel()
	sv, cancel := superviseTest(t, script(`trap 'echo "hup $GEN"' HUP; trap 'echo "term $GEN"; exit 0' TERM`), nil)
	sv.expect("start 1")
	if err := sv.s.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	sv.expect("hup 1")
	if err := sv.s.Restart(context.Background(), 0, 0); err != nil {
		t.Fatal(err)
	}
	sv.expect("term 1")
	sv.expect("start 2") // a fresh environment
	if err := sv.s.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	sv.expect("hup 2")
	cancel()
	sv.expect("term 2")
	if code, err := sv.result(); code != 0 || err != nil {
		t.Fatalf("Run after cancel = %d, %v", code, err)
	}
}

// TestSupervisorRestartTimeout: a child that ignores its stop signal is
// killed after the restart's timeout.
func TestSupervisorRestartTimeout(t *testing.T) {
	t.Parallel()
	sv, _ := superviseTest(t, script(`trap 'echo "ignored $GEN"' TERM`), func(o *SupervisorOptions) {
		o.StopTimeout = 300 * time.Millisecond // for the shutdown at the end
	})
	sv.expect("start 1")
	start := time.Now()
	if err := sv.s.Restart(context.Background(), 200*time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
	sv.expect("ignored 1")
	sv.expect("start 2")
	if d := time.Since(start); d < 200*time.Millisecond || d > 4*time.Second {
		t.Fatalf("restart took %v with a 200ms timeout", d)
	}
}

func TestSupervisorRestartFailure(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	sv, _ := superviseTest(t, script(`trap 'exit 0' TERM`), func(o *SupervisorOptions) {
		env := o.Environ
		o.Environ = func() ([]string, error) {
			if fail.Load() {
				return nil, errors.New("secret store down")
			}
			return env()
		}
	})
	sv.expect("start 1")
	fail.Store(true)
	if err := sv.s.Restart(context.Background(), 0, 0); err == nil || !strings.Contains(err.Error(), "secret store down") {
		t.Fatalf("Restart = %v", err)
	}
	if code, err := sv.result(); code != 1 || err == nil {
		t.Fatalf("Run = %d, %v", code, err)
	}
}

// TestSupervisorForwardsSignals sends signals to the test process itself
// while Run has them registered; not parallel, since other tests must not
// run without a handler then.
func TestSupervisorForwardsSignals(t *testing.T) {
	sv, _ := superviseTest(t, script(`trap 'echo usr1' USR1; trap 'echo "term ignored"' TERM`), func(o *SupervisorOptions) {
		o.StopTimeout = 300 * time.Millisecond
	})
	sv.expect("start 1") // Run has called signal.Notify before starting the child
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	sv.expect("usr1")
	start := time.Now()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sv.expect("term ignored")
	code, err := sv.result()
	if code != 128+int(syscall.SIGKILL) || err != nil {
		t.Fatalf("Run = %d, %v; want 137 (killed after the stop timeout)", code, err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Fatalf("shutdown after SIGTERM took %v with a 300ms stop timeout", d)
	}
}

// TestSupervisorStopDuringRestart: when the supervisor is stopped while a
// restart waits for the old child, the stop's shorter timeout applies, the
// restart fails with ErrStopping and no new child starts.
func TestSupervisorStopDuringRestart(t *testing.T) {
	t.Parallel()
	sv, cancel := superviseTest(t, script(`trap 'echo "ignored $GEN"' TERM`), func(o *SupervisorOptions) {
		o.StopTimeout = 200 * time.Millisecond
	})
	sv.expect("start 1")
	restarted := make(chan error, 1)
	go func() { restarted <- sv.s.Restart(context.Background(), time.Hour, 0) }()
	sv.expect("ignored 1")
	cancel()
	select {
	case err := <-restarted:
		if !errors.Is(err, ErrStopping) {
			t.Fatalf("Restart = %v, want ErrStopping", err)
		}
	case <-time.After(lineTimeout):
		t.Fatal("Restart did not return after the supervisor was stopped")
	}
	code, err := sv.result()
	if code != 128+int(syscall.SIGKILL) || err != nil {
		t.Fatalf("Run = %d, %v; want 137 (the old child killed after the stop timeout)", code, err)
	}
	for l := range sv.lines {
		t.Errorf("the child printed %q after the stop; want no new child", l)
	}
}

// TestSupervisorConcurrentRestarts: a restart asked while another waits
// for the old child shares its stop and start.
func TestSupervisorConcurrentRestarts(t *testing.T) {
	t.Parallel()
	sv, _ := superviseTest(t, script(`trap 'echo "hup $GEN"' HUP; trap 'echo "ignored $GEN"' TERM`), func(o *SupervisorOptions) {
		o.StopTimeout = 200 * time.Millisecond // for the shutdown at the end
	})
	sv.expect("start 1")
	first := make(chan error, 1)
	go func() { first <- sv.s.Restart(context.Background(), time.Hour, 0) }()
	sv.expect("ignored 1")
	if err := sv.s.Restart(context.Background(), 100*time.Millisecond, 0); err != nil {
		t.Fatalf("second Restart: %v", err)
	}
	if err := <-first; err != nil {
		t.Fatalf("first Restart: %v", err)
	}
	sv.expect("start 2")
	if err := sv.s.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	sv.expect("hup 2") // not a third child
}
