package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/keyward/keyward/internal/testenv"
)

// TestFileGroup: with --file-group, as a pod's init container runs it
// (keyward a user of its own, the group shared with the app), the files
// whose config names no group get that group and its read permission
// where the owner has it; a file with group: keeps it and its mode; a
// group keyward is not in fails the render, naming the file, with nothing
// written; and a negative id is a usage error.
func TestFileGroup(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run keyward as another user (CI runs the tests as root)")
	}
	const uid, shared = 65534, 4321
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir), filepath.Dir(binPath)} {
		must(t, os.Chmod(d, 0o755))
	}
	testenv.WriteFile(t, filepath.Join(dir, "src.yaml"), "a: value-1\n")
	testenv.WriteFile(t, filepath.Join(dir, "k.yaml"), `version: 1
secrets:
  A: file:src.yaml#a
files:
  - {path: out/default, secret: A}
  - {path: out/owner-only, secret: A, mode: "0400"}
  - {path: out/own-group, secret: A, mode: "0400", group: 65534}
`)
	must(t, os.Chown(dir, uid, uid))
	for _, p := range []string{"src.yaml", "k.yaml"} {
		must(t, os.Chown(filepath.Join(dir, p), uid, uid))
	}
	run := func(args ...string) (string, int) {
		cmd := exec.Command(binPath, args...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{shared}}}
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}

	if out, code := run("render", "--once", "-c", "k.yaml", "--file-group=1"); code != 1 || !strings.Contains(out, "out/default") || !strings.Contains(out, "group 1: keyward runs as uid 65534, is not a member of group 1") {
		t.Errorf("a group keyward is not in: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "default")); err == nil {
		t.Errorf("a file was written although its group could not be given")
	}
	if out, code := run("render", "--once", "-c", "k.yaml", "--file-group=-5"); code != 2 || !strings.Contains(out, "--file-group -5: not a group id") {
		t.Errorf("--file-group -5: exit %d\n%s", code, out)
	}

	if out, code := run("render", "--once", "-c", "k.yaml", "--file-group=4321"); code != 0 {
		t.Fatalf("render --file-group=4321: exit %d\n%s", code, out)
	}
	for name, want := range map[string]struct {
		mode os.FileMode
		gid  uint32
	}{
		"default":    {0o640, shared},
		"owner-only": {0o440, shared},
		"own-group":  {0o400, uid},
	} {
		fi, err := os.Stat(filepath.Join(dir, "out", name))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != want.mode || st.Uid != uid || st.Gid != want.gid {
			t.Errorf("%s: mode %04o owner %d:%d, want %04o %d:%d", name, fi.Mode().Perm(), st.Uid, st.Gid, want.mode, uid, want.gid)
		}
	}
}
