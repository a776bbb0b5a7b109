package render

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Errors about a target's directory; test with errors.Is.
var (
	// ErrDirSymlink: the directory a file is written into is a symlink.
	// Writes never follow one: name the directory it points to instead.
	ErrDirSymlink = errors.New("directory is a symlink")
	// ErrDirReplaced: the directory was moved or replaced (for example by
	// a symlink) while the file was being written; nothing was written.
	ErrDirReplaced = errors.New("directory was replaced during the write")
	// ErrUnreachable: the file's configured owner cannot reach it because
	// a directory that exists denies it search permission.
	ErrUnreachable = errors.New("owner cannot reach the file")
)

// Every operation on a target's directory goes through one descriptor of
// that directory, opened once per Write with O_DIRECTORY|O_NOFOLLOW (the
// directory itself must not be a symlink; its ancestors may be). Temp files,
// renames, links and removals are made relative to it (openat, renameat,
// symlinkat, unlinkat), so a directory moved or swapped for a symlink during
// a write cannot redirect anything; before each rename the path is checked
// to still name the opened directory, and the write is abandoned (temp
// files removed through the descriptor) if it does not.
//
// A Write holds a flock on each directory's descriptor while it has temp
// files there: shared for plain files, exclusive for an atomic_dir group
// (whose swap must not interleave with another) and for the first Write of
// a process into a directory, which sweeps the leftovers of interrupted
// writes (see sweep.go). A sweep thus never removes the temp file of a
// write in progress in another keyward process, and the lock of a process
// killed with SIGKILL is released by the kernel.
const dirOpenFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// lockWait bounds the wait for another keyward process's lock on a
// directory (its writes take milliseconds).
var lockWait = 10 * time.Second

// dirHandle is one directory of a Write.
type dirHandle struct {
	path    string
	fd      int // -1 until opened
	st      unix.Stat_t
	excl    bool  // lock exclusively
	missing bool  // does not exist yet: ensure creates it
	err     error // why the directory cannot be written, for each file in it
	// owner is the handle of the same directory opened under another path
	// in this Write, which holds the lock; nil if none.
	owner *dirHandle
}

// dirSet holds the directories of one Write, each opened once, and the
// directories the Write created.
type dirSet struct {
	files   []fileNeed
	dirs    map[string]*dirHandle
	created []createdDir
	removed []string // leftovers removed by sweeps
}

// fileNeed is what a directory created for a file must let through: its
// owner, its group and who its mode lets read it.
type fileNeed struct {
	path     string
	uid, gid int // -1: keyward's own
	mode     os.FileMode
}

type createdDir struct {
	parent int // a descriptor of its parent, owned by the dirSet
	name   string
}

func newDirSet() *dirSet {
	return &dirSet{dirs: map[string]*dirHandle{}}
}

// need registers a file of the Write, for the modes of the directories
// the Write creates.
func (ds *dirSet) need(f fileNeed) { ds.files = append(ds.files, f) }

// add registers that files of the Write go into dir (a clean absolute
// path); excl asks for an exclusive lock.
func (ds *dirSet) add(dir string, excl bool) *dirHandle {
	h, ok := ds.dirs[dir]
	if !ok {
		h = &dirHandle{path: dir, fd: -1}
		ds.dirs[dir] = h
	}
	h.excl = h.excl || excl
	return h
}

// openAll opens and locks every directory that exists, in path order (so
// that two keyward processes never wait for each other's locks in a
// cycle), and sweeps the ones this process has not swept yet. A directory
// that does not exist is checked to be creatable. Failures are kept in
// each handle's err.
func (ds *dirSet) openAll() {
	paths := make([]string, 0, len(ds.dirs))
	for p := range ds.dirs {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		h := ds.dirs[p]
		h.err = ds.open(h)
	}
}

func (ds *dirSet) open(h *dirHandle) error {
	fd, err := openDir(unix.AT_FDCWD, h.path)
	if errors.Is(err, unix.ENOENT) {
		h.missing = true
		return checkCreatable(filepath.Dir(h.path))
	}
	if err != nil {
		return dirError(h.path, err)
	}
	h.fd = fd
	if err := unix.Fstat(fd, &h.st); err != nil {
		return fmt.Errorf("parent %s: %w", h.path, err)
	}
	if err := unix.Faccessat(fd, ".", unix.W_OK|unix.X_OK, 0); err != nil {
		return fmt.Errorf("parent %s: %w", h.path, err)
	}
	// The same directory under another path (/var/run/x and /run/x): its
	// descriptor holds the lock already, and a second one would wait for
	// it forever.
	for _, o := range ds.dirs {
		if o != h && o.fd >= 0 && o.owner == nil && o.st.Dev == h.st.Dev && o.st.Ino == h.st.Ino {
			h.owner = o
			if h.excl && !o.excl {
				o.excl = true
				if _, err := lockDir(o.fd, true); err != nil {
					return fmt.Errorf("parent %s: %w", h.path, err)
				}
			}
			return nil
		}
	}
	return ds.lockAndSweep(h)
}

