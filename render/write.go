package render

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// Errors a target check can wrap; test with errors.Is.
var (
	// ErrSymlink: the target is a symlink and the file does not allow
	// replacing one.
	ErrSymlink = errors.New("target is a symlink")
	// ErrDirectory: the target is a directory.
	ErrDirectory = errors.New("target is a directory")
	// ErrNotRegular: the target is a device, FIFO or socket.
	ErrNotRegular = errors.New("target is not a regular file")
)

// DefaultMode is the mode of a written file when none is given.
const DefaultMode os.FileMode = 0o600

// Options are the properties WriteFile gives the file it writes.
type Options struct {
	// Mode is the file's permission bits; 0 means DefaultMode (0600). Only
	// the bits in 0777 are allowed. The umask never changes it.
	Mode os.FileMode
	// UID and GID are the owner and group given to the file, and to the
	// directories WriteFile creates for it, when the process runs as root;
	// -1 leaves that one as the process creates it. As in File, 0 means
	// root: set -1 when no owner is wanted.
	UID, GID int
	// AllowSymlink lets a target that is a symlink be replaced by the new
	// file; the link is replaced, never written through.
	AllowSymlink bool
}

func (o Options) mode() os.FileMode {
	if o.Mode == 0 {
		return DefaultMode
	}
	return o.Mode
}

// owner returns the uid and gid to give, and whether to give them at all:
// only when running as root and at least one is set.
func (o Options) owner() (uid, gid int, ok bool) {
	if os.Geteuid() != 0 || (o.UID < 0 && o.GID < 0) {
		return -1, -1, false
	}
	return max(o.UID, -1), max(o.GID, -1), true
}

// dirMode is the mode of a directory created for files of mode m: 0700,
// plus search permission for group and others when m grants them any
// access (a 0640 file in a 0700 root-owned directory could not be reached
// by its group). A 0600 or 0400 file gets a 0700 directory.
func dirMode(m os.FileMode) os.FileMode {
	d := os.FileMode(0o700)
	if m&0o070 != 0 {
		d |= 0o010
	}
	if m&0o007 != 0 {
		d |= 0o001
	}
	return d
}

func checkMode(m os.FileMode) error {
	if m&^os.ModePerm != 0 {
		return fmt.Errorf("mode %#o has bits outside 0777", uint32(m))
	}
	return nil
}

// WriteFile atomically replaces path with data: it creates missing parent
// directories (0700, plus search permission for group or others when the
// file's mode grants them access; directories that exist are never
// changed), refuses a target that is a
// directory, a device/FIFO/socket, or a symlink unless opts.AllowSymlink,
// and returns changed=false without touching anything when the file already
// has exactly this content, mode and (when root) owner. Otherwise it creates
// a uniquely named temp file in the same directory with
// O_CREAT|O_EXCL|O_NOFOLLOW and the final mode, fchowns it (root only),
// fchmods it (the umask never matters), writes, fsyncs and closes it, renames
// it onto path and fsyncs the directory.
//
// On failure the temp file is removed and the old target is left byte for
// byte intact. Errors are one line, "write /path: reason" (for example
// "write /run/x: no space left on device"), and wrap the errno or one of
// ErrSymlink, ErrDirectory, ErrNotRegular.
func WriteFile(path string, data []byte, opts Options) (changed bool, err error) {
	if !filepath.IsAbs(path) {
		return false, fmt.Errorf("write %s: path is not absolute", path)
	}
	p := filepath.Clean(path)
	if err := checkMode(opts.Mode); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := checkTarget(p, opts.AllowSymlink); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	st, err := stageFile(p, data, opts)
	if err != nil {
		st.abort()
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if !st.changed {
		return false, nil
	}
	if err := st.commit(); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}

// staged is a file ready to be renamed into place.
type staged struct {
	path    string
	tmp     string   // the temp file; "" once renamed or removed
	created []string // directories created for it, outermost first
	changed bool
}

// stageFile does everything of WriteFile except the rename. It always
// returns a non-nil *staged, whose abort undoes a partial stage. Its errors
// are bare causes (an errno or a sentinel), without the path.
func stageFile(path string, data []byte, opts Options) (*staged, error) {
	st := &staged{path: path}
	mode := opts.mode()
	uid, gid, chown := opts.owner()
	fi, err := os.Lstat(path)
	if err == nil && fi.Mode().IsRegular() {
		same, err := sameFile(path, data, mode, uid, gid, chown)
		if err != nil {
			return st, err
		}
		if same {
			return st, nil
		}
	}
	st.changed = true
	dir, base := filepath.Split(path)
	st.created, err = mkdirAll(filepath.Clean(dir), dirMode(mode), opts)
	if err != nil {
		return st, err
	}
	st.tmp, err = createTemp(dir, base, data, opts)
	return st, err
}

// testHookBeforeRename, when set (by non-parallel tests only), is called
// with the temp file's path just before it is renamed onto the target.
var testHookBeforeRename func(tmp string)

func (s *staged) commit() error {
	if s.tmp == "" {
		return nil
	}
	if testHookBeforeRename != nil {
		testHookBeforeRename(s.tmp)
	}
	if err := os.Rename(s.tmp, s.path); err != nil {
		_ = os.Remove(s.tmp)
		s.tmp = ""
		return cause(err)
	}
	s.tmp = ""
	s.created = nil
	return syncDir(filepath.Dir(s.path))
}

func (s *staged) abort() {
	if s == nil {
		return
	}
	if s.tmp != "" {
		_ = os.Remove(s.tmp)
		s.tmp = ""
	}
	removeCreated(s.created)
	s.created = nil
}

// removeCreated removes the directories mkdirAll created, innermost first,
// as long as they are empty.
func removeCreated(dirs []string) {
	for i := len(dirs) - 1; i >= 0; i-- {
		if os.Remove(dirs[i]) != nil {
			return
		}
	}
}

// checkTarget refuses a target that cannot or must not be replaced, and a
// parent directory that cannot be created or written. It writes nothing.
func checkTarget(path string, allowSymlink bool) error {
	fi, err := os.Lstat(path)
	switch {
	case err == nil:
		if err := checkExisting(fi, allowSymlink); err != nil {
			return err
		}
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		// ENOTDIR: some parent is not a directory; checkParent names it.
	default:
		return cause(err)
	}
	return checkParent(filepath.Dir(path))
}

func checkExisting(fi fs.FileInfo, allowSymlink bool) error {
	switch m := fi.Mode(); {
	case m.IsDir():
		return ErrDirectory
	case m&fs.ModeSymlink != 0:
		if !allowSymlink {
			return ErrSymlink
		}
	case !m.IsRegular():
		return ErrNotRegular
	}
	return nil
}

// checkParent verifies that dir exists as a writable directory, or that its
// deepest existing ancestor is one (so MkdirAll can create the rest).
func checkParent(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("parent %s: %w", d, syscall.ENOTDIR)
			}
			if err := unix.Access(d, unix.W_OK|unix.X_OK); err != nil {
				return fmt.Errorf("parent %s: %w", d, err)
			}
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("parent %s: %w", d, cause(err))
		}
		if filepath.Dir(d) == d {
			return fmt.Errorf("parent %s: %w", d, cause(err))
		}
	}
}

