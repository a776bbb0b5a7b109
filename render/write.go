package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

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
	// ErrOwner: the file's owner, group or mode cannot be applied (keyward
	// lacks the right to chown, or the file system does not keep it).
	ErrOwner = errors.New("cannot apply owner, group or mode")
)

// DefaultMode is the mode of a written file when none is given.
const DefaultMode os.FileMode = 0o600

// Options are the properties WriteFile gives the file it writes.
type Options struct {
	// Mode is the file's permission bits; 0 means DefaultMode (0600). Only
	// the bits in 0777 are allowed, and the owner must be able to read.
	// The umask never changes it.
	Mode os.FileMode
	// UID and GID are the owner and group given to the file; -1 leaves
	// that one as the process creates it (its own uid, its group). As in
	// File, 0 means root: set -1 when no owner is wanted. An owner or group the process has no right to give (another uid without
	// CAP_CHOWN, a group it is not a member of) is an error wrapping
	// ErrOwner, never silently skipped.
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

func checkMode(m os.FileMode) error {
	if m&^os.ModePerm != 0 {
		return fmt.Errorf("mode %#o has bits outside 0777", uint32(m))
	}
	if m != 0 && m&0o400 == 0 {
		return fmt.Errorf("mode %04o does not let the file's owner read it", uint32(m))
	}
	return nil
}

// testHookWriteStep, when set (by non-parallel tests and the test helper
// process only), is called with the temp file's path after it is created
// ("created", still empty) and before it is renamed onto the target
// ("rename"), and with "" once a Write has opened its directories
// ("opened").
var testHookWriteStep func(step, tmp string)

func writeStep(step, tmp string) {
	if testHookWriteStep != nil {
		testHookWriteStep(step, tmp)
	}
}

// WriteFile atomically replaces path with data, through a descriptor of
// its directory opened once without following a symlink (see dir.go): it
// creates missing parent directories (owned by this process, 0700, plus
// search permission for whoever else must reach the file; directories that
// exist are never changed), refuses a parent directory that is a symlink
// (ErrDirSymlink) or is replaced during the write (ErrDirReplaced), a
// target that is a directory, a device/FIFO/socket, or a symlink unless
// opts.AllowSymlink, and an owner that a directory on the way denies
// (ErrUnreachable). It returns changed=false without touching anything when
// the file already has exactly this content, mode and owner. Otherwise it
// creates a uniquely named temp file (keyward's temp name, see sweep.go) in
// the same directory with O_CREAT|O_EXCL|O_NOFOLLOW, gives it its owner and
// mode (checked with fstat: the umask never matters, and an owner or mode
// the file system does not keep is an error), writes, fsyncs and closes
// it, renames it onto path and fsyncs the directory. The first write of a
// process into a directory removes the leftovers of interrupted writes
// there first.
//
// On failure the temp file is removed and the old target is left byte for
// byte intact. Errors are one line, "write /path: reason" (for example
// "write /run/x: no space left on device"), and wrap the errno or one of
// the sentinels above.
func WriteFile(path string, data []byte, opts Options) (changed bool, err error) {
	if !filepath.IsAbs(path) {
		return false, fmt.Errorf("write %s: path is not absolute", path)
	}
	p := filepath.Clean(path)
	if err := checkMode(opts.Mode); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := checkOwner(opts.UID, opts.GID); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	ds := newDirSet()
	defer ds.close()
	s := newSingle(ds, File{Path: p, Mode: opts.Mode, UID: opts.UID, GID: opts.GID, AllowSymlink: opts.AllowSymlink}, p, data)
	ds.openAll()
	writeStep("opened", "")
	if err := s.checkErr(); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := s.stage(); err != nil {
		s.abort()
		ds.removeCreated()
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if !s.changed {
		return false, nil
	}
	if err := s.commit(nil); err != nil {
		ds.removeCreated()
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}

// singleFile is a file written on its own (not part of an atomic_dir
// group): a temp file renamed onto the target.
type singleFile struct {
	ds      *dirSet
	file    File
	dir     *dirHandle
	name    string // base name in dir
	path    string // clean target path
	data    []byte
	tmp     string // the temp file's name in dir; "" once renamed or removed
	changed bool
}

func newSingle(ds *dirSet, f File, p string, data []byte) *singleFile {
	o := f.Options()
	ds.need(fileNeed{path: p, uid: o.UID, gid: o.GID, mode: o.mode()})
	return &singleFile{ds: ds, file: f, path: p, name: filepath.Base(p), data: data, dir: ds.add(filepath.Dir(p), false)}
}

func (s *singleFile) check(fail func(File, error)) {
	if err := s.checkErr(); err != nil {
		fail(s.file, err)
	}
}

// checkErr refuses a target that cannot or must not be replaced, a parent
// directory that cannot be created or written, and an owner who could not
// reach the file. It writes nothing.
func (s *singleFile) checkErr() error {
	if s.dir.err != nil {
		return s.dir.err
	}
	if s.dir.fd >= 0 {
		if err := checkTargetAt(s.dir.fd, s.name, s.file.AllowSymlink); err != nil {
			return err
		}
	}
	return checkReach(s.dir.path, s.file.UID)
}

func (s *singleFile) stage() error {
	o := s.file.Options()
	if s.dir.fd >= 0 {
		same, err := sameFileAt(s.dir.fd, s.name, s.data, o)
		if err != nil || same {
			return err
		}
	}
	s.changed = true
	if err := s.ds.ensure(s.dir); err != nil {
		return err
	}
	if err := s.dir.stillThere(); err != nil {
		return err
	}
	var err error
	s.tmp, err = createTemp(s.dir, s.name, s.data, o)
	return err
}

func (s *singleFile) commit(changed map[string]bool) error {
	if s.tmp == "" {
		return nil
	}
	writeStep("rename", filepath.Join(s.dir.path, s.tmp))
	if err := s.dir.stillThere(); err != nil {
		s.abort()
		return err
	}
	if err := unix.Renameat(s.dir.fd, s.tmp, s.dir.fd, s.name); err != nil {
		s.abort()
		return err
	}
	s.tmp = ""
	if changed != nil {
		changed[s.path] = true
	}
	return syncDir(s.dir.fd, s.dir.path)
}

func (s *singleFile) abort() {
	if s.tmp != "" {
		_ = unix.Unlinkat(s.dir.fd, s.tmp, 0)
		s.tmp = ""
	}
}

func (s *singleFile) failure(err error) (File, error) { return s.file, cause(err) }

// checkTargetAt checks the entry name of the directory fd: absent, or a
// file that may be replaced.
func checkTargetAt(fd int, name string, allowSymlink bool) error {
	var st unix.Stat_t
	err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	return checkExisting(&st, allowSymlink)
}

func checkExisting(st *unix.Stat_t, allowSymlink bool) error {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		return ErrDirectory
	case unix.S_IFLNK:
		if !allowSymlink {
			return ErrSymlink
		}
	default:
		return ErrNotRegular
	}
	return nil
}

// sameFileAt reports whether the entry name of the directory fd is a
// regular file holding exactly data with exactly the mode and the owner and
// group opts asks for. A file keyward may not read is not the same.
func sameFileAt(fd int, name string, data []byte, opts Options) (bool, error) {
	f, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EACCES) {
			return false, nil
		}
		return false, err
	}
	file := os.NewFile(uintptr(f), name)
	defer file.Close()
	var st unix.Stat_t
	if err := unix.Fstat(f, &st); err != nil {
		return false, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || uint32(st.Mode)&0o7777 != uint32(opts.mode()) || st.Size != int64(len(data)) {
		return false, nil
	}
	if (opts.UID >= 0 && st.Uid != uint32(opts.UID)) || (opts.GID >= 0 && st.Gid != uint32(opts.GID)) {
		return false, nil
	}
	old, err := io.ReadAll(io.LimitReader(file, int64(len(data))+1))
	if err != nil {
		return false, cause(err)
	}
	return bytes.Equal(old, data), nil
}

// createTemp writes data to a new file with a keyward temp name in the
// directory h and returns that name.
func createTemp(h *dirHandle, base string, data []byte, opts Options) (string, error) {
	for range 100 {
		name := tempName(base)
		err := createFileAt(h.fd, h.path, name, data, opts)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return "", err
		}
		return name, nil
	}
	return "", errors.New("cannot create a unique temp file")
}

