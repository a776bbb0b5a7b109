package render

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestKeywardNames(t *testing.T) {
	t.Parallel()
	for range 100 {
		if n := tempName("app.env"); !isTempName(n) || !strings.HasPrefix(n, ".app.env.keyward-") || isSnapshotName(n) {
			t.Fatalf("tempName %q not recognised", n)
		}
		if n := snapshotName(time.Now()); !isSnapshotName(n) || isTempName(n) || !isTSDir(n) {
			t.Fatalf("snapshotName %q not recognised", n)
		}
	}
	if n := tempName(strings.Repeat("x", 300)); len(n) > 255 || !isTempName(n) {
		t.Errorf("long base: %d bytes", len(n))
	}
	for _, n := range lookAlikes {
		if isTempName(n) || isSnapshotName(n) {
			t.Errorf("%q taken for one of keyward's names", n)
		}
	}
}

// lookAlikes are names close to keyward's temp and snapshot names that
// are not keyward's: a sweep must never remove them.
var lookAlikes = []string{
	".app.env.tmp-0123456789abcdef",                  // another tool's temp name
	".app.env.keyward-0123456789ABCDEF.tmp",          // upper-case hex
	".app.env.keyward-0123456789abcde.tmp",           // 15 digits
	".app.env.keyward-0123456789abcdef0.tmp",         // 17 digits
	"app.env.keyward-0123456789abcdef.tmp",           // not hidden
	".keyward-0123456789abcdef.tmp",                  // no base
	".app.env.keyward-0123456789abcdef.tmp~",         // an editor's backup of one
	".app.env.keyward-0123456789abcdef",              // no .tmp
	"..2025_01_02_03_04_05.123456789",                // the kubelet's snapshot name
	"..2025_13_02_03_04_05.keyward-0123456789abcdef", // no such month
	"..2025_01_02_03_04_05.keyward-0123456789abcdeg",
	"..2025_01_02_03_04_05.keyward-0123456789abcdef.x",
	"...2025_01_02_03_04_05.keyward-0123456789abcdef",
}

