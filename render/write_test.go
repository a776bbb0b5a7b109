package render

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var noOwner = Options{UID: -1, GID: -1}

// TestWriteFileModes runs with the umask set, so it is not parallel.
func TestWriteFileModes(t *testing.T) {
	for _, umask := range []int{0, 0o077, 0o277} {
		t.Run(fmt.Sprintf("umask %#o", umask), func(t *testing.T) {
			tests := []struct {
				mode, wantMode, wantDir os.FileMode
			}{
				{0, 0o600, 0o700},
				{0o600, 0o600, 0o700},
				{0o400, 0o400, 0o700},
				{0o640, 0o640, 0o710},
				{0o644, 0o644, 0o711},
			}
			roots := make([]string, len(tests)) // made before the umask is set
			for i := range roots {
				roots[i] = t.TempDir()
				if err := os.Chmod(roots[i], 0o755); err != nil {
					t.Fatal(err)
				}
			}
			old := syscall.Umask(umask)
			defer syscall.Umask(old)
			for i, tt := range tests {
				root := roots[i]
				path := filepath.Join(root, "a", "b", "secret")
				opts := noOwner
				opts.Mode = tt.mode
				changed, err := WriteFile(path, []byte("x"), opts)
				if err != nil || !changed {
					t.Fatalf("WriteFile = %v, %v", changed, err)
				}
				if got := statMode(t, path); got != tt.wantMode {
					t.Errorf("mode %#o: file is %#o, want %#o", tt.mode, got, tt.wantMode)
				}
				for _, d := range []string{filepath.Join(root, "a"), filepath.Join(root, "a", "b")} {
					if got := statMode(t, d); got != tt.wantDir {
						t.Errorf("mode %#o: dir %s is %#o, want %#o", tt.mode, d, got, tt.wantDir)
					}
				}
				if got := statMode(t, root); got != 0o755 {
					t.Errorf("pre-existing dir changed to %#o", got)
				}
			}
		})
	}
}

func statMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	return os.FileMode(statT(t, path).Mode & 0o7777)
}

func TestWriteFileUnchanged(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "s")
	if _, err := WriteFile(path, []byte("one"), noOwner); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, past, past); err != nil {
		t.Fatal(err)
	}
	before := statT(t, path)

	changed, err := WriteFile(path, []byte("one"), noOwner)
	if err != nil || changed {
		t.Fatalf("same content: changed=%v err=%v", changed, err)
	}
	after := statT(t, path)
	if after.Ino != before.Ino || mtim(after) != mtim(before) || ctim(after) != ctim(before) {
		t.Errorf("unchanged file was touched: ino %d->%d mtime %v->%v", before.Ino, after.Ino, mtim(before), mtim(after))
	}

	tests := []struct {
		name string
		data string
		mode os.FileMode
	}{
		{"new content", "two", 0},
		{"same size other content", "owt", 0},
		{"new mode", "owt", 0o400},
	}
	for _, tt := range tests {
		prev := statT(t, path)
		opts := noOwner
		opts.Mode = tt.mode
		changed, err := WriteFile(path, []byte(tt.data), opts)
		if err != nil || !changed {
			t.Fatalf("%s: changed=%v err=%v", tt.name, changed, err)
		}
		if st := statT(t, path); st.Ino == prev.Ino {
			t.Errorf("%s: file rewritten in place (same inode), not replaced", tt.name)
		}
		if got := readFile(t, path); got != tt.data {
			t.Errorf("%s: content %q", tt.name, got)
		}
	}
}

func TestWriteFileRefusesTargets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	other := filepath.Join(dir, "other")
	writeRaw(t, other, "precious")
	link := filepath.Join(dir, "link")
	if err := os.Symlink(other, link); err != nil {
		t.Fatal(err)
	}
	subdir := filepath.Join(dir, "subdir")
	if err := os.Mkdir(subdir, 0o700); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	notDir := filepath.Join(other, "x") // parent is a file

	tests := []struct {
		path string
		want error
		msg  string
	}{
		{link, ErrSymlink, "write " + link + ": target is a symlink"},
		{subdir, ErrDirectory, "write " + subdir + ": target is a directory"},
		{fifo, ErrNotRegular, "write " + fifo + ": target is not a regular file"},
		{notDir, syscall.ENOTDIR, "write " + notDir + ": parent " + other + ": not a directory"},
	}
	for _, tt := range tests {
		changed, err := WriteFile(tt.path, []byte("new"), noOwner)
		if changed || !errors.Is(err, tt.want) || err.Error() != tt.msg {
			t.Errorf("WriteFile(%s) = %v, %v; want error %q", tt.path, changed, err, tt.msg)
		}
	}
	if got := readFile(t, other); got != "precious" {
		t.Errorf("symlinked-to file changed: %q", got)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("symlink was replaced")
	}
	if tmp := tempNames(t, dir); len(tmp) > 0 {
		t.Errorf("temp files left: %v", tmp)
	}

	// Opt-in: the link itself is replaced, the file it pointed to is not
	// written through.
	opts := noOwner
	opts.AllowSymlink = true
	if changed, err := WriteFile(link, []byte("new"), opts); err != nil || !changed {
		t.Fatalf("AllowSymlink: %v, %v", changed, err)
	}
	if fi, err := os.Lstat(link); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("link not replaced by a regular file: %v", fi.Mode())
	}
	if got := readFile(t, link); got != "new" {
		t.Errorf("link content %q", got)
	}
	if got := readFile(t, other); got != "precious" {
		t.Errorf("symlinked-to file written through: %q", got)
	}
}

func TestWriteFileBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := WriteFile("relative/x", nil, noOwner); err == nil || err.Error() != "write relative/x: path is not absolute" {
		t.Errorf("relative: %v", err)
	}
	opts := noOwner
	opts.Mode = 0o4755
	if _, err := WriteFile(filepath.Join(dir, "x"), nil, opts); err == nil || !strings.Contains(err.Error(), "outside 0777") {
		t.Errorf("setuid mode: %v", err)
	}
}

// TestWriteFileCleansUpOnRenameFailure makes the rename fail (the target
// turns into a non-empty directory after the checks) and checks that the
// temp file is gone. It sets a package hook, so it is not parallel.
func TestWriteFileCleansUpOnRenameFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s")
	testHookWriteStep = func(step, _ string) {
		if step != "rename" {
			return
		}
		if err := os.MkdirAll(filepath.Join(path, "sub"), 0o700); err != nil {
			t.Error(err)
		}
	}
	defer func() { testHookWriteStep = nil }()
	_, err := WriteFile(path, []byte("data"), noOwner)
	if err == nil || !strings.HasPrefix(err.Error(), "write "+path+": ") {
		t.Fatalf("err = %v", err)
	}
	if tmp := tempNames(t, dir); len(tmp) > 0 {
		t.Errorf("temp files left: %v", tmp)
	}
}

// mountTinyTmpfs mounts a 64 KiB tmpfs, or skips the test.
func mountTinyTmpfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file until the file system is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

func TestWriteFileDiskFull(t *testing.T) {
	t.Parallel()
	dir := mountTinyTmpfs(t)
	path := filepath.Join(dir, "secret")
	writeRaw(t, path, "old content")
	fill(t, dir)

	changed, err := WriteFile(path, bytes.Repeat([]byte("n"), 32<<10), noOwner)
	if changed || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("WriteFile = %v, %v; want ENOSPC", changed, err)
	}
	if want := "write " + path + ": no space left on device"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if got := readFile(t, path); got != "old content" {
		t.Errorf("old file changed: %q", got)
	}
	if tmp := tempNames(t, dir); len(tmp) > 0 {
		t.Errorf("temp files left: %v", tmp)
	}
}

// TestWriteFileOwner checks that, as root, the temp file already has its
// owner and mode when it is renamed into place. It sets a package hook, so
// it is not parallel.
func TestWriteFileOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	root := publicDir(t, 0)
	path := filepath.Join(root, "new", "secret")
	var atRename *syscall.Stat_t
	testHookWriteStep = func(step, tmp string) {
		if step == "rename" {
			atRename = statT(t, tmp)
		}
	}
	defer func() { testHookWriteStep = nil }()

	opts := Options{Mode: 0o400, UID: 65534, GID: 65534}
	if changed, err := WriteFile(path, []byte("x"), opts); err != nil || !changed {
		t.Fatalf("WriteFile = %v, %v", changed, err)
	}
	if atRename == nil || atRename.Uid != 65534 || atRename.Gid != 65534 || atRename.Mode&0o7777 != 0o400 {
		t.Fatalf("temp file before rename: %+v", atRename)
	}
	st := statT(t, path)
	if st.Uid != 65534 || st.Gid != 65534 {
		t.Errorf("owner %d:%d", st.Uid, st.Gid)
	}
	// The directory is keyward's; the owner may search it.
	if d := statT(t, filepath.Dir(path)); d.Uid != 0 || d.Mode&0o7777 != 0o711 {
		t.Errorf("created dir owner %d mode %#o", d.Uid, d.Mode&0o7777)
	}
	if d := statT(t, root); d.Uid != 0 {
		t.Errorf("pre-existing dir chowned to %d", d.Uid)
	}

	// Same content, owner differs: rewritten. Same everything: untouched.
	if err := os.Chown(path, 0, 0); err != nil {
		t.Fatal(err)
	}
	if changed, err := WriteFile(path, []byte("x"), opts); err != nil || !changed {
		t.Errorf("owner drift not repaired: %v, %v", changed, err)
	}
	atRename = nil
	if changed, err := WriteFile(path, []byte("x"), opts); err != nil || changed || atRename != nil {
		t.Errorf("unchanged file rewritten: %v, %v", changed, err)
	}
	// -1 leaves the owner alone and does not count it.
	if changed, err := WriteFile(path, []byte("x"), Options{Mode: 0o400, UID: -1, GID: -1}); err != nil || changed {
		t.Errorf("UID -1: %v, %v", changed, err)
	}
}
