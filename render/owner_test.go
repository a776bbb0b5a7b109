package render

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// runWriteHelper renders one raw file, $HELPER_WRITE, with the value "v",
// mode $HELPER_MODE (octal) and owner $HELPER_UID:$HELPER_GID (-1 for
// none), and prints the error, if any, on stderr (exit 3).
func runWriteHelper() int {
	uid, _ := strconv.Atoi(os.Getenv("HELPER_UID"))
	gid, _ := strconv.Atoi(os.Getenv("HELPER_GID"))
	mode, _ := strconv.ParseUint(os.Getenv("HELPER_MODE"), 8, 32)
	f := File{Path: os.Getenv("HELPER_WRITE"), Format: FormatRaw, Secret: "S", Mode: os.FileMode(mode), UID: uid, GID: gid}
	if _, err := Render([]File{f}, resolved(map[string]string{"S": "v"})); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	return 0
}

var (
	publicExe    string
	publicExeErr error
)

// makePublicCopy copies the test binary where any user may run it (the
// one go test built sits in a directory only its owner may enter), for
// publicCopy, and returns the function that removes it.
func makePublicCopy() (cleanup func()) {
	if os.Geteuid() != 0 {
		publicExeErr = errors.New("not root")
		return func() {}
	}
	dir, err := os.MkdirTemp("", "render-test-exe-")
	if err != nil {
		publicExeErr = err
		return func() {}
	}
	cleanup = func() { os.RemoveAll(dir) }
	exe, err := os.Executable()
	if err != nil {
		publicExeErr = err
		return cleanup
	}
	src, err := os.Open(exe)
	if err != nil {
		publicExeErr = err
		return cleanup
	}
	defer src.Close()
	publicExe = filepath.Join(dir, "render.test")
	dst, err := os.OpenFile(publicExe, os.O_CREATE|os.O_WRONLY, 0o755)
	if err == nil {
		_, err = io.Copy(dst, src)
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	publicExeErr = err
	return cleanup
}

// publicCopy returns the copy of the test binary that any user may run.
func publicCopy(t *testing.T) string {
	t.Helper()
	if publicExeErr != nil {
		t.Fatalf("copy of the test binary: %v", publicExeErr)
	}
	return publicExe
}

// publicDir returns a new directory that every user may enter (0711 up
// to /) and that uid may write to.
func publicDir(t *testing.T, uid int) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		var st syscall.Stat_t
		if err := syscall.Stat(d, &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&0o011 != 0o011 {
			if err := os.Chmod(d, os.FileMode(st.Mode&0o777|0o011)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Chown(dir, uid, -1); err != nil {
		t.Fatal(err)
	}
	return dir
}

// needRoot skips a test that changes users.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run processes as other users (CI runs the tests as root)")
	}
}

// writeAs runs runWriteHelper as uid:gid with the supplementary groups.
func writeAs(t *testing.T, uid, gid int, groups []uint32, path string, mode os.FileMode, owner, group int) (string, error) {
	t.Helper()
	cmd := exec.Command(publicCopy(t))
	cmd.Env = append(os.Environ(), helperEnv+"=1", "HELPER_WRITE="+path,
		fmt.Sprintf("HELPER_MODE=%o", mode), fmt.Sprintf("HELPER_UID=%d", owner), fmt.Sprintf("HELPER_GID=%d", group))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestOwnerNotRoot: a process that is not root applies the owner and group
// it may give (its own uid, a group it is a member of) and refuses, with a
// clear error and nothing written, the ones it may not, instead of
// ignoring owner and group as it did.
func TestOwnerNotRoot(t *testing.T) {
	t.Parallel()
	needRoot(t)
	const uid, gid, member = 65534, 65534, 4242
	dir := publicDir(t, uid)
	tests := []struct {
		owner, group int
		wantUID      uint32
		wantGID      uint32
		err          string
	}{
		{-1, -1, uid, gid, ""},
		{uid, -1, uid, gid, ""},
		{uid, member, uid, member, ""},
		{-1, member, uid, member, ""},
		{1000, -1, 0, 0, "owner 1000: keyward runs as uid 65534 without CAP_CHOWN, and only root (or CAP_CHOWN) can give a file another owner"},
		{uid, 1000, 0, 0, "group 1000: keyward runs as uid 65534, is not a member of group 1000 and lacks CAP_CHOWN"},
		{0, 0, 0, 0, "owner 0:"},
	}
	for i, tt := range tests {
		path := filepath.Join(dir, fmt.Sprintf("f%d", i))
		out, err := writeAs(t, uid, gid, []uint32{member}, path, 0o440, tt.owner, tt.group)
		if tt.err != "" {
			if err == nil || !strings.Contains(out, tt.err) {
				t.Errorf("owner %d group %d: %v %q, want error %q", tt.owner, tt.group, err, out, tt.err)
			}
			if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("owner %d group %d: file written", tt.owner, tt.group)
			}
			continue
		}
		if err != nil {
			t.Errorf("owner %d group %d: %v %s", tt.owner, tt.group, err, out)
			continue
		}
		st := statT(t, path)
		if st.Uid != tt.wantUID || st.Gid != tt.wantGID || st.Mode&0o777 != 0o440 {
			t.Errorf("owner %d group %d: file %d:%d %#o", tt.owner, tt.group, st.Uid, st.Gid, st.Mode&0o777)
		}
	}
	if left := tempNames(t, dir); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// readAs reads path with cat running as uid:gid.
func readAs(t *testing.T, uid, gid int, path string) error {
	t.Helper()
	cmd := exec.Command("cat", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// TestMixedOwnersOneDirectory: files of different owners in directories
// keyward creates, plain and atomic_dir: each owner reads its own file
// and not the others' (the directory used to take the first file's owner
// and mode 0700, locking the second owner out).
func TestMixedOwnersOneDirectory(t *testing.T) {
	t.Parallel()
	needRoot(t)
	const u1, u2, g3 = 1000, 2000, 3000
	root := publicDir(t, 0)
	for _, atomic := range []bool{false, true} {
		base := filepath.Join(root, fmt.Sprintf("atomic-%v", atomic), "deep")
		files := []File{
			rawFile(filepath.Join(base, "one"), "A"),
			rawFile(filepath.Join(base, "two"), "A"),
			rawFile(filepath.Join(base, "grp"), "A"),
			rawFile(filepath.Join(base, "mine"), "A"),
		}
		files[0].UID, files[0].GID, files[0].Mode = u1, u1, 0o400
		files[1].UID, files[1].GID, files[1].Mode = u2, u2, 0o600
		files[2].GID, files[2].Mode = g3, 0o440 // root's, its group may read
		for i := range files {
			files[i].AtomicDir = atomic
		}
		if _, err := Render(files, resolved(map[string]string{"A": "v"})); err != nil {
			t.Fatalf("atomic=%v: %v", atomic, err)
		}
		can := []struct {
			uid, gid int
			file     string
			ok       bool
		}{
			{u1, u1, "one", true}, {u1, u1, "two", false}, {u1, u1, "grp", false}, {u1, u1, "mine", false},
			{u2, u2, "two", true}, {u2, u2, "one", false},
			{4000, g3, "grp", true}, {4000, g3, "one", false},
			{4000, 4000, "grp", false}, {4000, 4000, "mine", false},
		}
		for _, c := range can {
			err := readAs(t, c.uid, c.gid, filepath.Join(base, c.file))
			if (err == nil) != c.ok {
				t.Errorf("atomic=%v: uid %d gid %d reading %s: %v, want ok=%v", atomic, c.uid, c.gid, c.file, err, c.ok)
			}
		}
		// Nobody but keyward lists the directories.
		for _, d := range []string{base, filepath.Dir(base)} {
			if st := statT(t, d); st.Uid != 0 || st.Mode&0o777 != 0o711 {
				t.Errorf("%s: owner %d mode %#o", d, st.Uid, st.Mode&0o777)
			}
		}
	}
}

// TestOwnerCannotReach: a directory that exists and certainly locks the
// file's owner out is refused, naming it; keyward does not change it.
func TestOwnerCannotReach(t *testing.T) {
	t.Parallel()
	needRoot(t)
	root := publicDir(t, 0)
	locked := filepath.Join(root, "locked")
	mkdir(t, locked) // 0700 root
	open := filepath.Join(root, "group")
	mkdir(t, open)
	if err := os.Chmod(open, 0o750); err != nil { // 1000 may be a member of its group
		t.Fatal(err)
	}
	for _, atomic := range []bool{false, true} {
		f := rawFile(filepath.Join(locked, "sub", "s"), "A")
		f.UID, f.AtomicDir = 1000, atomic
		_, err := Render([]File{f}, resolved(map[string]string{"A": "v"}))
		want := "owner cannot reach the file: uid 1000 may not search " + locked + " (mode 0700, owner 0:0)"
		if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), want) {
			t.Errorf("atomic=%v: err = %v, want %q", atomic, err, want)
		}
		if _, err := os.Lstat(filepath.Join(locked, "sub")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("atomic=%v: directory created", atomic)
		}
		f.Path = filepath.Join(open, fmt.Sprintf("s-%v", atomic))
		if _, err := Render([]File{f}, resolved(map[string]string{"A": "v"})); err != nil {
			t.Errorf("atomic=%v, group-searchable directory: %v", atomic, err)
		}
	}
	if st := statT(t, locked); st.Mode&0o777 != 0o700 {
		t.Errorf("existing directory changed to %#o", st.Mode&0o777)
	}
}
