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

// TestFileModeChecks: mode "0000" is a config error (exit 78, file and
// line named) rather than a silent 0600, and a mode that lets the group or
// everyone read the file is written as asked, with a warning.
func TestFileModeChecks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	testenv.WriteFile(t, filepath.Join(dir, "src.yaml"), "a: value-1\n")
	cfg := func(mode string) string {
		return "version: 1\nsecrets:\n  A: file:src.yaml#a\nfiles:\n  - path: out/a\n    secret: A\n    mode: \"" + mode + "\"\n"
	}
	testenv.WriteFile(t, filepath.Join(dir, "zero.yaml"), cfg("0000"))
	r := keyward(t, dir, nil, "render", "--once", "-c", "zero.yaml")
	if r.code != 78 || !strings.Contains(r.stderr, "zero.yaml:7: files[0].mode: mode 0000: nobody could read the file") {
		t.Errorf("mode 0000: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "a")); err == nil {
		t.Errorf("mode 0000: file written")
	}

	for _, c := range []struct{ mode, warn string }{
		{"0440", "mode 0440 lets the members of the file's group read"},
		{"0644", "mode 0644 lets every user of the machine read"},
		{"0400", ""},
	} {
		testenv.WriteFile(t, filepath.Join(dir, "k.yaml"), cfg(c.mode))
		r := keyward(t, dir, nil, "render", "--once", "-c", "k.yaml")
		if r.code != 0 {
			t.Fatalf("mode %s: exit %d: %s", c.mode, r.code, r.stderr)
		}
		warned := strings.Contains(r.stderr, "level=WARN") && strings.Contains(r.stderr, "line=7")
		if c.warn == "" && warned || c.warn != "" && (!warned || !strings.Contains(r.stderr, c.warn)) {
			t.Errorf("mode %s: stderr %q, want warning %q", c.mode, r.stderr, c.warn)
		}
		fi, err := os.Stat(filepath.Join(dir, "out", "a"))
		if err != nil || fi.Mode().Perm().String() != os.FileMode(mustOctal(c.mode)).String() {
			t.Errorf("mode %s: file mode %v, %v", c.mode, fi.Mode(), err)
		}
	}
}

func mustOctal(s string) uint32 {
	var v uint32
	for _, c := range s {
		v = v*8 + uint32(c-'0')
	}
	return v
}

// TestOwnerAsNonRoot is the reproduction of a silent no-op: keyward
// running as a user that is not root used to ignore owner: and group: and
// exit 0. Now render --once refuses what it cannot apply, and check says
// so before anything is written.
func TestOwnerAsNonRoot(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run keyward as another user (CI runs the tests as root)")
	}
	const uid = 65534
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir), filepath.Dir(binPath)} {
		must(t, os.Chmod(d, 0o755))
	}
	testenv.WriteFile(t, filepath.Join(dir, "src.yaml"), "a: value-1\n")
	testenv.WriteFile(t, filepath.Join(dir, "k.yaml"), "version: 1\nsecrets:\n  A: file:src.yaml#a\nfiles:\n  - path: out/a\n    secret: A\n    owner: 1000\n")
	must(t, os.Chown(dir, uid, uid))
	for _, p := range []string{"src.yaml", "k.yaml"} {
		must(t, os.Chown(filepath.Join(dir, p), uid, uid))
	}
	for _, args := range [][]string{{"render", "--once", "-c", "k.yaml"}, {"check", "-c", "k.yaml"}} {
		cmd := exec.Command(binPath, args...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "owner 1000: keyward runs as uid 65534 without CAP_CHOWN") {
			t.Errorf("%s: %v\n%s", args[0], err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "a")); err == nil {
		t.Errorf("file written without its owner")
	}
}
