package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyward/keyward/internal/testenv"
)

// TestCommandsSweepLeftovers: every command that writes files (render
// --once, exec, ci and agent) removes from the directories it writes to
// what an interrupted keyward left there (temp files, atomic_dir snapshots
// that ..data does not point to, ..data_tmp) and nothing else, whether or
// not the files themselves change.
func TestCommandsSweepLeftovers(t *testing.T) {
	t.Parallel()
	const cfg = `version: 1
secrets:
  A: file:src.yaml#a
files:
  - {path: out/a, secret: A}
  - {path: out/atomic/b, secret: A, atomic_dir: true}
server: {listen: "unix:kw.sock"}
`
	commands := []struct {
		name string
		env  []string
		args []string
	}{
		{"render", nil, []string{"render", "--once", "-c", "keyward.yaml"}},
		{"exec", nil, []string{"exec", "-c", "keyward.yaml", "--", "true"}},
		{"ci", []string{"GITLAB_CI=true"}, []string{"ci", "-c", "keyward.yaml", "--dotenv", "out/ci.env"}},
		{"agent", nil, []string{"agent", "-c", "keyward.yaml"}},
	}
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), cfg)
			testenv.WriteFile(t, filepath.Join(dir, "src.yaml"), "a: value-1\n")
			// A first run makes the layout; then an interrupted run's
			// leftovers, and files that only look like them.
			if r := keyward(t, dir, c.env, "render", "--once", "-c", "keyward.yaml"); r.code != 0 {
				t.Fatalf("render: %d %s", r.code, r.stderr)
			}
			out := filepath.Join(dir, "out")
			leftovers := []string{
				filepath.Join(out, ".a.keyward-0123456789abcdef.tmp"),
				filepath.Join(out, "atomic", "..2025_01_02_03_04_05.keyward-0123456789abcdef"),
				filepath.Join(out, "atomic", dataTmp),
			}
			testenv.WriteFile(t, leftovers[0], "an old value")
			testenv.WriteFile(t, filepath.Join(leftovers[1], "b"), "an old value")
			must(t, os.Symlink(filepath.Base(leftovers[1]), leftovers[2]))
			notOurs := []string{
				filepath.Join(out, ".a.tmp-0123456789abcdef"),
				filepath.Join(out, "atomic", "..2025_01_02_03_04_05.123456"),
			}
			testenv.WriteFile(t, notOurs[0], "x")
			testenv.WriteFile(t, filepath.Join(notOurs[1], "b"), "x")

			if c.name == "agent" {
				a := startAgent(t, dir, c.env, c.args...)
				a.waitFor("readyz", a.ready)
				if code := a.stop(); code != 0 {
					t.Fatalf("agent exit code %d", code)
				}
			} else if r := keyward(t, dir, c.env, c.args...); r.code != 0 {
				t.Fatalf("%s: %d %s", c.name, r.code, r.stderr)
			}
			for _, p := range leftovers {
				if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("leftover %s not removed", p)
				}
			}
			for _, p := range notOurs {
				if _, err := os.Lstat(p); err != nil {
					t.Errorf("%s is not keyward's and was removed", p)
				}
			}
		})
	}
}

const dataTmp = "..data_tmp"