func mkfile(t *testing.T, p, data string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// TestSweepLeftovers plants every kind of leftover an interrupted write
// leaves (a temp file, a temp symlink, snapshot directories that ..data
// does not point to, a ..data_tmp link) and look-alikes that are not
// keyward's, then writes once: the leftovers are gone, everything else is
// untouched.
func TestSweepLeftovers(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	plain, atomic, other := filepath.Join(root, "plain"), filepath.Join(root, "atomic"), filepath.Join(root, "other")
	for _, d := range []string{plain, atomic, other, filepath.Join(plain, "sub")} {
		mkdir(t, d)
	}
	const (
		cur    = "..2025_01_02_03_04_05.keyward-00000000000000aa"
		orphan = "..2025_01_02_03_04_06.keyward-00000000000000bb"
		staged = "..2025_01_02_03_04_07.keyward-00000000000000cc"
	)
	// An atomic_dir layout whose swaps were interrupted: an old snapshot
	// not removed, a staged one with ..data_tmp pointing at it.
	for _, ts := range []string{cur, orphan, staged} {
		mkdir(t, filepath.Join(atomic, ts))
		mkfile(t, filepath.Join(atomic, ts, "a"), "a from "+ts)
	}
	mkfile(t, filepath.Join(atomic, cur, "a"), "new") // unchanged: no swap, the sweep alone acts
	symlink(t, cur, filepath.Join(atomic, dataLink))
	symlink(t, dataLink+"/a", filepath.Join(atomic, "a"))
	symlink(t, staged, filepath.Join(atomic, dataTmpLink))

	leftovers := []string{
		filepath.Join(plain, ".app.env.keyward-0123456789abcdef.tmp"),
		filepath.Join(plain, ".other.keyward-fedcba9876543210.tmp"),
		filepath.Join(atomic, ".a.keyward-0123456789abcdef.tmp"), // a member link's temp symlink
		filepath.Join(atomic, orphan),
		filepath.Join(atomic, staged),
		filepath.Join(atomic, dataTmpLink),
	}
	mkfile(t, leftovers[0], "old secret")
	mkfile(t, leftovers[1], "old secret")
	symlink(t, dataLink+"/a", leftovers[2])

	var survivors []string
	for _, n := range lookAlikes {
		for _, d := range []string{plain, atomic} {
			p := filepath.Join(d, n)
			if strings.HasPrefix(n, "..") {
				mkdir(t, p)
			} else {
				mkfile(t, p, "not keyward's")
			}
			survivors = append(survivors, p)
		}
	}
	// Right names, wrong kinds, and places a write never sweeps.
	keep := []string{
		filepath.Join(plain, ".dir.keyward-0123456789abcdef.tmp"),
		filepath.Join(plain, ".fifo.keyward-0123456789abcdef.tmp"),
		filepath.Join(plain, "..2025_01_02_03_04_05.keyward-00000000000000dd"), // a file, not a directory
		filepath.Join(plain, "sub", ".x.keyward-0123456789abcdef.tmp"),         // not a directory written to
		filepath.Join(other, dataTmpLink),                                      // not to a snapshot
		filepath.Join(atomic, cur),                                             // the current snapshot
	}
	mkdir(t, keep[0])
	if err := syscall.Mkfifo(keep[1], 0o600); err != nil {
		t.Fatal(err)
	}
	mkfile(t, keep[2], "x")
	mkfile(t, keep[3], "x")
	symlink(t, "../elsewhere", keep[4])
	survivors = append(survivors, keep...)

	files := []File{
		rawFile(filepath.Join(plain, "app.env"), "A"),
		{Path: filepath.Join(atomic, "a"), Format: FormatRaw, Secret: "A", AtomicDir: true, UID: -1, GID: -1},
		rawFile(filepath.Join(other, "c"), "A"),
	}
	res, err := Render(files, resolved(map[string]string{"A": "new"}))
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(slices.Values(res.Removed))
	want := slices.Sorted(slices.Values(leftovers))
	if !slices.Equal(got, want) {
		t.Errorf("Removed = %q\nwant      %q", got, want)
	}
	for _, p := range leftovers {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("leftover %s not removed (%v)", p, err)
		}
	}
	for _, p := range survivors {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s is not keyward's and was removed: %v", p, err)
		}
	}
	if got := readFile(t, filepath.Join(atomic, "a")); got != "new" || readlink(t, filepath.Join(atomic, dataLink)) != cur {
		t.Errorf("atomic a = %q", got)
	}

	// The sweep is done once per directory and process: what a later
	// write finds is not swept again.
	late := filepath.Join(plain, ".late.keyward-0123456789abcdef.tmp")
	mkfile(t, late, "x")
	res, err = Render(files, resolved(map[string]string{"A": "newer"}))
	if err != nil || len(res.Removed) != 0 {
		t.Fatalf("second render: %+v, %v", res, err)
	}
	if _, err := os.Lstat(late); err != nil {
		t.Errorf("swept twice: %v", err)
	}
}

// TestSweepSparesAWriteInProgress: another keyward process holds a shared
// lock on the directory while its temp file exists. The first write of
// this process needs the exclusive lock to sweep: it waits (here: not at
// all) and fails rather than remove the other's temp file. A later write
// does not sweep and goes through under the shared lock. It sets lockWait,
// so it is not parallel.
func TestSweepSparesAWriteInProgress(t *testing.T) {
	old := lockWait
	lockWait = 0
	defer func() { lockWait = old }()

	dir := t.TempDir()
	target := filepath.Join(dir, "s")
	other := func() (unlock func(), tmp string) {
		fd, err := unix.Open(dir, dirOpenFlags, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Flock(fd, unix.LOCK_SH); err != nil {
			t.Fatal(err)
		}
		tmp = filepath.Join(dir, tempName("s"))
		mkfile(t, tmp, "the other process's new value")
		return func() { unix.Close(fd) }, tmp
	}

	unlock, tmp := other()
	_, err := WriteFile(target, []byte("x"), noOwner)
	if err == nil || !strings.Contains(err.Error(), "locked by another keyward process") {
		t.Fatalf("err = %v, want a lock error", err)
	}
	if _, err := os.Lstat(tmp); err != nil {
		t.Fatalf("temp file of a write in progress removed: %v", err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target written without the lock")
	}
	unlock() // the other process died: its temp file is now a leftover

	if _, err := WriteFile(target, []byte("x"), noOwner); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover not removed once its writer was gone")
	}

	unlock, tmp = other()
	defer unlock()
	if _, err := WriteFile(target, []byte("y"), noOwner); err != nil {
		t.Fatalf("write beside another process's write: %v", err)
	}
	if _, err := os.Lstat(tmp); err != nil {
		t.Errorf("temp file of a write in progress removed: %v", err)
	}
}
