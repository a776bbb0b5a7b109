package runner

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// guardFile is the file holding the token endpoint's guard value, owned by
// one agent for as long as it runs. The agent holds an exclusive flock on
// the file, so a second agent given the same path refuses to start instead
// of overwriting the first one's value (whose clients would then get 401),
// while a file left by an agent that died is taken over. At exit the agent
// removes the path only while it still is its own file.
type guardFile struct {
	path string
	dir  int      // the parent directory, opened without following links
	f    *os.File // the locked file
}

// defaultGuardPath is the guard file of an agent listening on addr when
// KEYWARD_TOKEN_GUARD_FILE is not set: in /run/keyward as root, else in
// $XDG_RUNTIME_DIR/keyward, else in $TMPDIR/keyward-UID, named after the
// address (endpoint-token-127.0.0.1-8099), so that agents on one host each
// have their own and a client that knows the address knows the file.
func defaultGuardPath(getenv func(string) string, addr string) string {
	var dir string
	switch {
	case os.Geteuid() == 0:
		dir = "/run/keyward"
	case getenv("XDG_RUNTIME_DIR") != "":
		dir = filepath.Join(getenv("XDG_RUNTIME_DIR"), "keyward")
	default:
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("keyward-%d", os.Geteuid()))
	}
	name := addr
	if host, port, err := net.SplitHostPort(addr); err == nil {
		name = host + "-" + port
	}
	name = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, name)
	return filepath.Join(dir, "endpoint-token-"+name)
}

// createGuardFile writes value and a newline to path (mode 0600, parent
// directories created 0700, never through a symlink) and returns the file,
// locked. A path another running agent holds is an error saying so. When
// private is set (a default path), the parent directory must belong to
// keyward's user and be writable by nobody else, as a directory in a shared
// /tmp could have been made by anyone.
func createGuardFile(path string, value []byte, private bool) (_ *guardFile, err error) {
	dirPath, name := filepath.Split(filepath.Clean(path))
	if dirPath == "" {
		dirPath = "."
	}
	if err := os.MkdirAll(dirPath, 0o700); err != nil {
		return nil, err
	}
	dir, err := unix.Open(dirPath, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open directory", Path: dirPath, Err: err}
	}
	defer func() {
		if err != nil {
			unix.Close(dir)
		}
	}()
	if private {
		var st unix.Stat_t
		if err := unix.Fstat(dir, &st); err != nil {
			return nil, &os.PathError{Op: "stat", Path: dirPath, Err: err}
		}
		if int(st.Uid) != os.Geteuid() || st.Mode&0o022 != 0 {
			return nil, fmt.Errorf("%s: directory is not private to uid %d (owner %d, mode %04o): remove it, or set %s", dirPath, os.Geteuid(), st.Uid, st.Mode&0o7777, envTokenGuardFile)
		}
	}
	// The file may be removed by its previous owner between our open and
	// our lock; the inode we locked is then nobody's file, and we start over.
	for attempt := 0; attempt < 10; attempt++ {
		fd, err := unix.Openat(dir, name, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0o600)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		f := os.NewFile(uintptr(fd), path)
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("%s is the guard file of another running keyward agent: give each agent its own with %s", path, envTokenGuardFile)
			}
			return nil, &os.PathError{Op: "lock", Path: path, Err: err}
		}
		g := &guardFile{path: path, dir: dir, f: f}
		if !g.own() {
			f.Close()
			continue
		}
		if err := g.write(value); err != nil {
			f.Close()
			return nil, err
		}
		return g, nil
	}
	return nil, fmt.Errorf("%s: the file keeps being replaced while keyward takes it", path)
}

// write replaces the content of the locked file with value and a newline.
// The file is new or was left by an agent that is gone; no client reads it
// before the endpoint serves.
func (g *guardFile) write(value []byte) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(g.f.Fd()), &st); err != nil {
		return &os.PathError{Op: "stat", Path: g.path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s: not a regular file", g.path)
	}
	if err := g.f.Chmod(0o600); err != nil {
		return err
	}
	if err := g.f.Truncate(0); err != nil {
		return err
	}
	if _, err := g.f.WriteAt(append(append([]byte(nil), value...), '\n'), 0); err != nil {
		return err
	}
	return g.f.Sync()
}

// own reports whether the path still names the file g holds.
func (g *guardFile) own() bool {
	var held, cur unix.Stat_t
	if unix.Fstat(int(g.f.Fd()), &held) != nil {
		return false
	}
	name := filepath.Base(g.path)
	if unix.Fstatat(g.dir, name, &cur, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return false
	}
	return held.Dev == cur.Dev && held.Ino == cur.Ino
}

// Close removes the file when the path still names it (and leaves alone
// whatever another agent may have put there since), then releases it.
func (g *guardFile) Close() error {
	var err error
	if g.own() {
		err = unix.Unlinkat(g.dir, filepath.Base(g.path), 0)
	}
	if cerr := g.f.Close(); err == nil {
		err = cerr
	}
	unix.Close(g.dir)
	return err
}
