package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testenv"
)

// badConfigs are configurations every command must refuse with exit 78 and
// a message naming the file and the line. The line marked "# <-" is the
// one the message must name; a config without a mark may name any line.
var badConfigs = []struct {
	name, config string
}{
	{"invalid YAML", "version: 1\nsecrets:\n  A: [unclosed\n"},
	{"unknown top-level key", "version: 1\nsecrets:\n  A: file:dev.yaml#pw\nbogus: 1 # <-\n"},
	{"unknown provider option", "version: 1\nproviders:\n  vault-eu:\n    kind: vault\n    adress: https://v.example # <-\nsecrets:\n  A: file:dev.yaml#pw\n"},
	{"invalid provider option value", "version: 1\nproviders:\n  vault-eu: # <-\n    kind: vault\n    address: https://v.example\n    timeout: -1s\nsecrets:\n  A: file:dev.yaml#pw\n"},
	{"incomplete provider auth", "version: 1\nproviders:\n  vault-eu: # <-\n    kind: vault\n    address: https://v.example\n    auth: {method: kubernetes}\nsecrets:\n  A: file:dev.yaml#pw\n"},
	{"invalid file provider option", "version: 1\nproviders:\n  f: {kind: file, max_size: -5} # <-\nsecrets:\n  A: f:dev.yaml#pw\n"},
	{"unknown provider kind", "version: 1\nproviders:\n  x: {kind: nosuch} # <-\nsecrets:\n  A: file:dev.yaml#pw\n"},
	{"unknown reference option", "version: 1\nsecrets:\n  A: file:dev.yaml#pw\n  B: vault://x?bogus=1#k # <-\n"},
	{"unknown scheme", "version: 1\nsecrets:\n  A: file:dev.yaml#pw\n  B: nope://x#k # <-\n"},
	{"template syntax", "version: 1\nsecrets:\n  A: file:dev.yaml#pw\nfiles:\n  - path: out/t\n    template: \"{{ secret \" # <-\n"},
	{"env of an undeclared secret", "version: 1\nsecrets:\n  A: file:dev.yaml#pw\nenv:\n  X: NOPE # <-\n"},
	{"file mode", "version: 1\nsecrets:\n  A: file:dev.yaml#pw\nfiles:\n  - path: out/a\n    secret: A\n    mode: \"0777\" # <-\n"},
	{"token url", "version: 1\ntokens:\n  t:\n    token_url: http://auth.example/token # <-\n    client_id: file:dev.yaml#pw\n    client_secret: file:dev.yaml#pw\n    file: out/t\n"},
}

// configCommands are every command that reads a config, as invoked with -c.
var configCommands = [][]string{
	{"exec", "-c", "keyward.yaml", "--", "true"},
	{"exec", "--supervise", "-c", "keyward.yaml", "--", "true"},
	{"agent", "-c", "keyward.yaml"},
	{"agent", "-c", "keyward.yaml", "--", "true"},
	{"render", "--once", "-c", "keyward.yaml"},
	{"check", "-c", "keyward.yaml"},
	{"check", "--offline", "-c", "keyward.yaml"},
	{"get", "-c", "keyward.yaml", "file:dev.yaml#pw"},
	{"ci", "-c", "keyward.yaml"},
	{"scan", "-c", "keyward.yaml", "dev.yaml"},
}

