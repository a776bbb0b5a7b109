package render

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// keyward's own names, which nothing else uses, so that a sweep can tell
// the leftovers of an interrupted write from everything else:
//
//	.BASE.keyward-0123456789abcdef.tmp           a temp file (or a temp symlink of an atomic_dir member)
//	..2025_01_02_15_04_05.keyward-0123456789abcdef   an atomic_dir snapshot directory
//	..data_tmp -> ..TIMESTAMP.keyward-HEX        the symlink an atomic_dir swap renames over ..data
//
// BASE is the target's name (cut to 200 bytes), there for a person looking
// at the directory; ".tmp" at the end keeps the temp file out of a glob
// such as *.env that a consumer may watch.
const (
	tempMarker = ".keyward-"
	tempSuffix = ".tmp"
	hexLen     = 16
	tsLayout   = "2006_01_02_15_04_05"
)

// randomHex returns hexLen lowercase hex digits.
func randomHex() string {
	var b [hexLen / 2]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// tempName returns a new temp name for a file named base.
func tempName(base string) string {
	if len(base) > 200 {
		base = base[:200] // keep the name within NAME_MAX
	}
	return "." + base + tempMarker + randomHex() + tempSuffix
}

// snapshotName returns a new atomic_dir snapshot directory name.
func snapshotName(now time.Time) string {
	return ".." + now.UTC().Format(tsLayout) + tempMarker + randomHex()
}

func isHex(s string) bool {
	if len(s) != hexLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// isTempName reports whether name is one of keyward's temp names.
func isTempName(name string) bool {
	rest, ok := strings.CutSuffix(name, tempSuffix)
	if !ok || len(rest) < 1+1+len(tempMarker)+hexLen || name[0] != '.' {
		return false
	}
	return isHex(rest[len(rest)-hexLen:]) && strings.HasSuffix(rest[:len(rest)-hexLen], tempMarker)
}

// isSnapshotName reports whether name is one of keyward's atomic_dir
// snapshot directory names.
func isSnapshotName(name string) bool {
	n := len(tsLayout)
	if len(name) != 2+n+len(tempMarker)+hexLen || !strings.HasPrefix(name, "..") {
		return false
	}
	if _, err := time.Parse(tsLayout, name[2:2+n]); err != nil {
		return false
	}
	return name[2+n:2+n+len(tempMarker)] == tempMarker && isHex(name[2+n+len(tempMarker):])
}

// sweep removes from the directory fd (path dir) what interrupted writes of
// keyward left there: temp files and temp symlinks, snapshot directories
// that ..data does not point to, and a ..data_tmp symlink to a snapshot.
// Nothing else is touched, whatever its name. The caller holds the
// directory's exclusive lock, so no write of another keyward process is in
// progress there. It returns the paths it removed; the error names a
// leftover that could not be removed.
func sweep(fd int, dir string) (removed []string, err error) {
	names, err := readNames(fd)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	current, _ := readlinkat(fd, dataLink)
	var errs []error
	for _, name := range names {
		var st unix.Stat_t
		if !isTempName(name) && !isSnapshotName(name) && name != dataTmpLink {
			continue
		}
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue // gone meanwhile
		}
		typ := st.Mode & unix.S_IFMT
		var rerr error
		switch {
		case isTempName(name) && (typ == unix.S_IFREG || typ == unix.S_IFLNK):
			rerr = unix.Unlinkat(fd, name, 0)
		case isSnapshotName(name) && typ == unix.S_IFDIR && name != current:
			rerr = removeTree(fd, name)
		case name == dataTmpLink && typ == unix.S_IFLNK:
			if t, err := readlinkat(fd, name); err != nil || !isSnapshotName(t) {
				continue
			}
			rerr = unix.Unlinkat(fd, name, 0)
		default:
			continue
		}
		p := filepath.Join(dir, name)
		if rerr != nil && !errors.Is(rerr, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove leftover %s of an interrupted write: %w", p, rerr))
			continue
		}
		removed = append(removed, p)
	}
	if len(removed) > 0 {
		if err := syncDir(fd, dir); err != nil {
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}

// readNames lists the directory fd through a descriptor of its own, so
// that fd's offset is untouched.
func readNames(fd int) ([]string, error) {
	d, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(d), ".")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	return names, cause(err)
}

// readlinkat returns the target of the symlink name in the directory fd.
func readlinkat(fd int, name string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(fd, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// removeTree removes the directory name of the directory fd and what it
// holds, following no symlink.
func removeTree(fd int, name string) error {
	sub, err := unix.Openat(fd, name, dirOpenFlags, 0)
	if err != nil {
		return err
	}
	names, err := readNames(sub)
	if err != nil {
		unix.Close(sub)
		return err
	}
	for _, n := range names {
		err := unix.Unlinkat(sub, n, 0)
		if errors.Is(err, unix.EISDIR) {
			err = removeTree(sub, n)
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			unix.Close(sub)
			return err
		}
	}
	unix.Close(sub)
	return unix.Unlinkat(fd, name, unix.AT_REMOVEDIR)
}

// Sweep removes keyward's own leftovers of interrupted writes (see the
// names above) from the directories of paths, the targets a run is going
// to write, before anything is fetched: a start whose stores are down
// does not leave copies of old secrets in place until its first write.
// A directory that does not exist yet is skipped. Each directory is swept
// once per process, under the same exclusive lock a Write takes, so a
// write in progress in another keyward process is never touched; later
// Writes of this process do not sweep it again. It returns the paths
// removed; errors name the directory and never stop the other sweeps.
func Sweep(paths []string) (removed []string, err error) {
	ds := newDirSet()
	defer ds.close()
	for _, p := range paths {
		if p == "" {
			continue
		}
		abs, aerr := filepath.Abs(p)
		if aerr != nil {
			continue
		}
		ds.add(filepath.Dir(abs), false)
	}
	ds.openAll()
	var errs []error
	for _, h := range ds.dirs {
		if h.err != nil && !h.missing {
			errs = append(errs, h.err)
		}
	}
	return ds.removed, errors.Join(errs...)
}