// mkdirAll creates dir and its missing parents with mode (chmod'ed
// explicitly, so the umask does not matter) and, as root, the owner in opts.
// Directories that already exist are never changed. It returns the
// directories it created, outermost first.
func mkdirAll(dir string, mode os.FileMode, opts Options) ([]string, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return nil, fmt.Errorf("parent %s: %w", d, syscall.ENOTDIR)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || filepath.Dir(d) == d {
			return nil, fmt.Errorf("parent %s: %w", d, cause(err))
		}
		missing = append(missing, d)
	}
	var created []string
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		err := os.Mkdir(d, 0o700)
		if errors.Is(err, fs.ErrExist) {
			continue // created concurrently by someone else: not ours to chmod
		}
		if err != nil {
			removeCreated(created)
			return nil, fmt.Errorf("mkdir %s: %w", d, cause(err))
		}
		created = append(created, d)
		if err := fixDir(d, mode, opts); err != nil {
			removeCreated(created)
			return nil, fmt.Errorf("mkdir %s: %w", d, err)
		}
	}
	return created, nil
}

// fixDir gives a directory this package just created its owner (root only)
// and mode, through a descriptor opened without following symlinks.
func fixDir(d string, mode os.FileMode, opts Options) error {
	fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if uid, gid, ok := opts.owner(); ok {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return err
		}
	}
	return unix.Fchmod(fd, uint32(mode))
}

// sameFile reports whether the regular file at path holds exactly data with
// exactly mode (and, when chown, the owner).
func sameFile(path string, data []byte, mode os.FileMode, uid, gid int, chown bool) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
			return false, nil
		}
		return false, cause(err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o7777 != uint32(mode) || st.Size != int64(len(data)) {
		return false, nil
	}
	if chown && ((uid >= 0 && int(st.Uid) != uid) || (gid >= 0 && int(st.Gid) != gid)) {
		return false, nil
	}
	old, err := io.ReadAll(io.LimitReader(f, int64(len(data))+1))
	if err != nil {
		return false, cause(err)
	}
	return bytes.Equal(old, data), nil
}

// createTemp writes data to a new, uniquely named file ".BASE.tmp-RANDOM" in
// dir and returns its path.
func createTemp(dir, base string, data []byte, opts Options) (string, error) {
	if len(base) > 200 {
		base = base[:200] // keep the temp name within NAME_MAX
	}
	for range 100 {
		var rnd [8]byte
		_, _ = rand.Read(rnd[:])
		tmp := filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(rnd[:]))
		err := createFile(tmp, data, opts)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		return tmp, nil
	}
	return "", errors.New("cannot create a unique temp file")
}

// createFile creates path, which must not exist, with data, the mode and (as
// root) the owner in opts, and fsyncs it. The mode is set at creation and
// again with fchmod (the umask may have narrowed it); the owner is set
// before any byte is written. On failure the file is removed.
func createFile(path string, data []byte, opts Options) (err error) {
	mode := opts.mode()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, mode)
	if err != nil {
		return cause(err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(path)
		}
	}()
	fd := int(f.Fd())
	if uid, gid, ok := opts.owner(); ok {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return err
		}
	}
	if err := unix.Fchmod(fd, uint32(mode)); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return cause(err)
	}
	if err := f.Sync(); err != nil {
		return cause(err)
	}
	if err := f.Close(); err != nil {
		return cause(err)
	}
	return nil
}

// syncDir fsyncs a directory so that a rename in it is durable. File
// systems that cannot fsync a directory (EINVAL) are not an error.
func syncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Fsync(fd); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// cause strips a *PathError, *LinkError or *SyscallError from around an
// errno: their path is a temp file's, or one the caller already names.
func cause(err error) error {
	switch e := err.(type) {
	case *fs.PathError:
		return e.Err
	case *os.LinkError:
		return e.Err
	case *os.SyscallError:
		return e.Err
	}
	return err
}
