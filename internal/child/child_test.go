package child

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestChildOutput(t *testing.T) {
	tmp := t.TempDir()
	tests := []struct {
		name       string
		opts       Options
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{
			name:       "separate writers",
			opts:       Options{Args: []string{"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}},
			wantCode:   3,
			wantStdout: "out\n",
			wantStderr: "err\n",
		},
		{
			name:       "stdin from a reader",
			opts:       Options{Args: []string{"cat"}, Stdin: strings.NewReader("hello\nworld\n")},
			wantStdout: "hello\nworld\n",
		},
		{
			name:       "environment and PATH from Env",
			opts:       Options{Args: []string{"sh", "-c", `echo "$KW_TEST"; env | grep -c .`}, Env: []string{"PATH=/usr/bin:/bin", "KW_TEST=x y"}},
			wantStdout: "x y\n3\n", // KW_TEST, PATH, and the PWD sh adds
		},
		{
			name:       "working directory",
			opts:       Options{Args: []string{"/bin/pwd"}, Dir: tmp},
			wantStdout: tmp + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			tt.opts.Stdout, tt.opts.Stderr = &stdout, &stderr
			c := New(tt.opts)
			if err := c.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			code, err := c.Wait()
			if code != tt.wantCode || err != nil {
				t.Fatalf("Wait = %d, %v; want %d, nil (stderr %q)", code, err, tt.wantCode, stderr.String())
			}
			if stdout.String() != tt.wantStdout || stderr.String() != tt.wantStderr {
				t.Errorf("stdout %q, stderr %q; want %q, %q", stdout.String(), stderr.String(), tt.wantStdout, tt.wantStderr)
			}
		})
	}
}

func TestChildSharedOutputKeepsOrder(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	c := New(Options{Args: []string{"/bin/sh", "-c", "for i in 1 2 3; do echo out$i; echo err$i >&2; done"}, Stdout: &buf, Stderr: &buf})
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code, err := c.Wait(); code != 0 || err != nil {
		t.Fatalf("Wait = %d, %v", code, err)
	}
	if want := "out1\nerr1\nout2\nerr2\nout3\nerr3\n"; buf.String() != want {
		t.Errorf("output %q, want %q", buf.String(), want)
	}
}

// A process the child left behind may keep the output pipe open; Wait
// returns anyway, ioDrainTimeout after the child exited.
func TestChildOutputHeldByOrphan(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	c := New(Options{Args: []string{"/bin/sh", "-c", "sleep 60 & echo $!"}, Stdout: &buf})
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, err := c.Wait()
	elapsed := time.Since(start)
	if pid, perr := strconv.Atoi(strings.TrimSpace(buf.String())); perr == nil {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if code != 0 || err != nil {
		t.Fatalf("Wait = %d, %v", code, err)
	}
	// Without the drain timeout Wait would last as long as the orphan (60 s).
	if limit := ioDrainTimeout + 10*time.Second; elapsed > limit {
		t.Errorf("Wait returned after %v, want within %v of the child's exit", elapsed, limit)
	}
	if buf.Len() == 0 {
		t.Error("output before the exit was lost")
	}
}

func TestChildLifecycle(t *testing.T) {
	t.Parallel()
	c := New(Options{Args: []string{"/bin/sh", "-c", "exit 2"}})
	if err := c.Signal(syscall.SIGTERM); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Signal before Start = %v, want ErrNotStarted", err)
	}
	if err := c.Stop(t.Context()); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Stop before Start = %v, want ErrNotStarted", err)
	}
	if _, err := c.Wait(); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Wait before Start = %v, want ErrNotStarted", err)
	}
	if c.Pid() != 0 {
		t.Errorf("Pid before Start = %d", c.Pid())
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if c.Pid() <= 0 {
		t.Errorf("Pid after Start = %d", c.Pid())
	}
	if err := c.Start(t.Context()); err == nil {
		t.Error("second Start succeeded")
	}
	<-c.Done()
	for range 2 {
		if code, err := c.Wait(); code != 2 || err != nil {
			t.Errorf("Wait = %d, %v; want 2, nil", code, err)
		}
	}
	if err := c.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after exit = %v, want os.ErrProcessDone", err)
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Errorf("Stop after exit = %v, want nil", err)
	}
	if err := c.Signal(os.Interrupt); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal(os.Interrupt) after exit = %v", err)
	}
}

// Signal, Stop and Wait from many goroutines at once (run with -race).
func TestChildConcurrentUse(t *testing.T) {
	t.Parallel()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inW.Close()
	c := New(Options{Args: []string{"cat"}, Stdin: inR, StopTimeout: 5 * time.Second})
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	inR.Close()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				if err := c.Signal(syscall.Signal(0)); err != nil && !errors.Is(err, os.ErrProcessDone) {
					t.Errorf("Signal: %v", err)
				}
			}
		})
		wg.Go(func() {
			if code, err := c.Wait(); code != 128+int(syscall.SIGTERM) || err != nil {
				t.Errorf("Wait = %d, %v; want 143, nil", code, err)
			}
		})
	}
	for range 3 {
		wg.Go(func() {
			if err := c.Stop(t.Context()); err != nil {
				t.Errorf("Stop: %v", err)
			}
		})
	}
	wg.Wait()
}