// openDir opens dir (relative to at) for a Write: read-only, so that it can
// be listed, locked and fsynced, or with oPath when it cannot be read.
func openDir(at int, dir string) (int, error) {
	fd, err := unix.Openat(at, dir, dirOpenFlags, 0)
	if errors.Is(err, unix.EACCES) {
		fd, err = unix.Openat(at, dir, oPath|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	return fd, err
}

// dirError describes why dir could not be opened as a directory.
func dirError(dir string, err error) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		var st unix.Stat_t
		switch lerr := unix.Lstat(dir, &st); {
		case lerr == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK:
			return fmt.Errorf("parent %s: %w", dir, ErrDirSymlink)
		case lerr == nil:
			return fmt.Errorf("parent %s: %w", dir, syscall.ENOTDIR)
		case errors.Is(lerr, unix.ENOTDIR):
			// names the ancestor that is not a directory
			if err := checkCreatable(filepath.Dir(dir)); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("parent %s: %w", dir, err)
}

// checkCreatable verifies that dir exists as a writable directory, or that
// its deepest existing ancestor is one, so that the missing ones can be
// created. It writes nothing.
func checkCreatable(dir string) error {
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
		if !errors.Is(err, fs.ErrNotExist) || filepath.Dir(d) == d {
			return fmt.Errorf("parent %s: %w", d, cause(err))
		}
	}
}

// lockAndSweep locks h and, the first time this process writes into it,
// sweeps it (under an exclusive lock).
func (ds *dirSet) lockAndSweep(h *dirHandle) error {
	key := sweptKey{h.path, uint64(h.st.Dev), h.st.Ino}
	first := !wasSwept(key)
	ok, err := lockDir(h.fd, h.excl || first)
	if err != nil {
		return fmt.Errorf("parent %s: %w", h.path, err)
	}
	if !ok || !first {
		// Without a lock (a file system without flock, or a directory
		// keyward may not read) another process's write in progress could
		// not be told from a leftover: no sweep.
		return nil
	}
	removed, err := sweep(h.fd, h.path)
	ds.removed = append(ds.removed, removed...)
	if err != nil {
		return err
	}
	markSwept(key)
	return nil
}

// lockDir takes a shared or exclusive flock on the directory fd, waiting
// up to lockWait for another process's. ok is false, with no error, when
// the file system or the descriptor does not support flock.
func lockDir(fd int, excl bool) (ok bool, err error) {
	how := unix.LOCK_SH
	if excl {
		how = unix.LOCK_EX
	}
	deadline := time.Now().Add(lockWait)
	delay := time.Millisecond
	for {
		err := unix.Flock(fd, how|unix.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EWOULDBLOCK):
			if time.Now().After(deadline) {
				return false, fmt.Errorf("locked by another keyward process for more than %v", lockWait)
			}
			time.Sleep(delay)
			delay = min(2*delay, 50*time.Millisecond)
		default:
			return false, nil
		}
	}
}

// sweptKey identifies a directory a process has swept: by path and inode,
// since an inode number is reused once a directory is removed.
type sweptKey struct {
	path     string
	dev, ino uint64
}

var swept sync.Map // sweptKey -> struct{}

func wasSwept(k sweptKey) bool { _, ok := swept.Load(k); return ok }
func markSwept(k sweptKey)     { swept.Store(k, struct{}{}) }

// ensure makes h usable for writing: it creates the missing directories
// (the first time), opens and locks the last one.
func (ds *dirSet) ensure(h *dirHandle) error {
	if h.err != nil {
		return h.err
	}
	if h.fd >= 0 {
		return nil
	}
	fd, err := ds.create(h.path)
	if err != nil {
		return err
	}
	h.fd, h.missing = fd, false
	if err := unix.Fstat(fd, &h.st); err != nil {
		return fmt.Errorf("parent %s: %w", h.path, err)
	}
	// A directory this Write created holds no leftovers, but another
	// process may sweep it: lock it as an existing one.
	return ds.lockAndSweep(h)
}