// createFileAt creates name, which must not exist, in the directory fd (at
// path dir, for the test hook) with data, the owner and group, and the mode
// in opts, and fsyncs it. The owner and mode are set before any byte is
// written. On failure the file is removed.
func createFileAt(fd int, dir, name string, data []byte, opts Options) (err error) {
	mode := opts.mode()
	f, err := unix.Openat(fd, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(mode))
	if err != nil {
		return err
	}
	file := os.NewFile(uintptr(f), name)
	defer func() {
		if err != nil {
			_ = file.Close()
			_ = unix.Unlinkat(fd, name, 0)
		}
	}()
	writeStep("created", filepath.Join(dir, name))
	if err := applyOwnerMode(f, opts); err != nil {
		return err
	}
	if _, err := file.Write(data); err != nil {
		return cause(err)
	}
	if err := file.Sync(); err != nil {
		return cause(err)
	}
	return cause(file.Close())
}

// applyOwnerMode gives the open file f the owner, group and mode of opts,
// and checks with fstat that the file system kept them. fchown is called
// only when the owner or group differs from what the file has, so a
// process that is not root can still set its own uid and a group it is a
// member of; anything else it cannot do is an error.
func applyOwnerMode(f int, opts Options) error {
	mode := opts.mode()
	var st unix.Stat_t
	if err := unix.Fstat(f, &st); err != nil {
		return err
	}
	uid, gid := max(opts.UID, -1), max(opts.GID, -1)
	if (uid >= 0 && st.Uid != uint32(uid)) || (gid >= 0 && st.Gid != uint32(gid)) {
		if err := unix.Fchown(f, uid, gid); err != nil {
			return ownerError(uid, gid, err)
		}
	}
	if err := unix.Fchmod(f, uint32(mode)); err != nil {
		return err
	}
	if err := unix.Fstat(f, &st); err != nil {
		return err
	}
	switch {
	case uid >= 0 && st.Uid != uint32(uid), gid >= 0 && st.Gid != uint32(gid):
		return fmt.Errorf("%w: the file system does not keep owner %d:%d (it shows %d:%d)", ErrOwner, uid, gid, st.Uid, st.Gid)
	case uint32(st.Mode)&0o7777 != uint32(mode):
		return fmt.Errorf("%w: the file system does not keep mode %04o (it shows %04o)", ErrOwner, uint32(mode), st.Mode&0o7777)
	}
	return nil
}

