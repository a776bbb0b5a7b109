//go:build integration

package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestFileGroupTokenFiles: --file-group applies to the token files as to
// the rendered ones: the group, and its read permission (0600 becomes
// 0640).
func TestFileGroupTokenFiles(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file a group keyward is not a member of (CI runs the tests as root)")
	}
	const shared = 4321
	o := realOAuth(t)
	dir := tokenFixture(t, o, "secrets:\n  A: file:creds.yaml#id\nfiles:\n  - {path: out/a, secret: A}\n")
	r := keyward(t, dir, nil, "render", "--once", "-c", "keyward.yaml", "--file-group=4321")
	if r.code != 0 {
		t.Fatalf("render --once --file-group: exit %d\n%s", r.code, r.stderr)
	}
	for _, p := range []string{"out/a", "out/api.json", "out/jwt"} {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o640 || st.Gid != shared {
			t.Errorf("%s: mode %04o group %d, want 0640 and group %d", p, fi.Mode().Perm(), st.Gid, shared)
		}
	}
}
