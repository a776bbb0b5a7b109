package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/testenv"
)

// TestGuardFileOwnership: a guard file held by one agent cannot be taken
// by a second one, is removed at exit only while it is still the holder's,
// and a file left by an agent that is gone is taken over.
func TestGuardFileOwnership(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "run", "guard")

	a, err := createGuardFile(path, []byte("guard-a"), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := createGuardFile(path, []byte("guard-b"), false); err == nil || !strings.Contains(err.Error(), "another running keyward agent") {
		t.Fatalf("second agent on the same file: %v, want a refusal", err)
	}
	if got := testenv.ReadFile(t, path); got != "guard-a\n" {
		t.Fatalf("the first agent's guard file was changed to %q", got)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("guard file mode: %v %v", fi, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("guard file left behind at exit: %v", err)
	}

	// A file left by an agent killed with SIGKILL (no lock held) is taken over.
	testenv.WriteFile(t, path, "stale-guard-of-a-dead-agent\n")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := createGuardFile(path, []byte("guard-b"), false)
	if err != nil {
		t.Fatalf("stale guard file not taken over: %v", err)
	}
	if got := testenv.ReadFile(t, path); got != "guard-b\n" {
		t.Fatalf("taken-over guard file holds %q", got)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("taken-over guard file has mode %v", fi.Mode().Perm())
	}

	// Someone else's file put at the path later is not removed by b's exit.
	other := filepath.Join(dir, "run", "other")
	testenv.WriteFile(t, other, "someone else's\n")
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := testenv.ReadFile(t, path); got != "someone else's\n" {
		t.Fatalf("exit removed or changed a file that is not the agent's: %q", got)
	}
}

func TestGuardFileRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	testenv.WriteFile(t, target, "keep")
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if g, err := createGuardFile(link, []byte("guard"), false); err == nil {
		g.Close()
		t.Fatal("guard file written through a symlink")
	}
	if got := testenv.ReadFile(t, target); got != "keep" {
		t.Fatalf("symlink target changed to %q", got)
	}
	shared := filepath.Join(dir, "shared")
	if err := os.Mkdir(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if g, err := createGuardFile(filepath.Join(shared, "guard"), []byte("guard"), true); err == nil {
		g.Close()
		t.Fatal("default guard file written into a directory others can write")
	}
	// An explicit path in such a directory (a shared volume) is the operator's choice.
	g, err := createGuardFile(filepath.Join(shared, "guard"), []byte("guard"), false)
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
}

func TestDefaultGuardPathPerAgent(t *testing.T) {
	t.Parallel()
	getenv := func(k string) string {
		if k == "XDG_RUNTIME_DIR" {
			return "/run/user/1000"
		}
		return ""
	}
	a := defaultGuardPath(getenv, "127.0.0.1:8099")
	b := defaultGuardPath(getenv, "127.0.0.1:8100")
	c := defaultGuardPath(getenv, "[::1]:8099")
	if a == b || a == c || b == c {
		t.Fatalf("agents on different addresses share a guard file: %s %s %s", a, b, c)
	}
	for _, p := range []string{a, b, c} {
		if strings.ContainsAny(filepath.Base(p), ":[]") {
			t.Errorf("guard file name %q has address punctuation", filepath.Base(p))
		}
	}
}
