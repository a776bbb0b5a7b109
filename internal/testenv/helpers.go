package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// WriteFile writes content to path with mode 0600, creating its missing
// directories (0700) first; it fails t on error.
func WriteFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// ReadFile returns the content of path; it fails t on error.
func ReadFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// WaitFor polls cond every 10ms until it holds. It fails t when exited is
// closed first (the process under test ended: code gives its exit code)
// or when timeout passes.
func WaitFor(t testing.TB, what string, timeout time.Duration, exited <-chan struct{}, code func() int, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-exited:
			t.Fatalf("process exited (code %d) while waiting for %s", code(), what)
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// BuildKeyward builds the keyward binary (static, as released: CGO off,
// trimmed paths, no symbol table) into dir and returns its path; the
// error holds the compiler's output.
func BuildKeyward(dir string) (string, error) {
	bin := filepath.Join(dir, "keyward")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "github.com/keyward/keyward/cmd/keyward")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building keyward: %w\n%s", err, out)
	}
	return bin, nil
}