// TestBadConfigEveryCommand runs every command with every bad config: each
// must exit 78 with one line naming the config file and the line of the
// problem, and run nothing.
func TestBadConfigEveryCommand(t *testing.T) {
	t.Parallel()
	where := regexp.MustCompile(`^keyward: keyward\.yaml(?::(\d+): | \d+ problems: line (\d+): )`)
	for _, bc := range badConfigs {
		line := 0
		for i, l := range strings.Split(bc.config, "\n") {
			if strings.HasSuffix(l, "# <-") {
				line = i + 1
			}
		}
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			testenv.WriteFile(t, filepath.Join(dir, "dev.yaml"), "pw: hunter2-db-password\n")
			testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), bc.config)
			for _, args := range configCommands {
				r := keywardTimeout(t, dir, []string{"GITHUB_ACTIONS=", "CI="}, 30*time.Second, args...)
				if r.code != exitConfig {
					t.Errorf("%v: exit %d, want %d; stderr %q", args, r.code, exitConfig, r.stderr)
					continue
				}
				msg := strings.TrimSuffix(r.stderr, "\n")
				if strings.Contains(msg, "\n") {
					t.Errorf("%v: more than one line on stderr: %q", args, r.stderr)
				}
				m := where.FindStringSubmatch(msg)
				if m == nil {
					t.Errorf("%v: %q does not start with the file and a line", args, msg)
					continue
				}
				got, _ := strconv.Atoi(m[1] + m[2])
				if line > 0 && got != line {
					t.Errorf("%v: %q names line %d, want %d", args, msg, got, line)
				}
				if r.stdout != "" {
					t.Errorf("%v: stdout %q", args, r.stdout)
				}
			}
		})
	}
}

// keywardTimeout is keyward with a time limit, for commands that would run
// until a signal if they did not fail.
func keywardTimeout(t *testing.T, dir string, env []string, timeout time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("keyward %v still running after %v", args, timeout)
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running keyward %v: %v", args, err)
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// TestConfigFromPipe: a config read from a pipe (process substitution,
// /dev/stdin) is read like a file, with relative paths resolved against the
// working directory; a named pipe nobody writes to reads as empty and a
// device that never ends is refused at its size limit, each with exit 78
// and one line naming it, instead of hanging in open(2) or filling memory;
// a pipe whose writer never finishes is given up on SIGTERM.
func TestConfigFromPipe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "api-key"), []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := "version: 1\nsecrets:\n  API_KEY: file:api-key\n"

	// Process substitution and /dev/stdin: file://api-key is found in the
	// working directory.
	for _, how := range []string{`"$0" get -c <(printf '%s' "$1") API_KEY`, `printf '%s' "$1" | "$0" get -c /dev/stdin API_KEY`} {
		cmd := exec.Command("bash", "-c", how, binPath, cfg)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		out, err := cmd.Output()
		if err != nil || string(out) != "from-a-file\n" {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Errorf("%s: %v, stdout %d bytes, stderr %q; want the file's value", how, err, len(out), stderr)
		}
	}

	fifo := filepath.Join(dir, "keyward.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{fifo: "empty", "/dev/zero": "larger than the size limit"} {
		for _, args := range [][]string{{"check", "--offline", "-c", path}, {"render", "--once", "-c", path}} {
			r := keywardTimeout(t, dir, []string{"GITHUB_ACTIONS=", "CI="}, 20*time.Second, args...)
			msg := strings.TrimSuffix(r.stderr, "\n")
			if r.code != exitConfig || strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "keyward: "+path+":") || !strings.Contains(msg, want) {
				t.Errorf("%v: exit %d, stderr %q; want exit %d and one line naming %s, %s", args, r.code, r.stderr, exitConfig, path, want)
			}
		}
	}

	// A writer that never finishes: SIGTERM ends the read.
	w, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteString("secrets:\n"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binPath, "check", "--offline", "-c", fifo)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Once keyward has the pipe open it is in its read, its handler for
	// SIGTERM installed: the signal must end the read with keyward's own
	// one-line error, not end keyward as the signal's default action does.
	waitForOpen(t, cmd.Process.Pid, fifo)
	select {
	case err := <-done:
		t.Fatalf("keyward check ended (%v, stderr %q) while its config pipe was still open", err, stderr.String())
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		msg := strings.TrimSuffix(stderr.String(), "\n")
		// A stop is not a config problem: exit 1, not 78.
		if ws.Signaled() || cmd.ProcessState.ExitCode() != 1 || strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "keyward: "+fifo+":") || !strings.Contains(msg, "stopped") {
			t.Errorf("keyward check stopped reading its config: %v, stderr %q; want exit 1 and one line naming %s, stopped", err, stderr.String(), fifo)
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("keyward check still reading its config pipe 20s after SIGTERM")
	}
}