// Stop continues a stopped child, which can then act on its stop signal.
func TestChildStopContinuesStoppedChild(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	c := New(Options{
		Args:        []string{"/bin/sh", "-c", "trap 'echo TERM; exit 0' TERM; kill -STOP $$; echo continued without TERM; exit 1"},
		Stdout:      &out,
		StopTimeout: time.Minute,
	})
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitForState(t, c.Pid(), 'T')
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code, err := c.Wait(); code != 0 || err != nil || out.String() != "TERM\n" {
		t.Fatalf("Wait = %d, %v, output %q; want 0, nil, TERM", code, err, out.String())
	}
}

// Stop with a context that ends first kills the child and reports ctx's
// error.
func TestChildStopContextDone(t *testing.T) {
	t.Parallel()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inW.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	c := New(Options{Args: []string{"/bin/sh", "-c", "trap '' TERM; echo ready; cat"}, Stdin: inR, Stdout: outW, StopTimeout: time.Minute})
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	inR.Close()
	outW.Close()
	if _, err := io.ReadFull(outR, make([]byte, len("ready\n"))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := c.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop = %v, want context.DeadlineExceeded", err)
	}
	if code, err := c.Wait(); code != 128+9 || err != nil {
		t.Errorf("Wait = %d, %v; want 137, nil", code, err)
	}
}

// waitForState polls /proc until pid is in state (R, S, T, Z...).
func waitForState(t *testing.T, pid int, state byte) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] == state {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("process %d never reached state %c", pid, state)
}

func TestChildStartFailure(t *testing.T) {
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		opts     Options
		wantCode int
		wantErr  string
	}{
		{"not in PATH", Options{Args: []string{"keyward-no-such-command"}}, 127, `exec "keyward-no-such-command": executable file not found in $PATH`},
		{"missing path", Options{Args: []string{"/nonexistent/cmd"}}, 127, `exec "/nonexistent/cmd": no such file or directory`},
		{"not executable", Options{Args: []string{noexec}}, 126, `exec "` + noexec + `": permission denied`},
		{"directory", Options{Args: []string{dir}}, 126, `exec "` + dir + `": permission denied`},
		{"no command", Options{}, 1, `start child: no command`},
		{"missing dir", Options{Args: []string{"/bin/true"}, Dir: "/nonexistent"}, 1, `start "/bin/true": chdir /nonexistent: no such file or directory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := New(tt.opts)
			err := c.Start(t.Context())
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Start = %v, want %s", err, tt.wantErr)
			}
			code, werr := c.Wait()
			if code != tt.wantCode || werr != err {
				t.Errorf("Wait = %d, %v; want %d, Start's error", code, werr, tt.wantCode)
			}
			if err := c.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
				t.Errorf("Signal = %v, want os.ErrProcessDone", err)
			}
			if err := c.Stop(t.Context()); err != nil {
				t.Errorf("Stop = %v, want nil", err)
			}
		})
	}
}

func TestLookPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mk := func(rel string, mode fs.FileMode) string {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mk("a/tool", 0o644)
	want := mk("b/tool", 0o755)
	mk("c/only", 0o600)
	if err := os.MkdirAll(filepath.Join(dir, "d/tool"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := func(dirs ...string) []string {
		for i, d := range dirs {
			if d != "" {
				dirs[i] = filepath.Join(dir, d)
			}
		}
		return []string{"X=1", "PATH=/nonexistent", "PATH=" + strings.Join(dirs, ":")}
	}

	tests := []struct {
		name     string
		file     string
		env      []string
		want     string
		wantCode int
		wantIs   error
	}{
		{"skips non-executable and directory", "tool", path("d", "a", "b"), want, 0, nil},
		{"last PATH wins", "tool", path("b"), want, 0, nil},
		{"only non-executable", "only", path("c"), "", 126, fs.ErrPermission},
		{"not found", "tool", path("c"), "", 127, exec.ErrNotFound},
		{"relative PATH entry", "tool", []string{"PATH=" + relDir(t, filepath.Join(dir, "b"))}, "", 126, exec.ErrDot},
		{"empty name", "", path("b"), "", 127, exec.ErrNotFound},
		{"path with slash ignores PATH", want, []string{"PATH=/nonexistent"}, want, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lookPath(tt.file, tt.env)
			if got != tt.want {
				t.Errorf("lookPath = %q, want %q", got, tt.want)
			}
			code, _ := ExitCode(err)
			if code != tt.wantCode || (tt.wantIs != nil && !errors.Is(err, tt.wantIs)) {
				t.Errorf("err = %v (code %d), want code %d, is %v", err, code, tt.wantCode, tt.wantIs)
			}
		})
	}
}

// relDir returns dir relative to the working directory.
func relDir(t *testing.T, dir string) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, dir)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	exitErr := func(script string) error {
		return exec.Command("/bin/sh", "-c", script).Run()
	}
	tests := []struct {
		name   string
		err    error
		want   int
		wantOK bool
	}{
		{"nil", nil, 0, false},
		{"plain", errors.New("x"), 0, false},
		{"ExitError", &ExitError{Code: 126, Err: errors.New("x")}, 126, true},
		{"wrapped ExitError", errors.Join(errors.New("a"), &ExitError{Code: 127, Err: errors.New("x")}), 127, true},
		{"exec.ExitError", exitErr("exit 4"), 4, true},
		{"exec.ExitError signal", exitErr("kill -TERM $$"), 143, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, ok := ExitCode(tt.err); got != tt.want || ok != tt.wantOK {
				t.Errorf("ExitCode = %d, %v; want %d, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