// create makes dir and its missing parents, each with mkdirat relative to
// a descriptor of its parent, and returns a descriptor of dir. Each one
// created is owned by this process, with the mode dirMode gives it (set
// with fchmod, so the umask does not matter); one that appears
// concurrently is used as it is.
func (ds *dirSet) create(dir string) (int, error) {
	var missing []string
	at := -1
	for d := dir; ; d = filepath.Dir(d) {
		var fd int
		var err error
		if d == dir {
			// It may have appeared since the check, as a symlink too.
			fd, err = openDir(unix.AT_FDCWD, d)
			if err != nil && !errors.Is(err, unix.ENOENT) {
				return -1, dirError(d, err)
			}
		} else {
			// An ancestor may be a symlink (/var/run -> /run).
			fd, err = unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if errors.Is(err, unix.EACCES) {
				fd, err = unix.Open(d, oPath|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			}
		}
		if err == nil {
			at = fd
			break
		}
		if !errors.Is(err, unix.ENOENT) || filepath.Dir(d) == d {
			return -1, fmt.Errorf("parent %s: %w", d, err)
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		name := filepath.Base(d)
		err := unix.Mkdirat(at, name, 0o700)
		mine := err == nil
		if err != nil && !errors.Is(err, unix.EEXIST) {
			unix.Close(at)
			return -1, fmt.Errorf("mkdir %s: %w", d, err)
		}
		fd, err := openDir(at, name)
		if err != nil {
			unix.Close(at)
			return -1, dirError(d, err)
		}
		if mine {
			ds.created = append(ds.created, createdDir{parent: at, name: name})
			if err := ds.fixCreated(fd, d); err != nil {
				unix.Close(fd)
				return -1, fmt.Errorf("mkdir %s: %w", d, err)
			}
		} else {
			unix.Close(at)
		}
		at = fd
	}
	return at, nil
}

// fixCreated gives a directory this Write created its mode, from the
// files of the Write below it.
func (ds *dirSet) fixCreated(fd int, dir string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	var below []fileNeed
	for _, f := range ds.files {
		if strings.HasPrefix(f.path, dir+"/") {
			below = append(below, f)
		}
	}
	return unix.Fchmod(fd, uint32(dirMode(&st, below)))
}

// dirMode is the mode of a directory keyward creates (owned by keyward
// itself) for the files below it: 0700, plus search permission for
// whoever else must reach one of them. A file's group reaches it through
// the directory's group bits when the directory has the file's group,
// anyone else (a different owner, a different group, others) through the
// others bits: 0711 lets them open a file whose name they know, never list
// the directory, and each file's own mode and owner decide who reads it.
func dirMode(st *unix.Stat_t, files []fileNeed) os.FileMode {
	// Search permission for others is given to the group too: a user in
	// the directory's group gets the group bits, not the others bits.
	const anyone = 0o011
	mode := os.FileMode(0o700)
	euid, egid := os.Geteuid(), os.Getegid()
	for _, f := range files {
		uid, gid := f.uid, f.gid
		if uid < 0 {
			uid = euid
		}
		if gid < 0 {
			gid = egid
		}
		if uid != 0 && uint32(uid) != st.Uid {
			mode |= anyone
		}
		if f.mode&0o070 != 0 {
			if uint32(gid) == st.Gid {
				mode |= 0o010
			} else {
				mode |= anyone
			}
		}
		if f.mode&0o007 != 0 {
			mode |= anyone
		}
	}
	return mode
}

// close releases the directories' descriptors (and with them the locks).
func (ds *dirSet) close() {
	for _, h := range ds.dirs {
		if h.fd >= 0 {
			unix.Close(h.fd)
			h.fd = -1
		}
	}
	for _, c := range ds.created {
		unix.Close(c.parent)
	}
	ds.created = nil
}

// removeCreated removes the directories the Write created that are empty,
// innermost first.
func (ds *dirSet) removeCreated() {
	for i := len(ds.created) - 1; i >= 0; i-- {
		c := ds.created[i]
		_ = unix.Unlinkat(c.parent, c.name, unix.AT_REMOVEDIR)
	}
}

// stillThere checks that h's path still names the directory h has open.
func (h *dirHandle) stillThere() error {
	var st unix.Stat_t
	if err := unix.Lstat(h.path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Dev != h.st.Dev || st.Ino != h.st.Ino {
		return fmt.Errorf("parent %s: %w", h.path, ErrDirReplaced)
	}
	return nil
}

// checkReach refuses a file whose configured owner uid is certainly denied
// search permission by a directory on the way to it that exists (keyward
// changes only the directories it creates, and those let the owner in).
// A directory whose group bits allow search may be open to uid through a
// group keyward cannot know of, so it is not refused.
func checkReach(dir string, uid int) error {
	if uid <= 0 || uid == os.Geteuid() {
		return nil
	}
	for d := dir; ; d = filepath.Dir(d) {
		var st unix.Stat_t
		err := unix.Stat(d, &st)
		if err == nil && !searchable(&st, uint32(uid)) {
			return fmt.Errorf("%w: uid %d may not search %s (mode %04o, owner %d:%d); keyward changes only directories it creates", ErrUnreachable, uid, d, st.Mode&0o7777, st.Uid, st.Gid)
		}
		if filepath.Dir(d) == d {
			return nil
		}
	}
}

// searchable reports whether uid may be allowed to search a directory
// with this stat: as its owner, through the owner bits only; otherwise
// through the group bits (it may be a member) or the others bits.
func searchable(st *unix.Stat_t, uid uint32) bool {
	if st.Uid == uid {
		return st.Mode&0o100 != 0
	}
	return st.Mode&0o011 != 0
}

// syncDir fsyncs a directory so that a rename in it is durable. File
// systems that cannot fsync a directory (EINVAL), and a directory opened
// as O_PATH (EBADF), are not an error.
func syncDir(fd int, dir string) error {
	if err := unix.Fsync(fd); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EBADF) {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
