package file_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/file"
	"github.com/keyward/keyward/render"
)

func TestWrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := file.New(dir, file.Options{})
	ref := providers.Ref{Scheme: "file", Path: "rt"}
	path := filepath.Join(dir, "rt")
	if err := os.WriteFile(path, []byte("old-refresh-token"), 0o640); err != nil {
		t.Fatal(err)
	}
	sec, err := p.Fetch(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	read := func() string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	v, err := p.Write(t.Context(), ref, []byte("new-refresh-token"), sec.Version)
	if err != nil {
		t.Fatal(err)
	}
	if read() != "new-refresh-token" || v != providers.ContentVersion([]byte("new-refresh-token")) {
		t.Fatalf("after the write: version %s", v)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want the file's 0640 kept", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d entries in the directory: a temporary file was left", len(ents))
	}
	// Retried with the old version: the file already holds the value.
	if v2, err := p.Write(t.Context(), ref, []byte("new-refresh-token"), sec.Version); err != nil || v2 != v {
		t.Fatalf("idempotent retry: %v %v", v2, err)
	}
	// The old version again, another value: a conflict, nothing written.
	if _, err := p.Write(t.Context(), ref, []byte("third"), sec.Version); !errors.Is(err, providers.ErrConflict) || read() != "new-refresh-token" {
		t.Fatalf("stale version: err %v", err)
	}

	cases := []struct {
		name string
		ref  providers.Ref
		prep func(t *testing.T)
		want error
	}{
		{"field", providers.Ref{Scheme: "file", Path: "c.json", Field: "rt"}, func(t *testing.T) {
			_ = os.WriteFile(filepath.Join(dir, "c.json"), []byte(`{"rt":"x"}`), 0o600)
		}, errors.ErrUnsupported},
		{"symlink", providers.Ref{Scheme: "file", Path: "link"}, func(t *testing.T) {
			_ = os.Symlink(path, filepath.Join(dir, "link"))
		}, errors.ErrUnsupported},
		{"missing", providers.Ref{Scheme: "file", Path: "nope"}, func(*testing.T) {}, providers.ErrNotFound},
	}
	for _, c := range cases {
		c.prep(t)
		if _, err := p.Write(t.Context(), c.ref, []byte("secret-value-x"), "h:0"); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
	if read() != "new-refresh-token" {
		t.Fatal("a refused write changed the file (through the symlink?)")
	}
}

// Write goes through render.WriteFile: a symlinked parent directory is
// refused (keyward writes nothing through a symlink, nor into a directory
// reached through one), and the file keeps its mode, owner and group.
func TestWriteSymlinkedParentRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(real, "rt"), []byte("old-refresh-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	p := file.New(dir, file.Options{})
	ref := providers.Ref{Scheme: "file", Path: "link/rt"}
	sec, err := p.Fetch(t.Context(), ref) // reading follows the symlink
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write(t.Context(), ref, []byte("new-refresh-token"), sec.Version); !errors.Is(err, render.ErrDirSymlink) {
		t.Fatalf("write through a symlinked parent: err %v, want %v", err, render.ErrDirSymlink)
	}
	if b, _ := os.ReadFile(filepath.Join(real, "rt")); string(b) != "old-refresh-token" {
		t.Fatal("the write went through the symlinked directory")
	}
}

func TestWriteKeepsOwnerAndMode(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("giving the file another owner needs root")
	}
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} { // the file's owner may reach it
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "rt")
	if err := os.WriteFile(path, []byte("old-refresh-token"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 4321, 4322); err != nil {
		t.Fatal(err)
	}
	p := file.New(dir, file.Options{})
	ref := providers.Ref{Scheme: "file", Path: "rt"}
	sec, err := p.Fetch(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write(t.Context(), ref, []byte("new-refresh-token"), sec.Version); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 4321 || st.Gid != 4322 || st.Mode&0o7777 != 0o640 {
		t.Fatalf("after the write: owner %d:%d mode %04o, want 4321:4322 0640 kept", st.Uid, st.Gid, st.Mode&0o7777)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d entries in the directory: a temporary file was left", len(ents))
	}
}

// A Write killed in the middle (here by SIGXFSZ: the helper process's file
// size limit is smaller than the value, and SIGXFSZ has its default action,
// so the kernel kills it in the write of the temp file) leaves a temp file;
// it carries keyward's temp name, so the next write into that directory
// sweeps it.
func TestWriteKilledLeftoverIsSwept(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("the helper's kill by SIGXFSZ is set up with a Linux system call")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "rt")
	if err := os.WriteFile(path, []byte("old-refresh-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), writeHelperEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGXFSZ {
		t.Fatalf("the helper was not killed by SIGXFSZ in its write: %v, output %q", err, out)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("%d entries after the killed write, want the file and the write's temp file", len(ents))
	}
	if b, _ := os.ReadFile(path); string(b) != "old-refresh-token" {
		t.Fatal("the killed write changed the file")
	}

	p := file.New(dir, file.Options{})
	ref := providers.Ref{Scheme: "file", Path: "rt"}
	sec, err := p.Fetch(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write(t.Context(), ref, []byte("new-refresh-token"), sec.Version); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		names := make([]string, len(ents))
		for i, e := range ents {
			names[i] = e.Name()
		}
		t.Fatalf("entries after the next write: %q, want the killed write's temp file swept", names)
	}
}

// writeHelperEnv, set, makes the test binary a process that writes a
// value larger than its file size limit into $writeHelperEnv/rt.
const writeHelperEnv = "KEYWARD_FILE_TEST_WRITE_HELPER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(writeHelperEnv); dir != "" {
		os.Exit(runWriteHelper(dir))
	}
	os.Exit(m.Run())
}

func runWriteHelper(dir string) int {
	p := file.New(dir, file.Options{})
	ref := providers.Ref{Scheme: "file", Path: "rt"}
	sec, err := p.Fetch(context.Background(), ref)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_ = syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{})
	if err := defaultSIGXFSZ(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 4096, Max: 4096}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_, err = p.Write(context.Background(), ref, bytes.Repeat([]byte("x"), 64<<10), sec.Version)
	fmt.Fprintln(os.Stderr, "the write returned:", err)
	return 1
}
