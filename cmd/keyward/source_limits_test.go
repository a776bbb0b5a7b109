package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testenv"
)

// stuckBound is how long a test waits for keyward to exit before it
// declares it stuck. It is a failure bound, not a measurement: each case
// here exits at once or right after SIGTERM.
const stuckBound = 20 * time.Second

// startKeyward starts the built binary in dir and returns a function that
// waits for it, failing the test (after killing it) when it is still
// running after stuckBound.
func startKeyward(t *testing.T, dir string, args ...string) (*exec.Cmd, func() result) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	wait := func() result {
		t.Helper()
		var err error
		select {
		case err = <-done:
		case <-time.After(stuckBound):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("keyward %v still running after %v (stderr: %s)", args, stuckBound, stderr.String())
		}
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				t.Fatalf("keyward %v was killed by %v instead of exiting (stderr: %s)", args, ws.Signal(), stderr.String())
			}
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	}
	return cmd, wait
}

// TestGetRefusesUnboundedSources: /dev/zero, a FIFO nobody writes to and a
// file over the size limit are refused at once, naming what to change;
// before, the first grew until memory ran out and the second blocked in
// open(2) with SIGTERM ignored.
func TestGetRefusesUnboundedSources(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	testenv.WriteFile(t, filepath.Join(dir, "big"), strings.Repeat("x", 1<<20+1))
	tests := []struct {
		ref  string
		want []string
	}{
		{"file:///dev/zero", []string{"/dev/zero", "a character device, not a regular file", "allow_non_regular"}},
		{"file:fifo", []string{"a named pipe (FIFO), not a regular file", "allow_non_regular"}},
		{"file:big", []string{"larger than the size limit of 1MiB", "max_size"}},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			t.Parallel()
			_, wait := startKeyward(t, dir, "get", tt.ref)
			r := wait()
			checkFailure(t, r, 1, tt.want)
		})
	}
}

// TestSourceOptionsLiftLimits: max_size and allow_non_regular let a
// config read what the defaults refuse, and the limit still holds.
func TestSourceOptionsLiftLimits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	testenv.WriteFile(t, filepath.Join(dir, "big"), strings.Repeat("x", 1<<20+1))
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), "version: 1\nproviders:\n  file: {kind: file, max_size: 2MiB, allow_non_regular: true}\n")
	r := keyward(t, dir, nil, "get", "-c", "keyward.yaml", "file:big")
	if r.code != 0 || len(r.stdout) != 1<<20+1 {
		t.Fatalf("get of a 1MiB+1 file with max_size 2MiB: exit %d, %d bytes; stderr %s", r.code, len(r.stdout), r.stderr)
	}
	r = keyward(t, dir, nil, "get", "-c", "keyward.yaml", "file:///dev/zero")
	checkFailure(t, r, 1, []string{"larger than the size limit of 2MiB"})

	testenv.WriteFile(t, filepath.Join(dir, "bad.yaml"), "version: 1\nproviders:\n  file: {kind: file, max_size: lots}\n")
	r = keyward(t, dir, nil, "get", "-c", "bad.yaml", "file:big")
	if r.code == 0 || !strings.Contains(r.stderr, "max_size") && !strings.Contains(r.stderr, "invalid size") {
		t.Fatalf("a bad max_size: exit %d, stderr %s", r.code, r.stderr)
	}
}

// TestSIGTERMDuringBlockedRead: with allow_non_regular, a FIFO whose
// writer never writes blocks the read; SIGTERM ends every command
// promptly, with an error rather than a hang.
func TestSIGTERMDuringBlockedRead(t *testing.T) {
	t.Parallel()
	commands := map[string][]string{
		"get":    {"get", "-c", "keyward.yaml", "file:fifo"},
		"render": {"render", "--once", "-c", "keyward.yaml"},
		"check":  {"check", "-c", "keyward.yaml"},
		"exec":   {"exec", "-c", "keyward.yaml", "--", "true"},
		"agent":  {"agent", "-c", "keyward.yaml"},
	}
	for name, args := range commands {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			fifo := filepath.Join(dir, "fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			// O_RDWR opens without blocking and keeps a writer connected
			// that never writes.
			w, err := os.OpenFile(fifo, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), `version: 1
providers:
  file: {kind: file, allow_non_regular: true}
secrets:
  A: file:fifo
files:
  - {path: out/a, format: raw, secret: A}
`)
			cmd, wait := startKeyward(t, dir, args...)
			waitForOpen(t, cmd.Process.Pid, fifo)
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			r := wait()
			if r.code == 0 && name != "agent" {
				t.Errorf("exit 0 after SIGTERM during the read; stderr: %s", r.stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "out", "a")); err == nil {
				t.Errorf("a file was rendered from an interrupted read")
			}
		})
	}
}

// waitForOpen waits until process pid has path open: keyward is then in
// its read, past installing its signal handlers.
func waitForOpen(t *testing.T, pid int, path string) {
	t.Helper()
	deadline := time.Now().Add(stuckBound)
	for time.Now().Before(deadline) {
		fds, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "fd", fd.Name())); err == nil && target == path {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("keyward did not open %s within %v", path, stuckBound)
}

// TestAgentFailsFastOnRefusedSource: a file: source that is refused for
// what it is (a FIFO or device without allow_non_regular, a file over
// max_size, a directory) will not become readable by retrying: the agent
// exits 1 at once with the one-line error get prints, instead of retrying
// until --init-timeout.
func TestAgentFailsFastOnRefusedSource(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	testenv.WriteFile(t, filepath.Join(dir, "big"), strings.Repeat("x", 1<<20+1))
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ref  string
		want []string
	}{
		{"file:///dev/zero", []string{"/dev/zero", "a character device, not a regular file", "allow_non_regular"}},
		{"file:fifo", []string{"a named pipe (FIFO), not a regular file", "allow_non_regular"}},
		{"file:big", []string{"larger than the size limit of 1MiB", "max_size"}},
		{"file:adir", []string{"adir", "is a directory"}},
	}
	for i, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			t.Parallel()
			cfg := fmt.Sprintf("cfg%d.yaml", i)
			testenv.WriteFile(t, filepath.Join(dir, cfg), fmt.Sprintf("version: 1\nsecrets:\n  A: %s\nfiles:\n  - {path: out%d/a, format: raw, secret: A}\n", tt.ref, i))
			// An --init-timeout far beyond stuckBound: only a failure
			// that is not retried ends the agent within it.
			_, wait := startKeyward(t, dir, "agent", "-c", cfg, "--init-timeout", "10m")
			r := wait()
			checkFailure(t, r, 1, tt.want)
			if strings.Contains(r.stderr, "--init-timeout") {
				t.Errorf("the agent retried until --init-timeout: %s", r.stderr)
			}
		})
	}
}