// checkOwner refuses, before anything is written, an owner or group that
// this process has no right to give: without CAP_CHOWN (root has it,
// unless a container dropped it), only its own uid and a group it is a
// member of.
func checkOwner(uid, gid int) error {
	if (uid < 0 && gid < 0) || hasCapChown() {
		return nil
	}
	if uid >= 0 && uid != os.Geteuid() {
		return ownerError(uid, -1, unix.EPERM)
	}
	if gid >= 0 && gid != os.Getegid() {
		groups, err := os.Getgroups()
		if err == nil && !slices.Contains(groups, gid) {
			return ownerError(-1, gid, unix.EPERM)
		}
	}
	return nil
}

// ownerError explains a failed or refused fchown.
func ownerError(uid, gid int, err error) error {
	if !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("%w: chown %d:%d: %w", ErrOwner, uid, gid, err)
	}
	euid := os.Geteuid()
	if uid >= 0 && uid != euid {
		return fmt.Errorf("%w: owner %d: keyward runs as uid %d without CAP_CHOWN, and only root (or CAP_CHOWN) can give a file another owner", ErrOwner, uid, euid)
	}
	return fmt.Errorf("%w: group %d: keyward runs as uid %d, is not a member of group %d and lacks CAP_CHOWN", ErrOwner, gid, euid, gid)
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
