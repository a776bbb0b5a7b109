//go:build integration

package faults

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// memLimitKiB caps the address space of a keyward run that reads a
// hostile source, so that an unbounded read fails the test instead of
// exhausting the machine's memory.
const memLimitKiB = 2 << 20

// runCapped runs keyward with args in dir under the memory cap; after
// termAfter (when > 0) it sends SIGTERM. It returns the exit code (-1
// when it had to be killed 10s after the SIGTERM or after 60s), stderr
// and how long it ran.
func runCapped(t *testing.T, dir string, termAfter time.Duration, args ...string) (int, string, time.Duration) {
	t.Helper()
	script := fmt.Sprintf("ulimit -v %d; exec \"$0\" \"$@\"", memLimitKiB)
	cmd := exec.Command("sh", append([]string{"-c", script, binPath}, args...)...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &bytes.Buffer{}, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	must(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	var term <-chan time.Time
	if termAfter > 0 {
		term = time.After(termAfter)
	}
	hard := time.After(60 * time.Second)
	for {
		select {
		case <-done:
			return cmd.ProcessState.ExitCode(), stderr.String(), time.Since(start)
		case <-term:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			term, hard = nil, time.After(10*time.Second)
		case <-hard:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			return -1, stderr.String(), time.Since(start)
		}
	}
}

// cleanFailure fails the test unless a run that must be refused exited
// with a documented failure code (1 runtime, 78 config) and a one-line
// error naming the source, without a crash.
func cleanFailure(t *testing.T, what string, code int, stderr, name string) {
	t.Helper()
	switch {
	case code == -1:
		t.Errorf("%s: still running 10s after SIGTERM (or after 60s): killed", what)
	case code != 1 && code != 78:
		t.Errorf("%s: exit code %d, want 1 or 78", what, code)
	}
	if strings.Contains(stderr, "fatal error") || strings.Contains(stderr, "goroutine ") {
		t.Errorf("%s: keyward crashed: %s", what, tail(stderr, 300))
	}
	if !strings.Contains(stderr, name) {
		t.Errorf("%s: the error does not name %s: %q", what, name, tail(stderr, 300))
	}
}

// TestHostileFileSources gives keyward /dev/zero and a FIFO (that no one
// writes) as file: sources. Each command refuses them promptly with a
// clean error naming the file, within a bounded memory, and honours
// SIGTERM if it ever waits.
func TestHostileFileSources(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	must(t, syscall.Mkfifo(fifo, 0o600))
	var fig figures
	var slowest time.Duration
	for _, src := range []struct{ name, ref string }{
		{"/dev/zero", "file:///dev/zero#k"},
		{"fifo.yaml", "file://" + fifo + "#k"},
	} {
		cfg := fmt.Sprintf("version: 1\nsecrets:\n  K: %s\nfiles:\n  - {path: out/k, secret: K}\n", src.ref)
		must(t, os.WriteFile(filepath.Join(dir, "keyward.yaml"), []byte(cfg), 0o600))
		for _, args := range [][]string{
			{"get", src.ref},
			{"render", "--once", "-c", "keyward.yaml"},
			{"check", "-c", "keyward.yaml"},
			{"agent", "-c", "keyward.yaml"}, // refused at once, not retried until --init-timeout
			{"exec", "-c", "keyward.yaml", "--", "true"},
		} {
			code, stderr, took := runCapped(t, dir, 5*time.Second, args...)
			what := fmt.Sprintf("%s with %s", args[0], src.name)
			cleanFailure(t, what, code, stderr, src.name)
			t.Logf("%s: exit %d after %v", what, code, took.Round(time.Millisecond))
			fig.faults++
			slowest = max(slowest, took)
		}
		if _, err := os.Stat(filepath.Join(dir, "out", "k")); err == nil {
			t.Errorf("%s: a file was rendered from it", src.name)
			fig.lost++
		}
	}
	fig.note = fmt.Sprintf("slowest refusal: %v", slowest.Round(time.Millisecond))
	report(t, fig)
}

// TestSourceReplacedByFIFO runs an agent on a regular source file, then
// replaces that file by a FIFO that no one writes: the agent keeps the
// last good files, does not signal the child, counts the failure, and
// still stops promptly on SIGTERM.
func TestSourceReplacedByFIFO(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	gens := &generations{}
	g1 := gens.next()
	src := filepath.Join(dir, "src.yaml")
	must(t, os.WriteFile(src, []byte(fmt.Sprintf("password: %s\napi_key: %s\n", g1["password"], g1["api_key"])), 0o600))
	cfg := `version: 1
secrets:
  DB_PASSWORD: file:src.yaml#password
  API_KEY: file:src.yaml#api_key
files:
  - {path: out/app.env, secrets: [DB_PASSWORD, API_KEY]}
on_change: {signal: HUP}
# The child reads the files; its environment gets no secret (a rotated
# value could reach it only by a restart).
env: {}
watch: {interval: 1s, debounce: 20ms}
`
	a := startAgent(t, dir, agentOptions{config: cfg, child: true, secrets: gens.values})
	a.waitReady()
	a.waitFor("the child to start", waitLong, func() bool { s, _ := a.childCounts(); return s == 1 })
	files := []string{filepath.Join(dir, "out", "app.env")}
	good := snapshot(files)
	errorsNow := func() float64 { return sum(a.metrics(), "keyward_errors_total", `stage="fetch"`) }
	before := errorsNow()

	tmp := filepath.Join(dir, ".fifo")
	must(t, syscall.Mkfifo(tmp, 0o600))
	must(t, os.Rename(tmp, src))
	var fig figures
	fig.faults++
	a.waitFor("the FIFO source to be counted as a fetch error", waitLong, func() bool { return errorsNow() > before })
	fig.lost += a.hold(t, "FIFO source", 3*time.Second, files, good)
	a.expectChild("with a FIFO source", 0)

	start := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the agent did not exit within 20s of SIGTERM with a FIFO source")
	}
	if a.code != 0 {
		t.Errorf("agent exit code %d after SIGTERM, want 0", a.code)
	}
	fig.note = fmt.Sprintf("stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	report(t, fig)
}
