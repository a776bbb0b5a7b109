package render

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The kubelet's AtomicWriter layout of a directory D whose files change
// together:
//
//	D/..2025_01_02_15_04_05.keyward-HEX/NAME   the content, in a fresh dir per swap
//	D/..data -> ..2025_01_02_15_04_05.keyward-HEX
//	D/NAME   -> ..data/NAME
//
// A swap builds a new snapshot directory, points a ..data_tmp symlink at
// it and renames that over ..data (one atomic rename switches every file),
// then removes the previous directory. A reader that opens D/a and then D/b
// sees either both old or b new, never a new a with an old b. A member not
// linked yet (a first render, a file new to the group) gets its D/NAME
// link before the rename, dangling until ..data holds it, so the members
// appear together too: never a without b. keyward names
// its snapshots ..TIMESTAMP.keyward-HEX (sweep.go) so that a sweep knows
// them; a ..data that points to any ..NAME directory (such as the
// kubelet's ..TIMESTAMP.DIGITS) is accepted as the current one.
//
// Every step goes through the descriptor of D that the Write opened (see
// dir.go), under its exclusive lock.
const (
	dataLink    = "..data"
	dataTmpLink = "..data_tmp"
)

// testHookAtomicStep, when set (by non-parallel tests and the test helper
// process only), is called after each step of an atomic directory swap.
var testHookAtomicStep func(step string)

func atomicStep(step string) {
	if testHookAtomicStep != nil {
		testHookAtomicStep(step)
	}
}

// isTSDir reports whether name may be the target of ..data: a ..NAME
// directory of D.
func isTSDir(name string) bool {
	return strings.HasPrefix(name, "..") && name != ".." && name != dataLink &&
		name != dataTmpLink && !strings.ContainsRune(name, '/')
}

type groupItem struct {
	file    File
	name    string // base name in the group's directory
	data    []byte
	changed bool // content, mode or owner differ from the current ..data
	relink  bool // D/NAME is not yet the symlink ..data/NAME
}

// atomicGroup is the AtomicDir files of one Write that share a directory.
type atomicGroup struct {
	ds    *dirSet
	dir   *dirHandle
	items []groupItem
	oldTS string // the directory ..data points to now, "" if none
	newTS string // the staged snapshot's name in dir, "" if none (or committed)
	// dataTmp is set while a ..data_tmp symlink of this Write exists.
	dataTmp bool
	// prelinked are the members linked before the swap (see commit),
	// until it is done: abort removes them.
	prelinked []string
}

func newGroup(ds *dirSet, dir string) *atomicGroup {
	return &atomicGroup{ds: ds, dir: ds.add(dir, true)}
}

// add adds a file of the group, registering what its directory must let
// through.
func (g *atomicGroup) add(f File, p string, data []byte) {
	o := f.Options()
	g.ds.need(fileNeed{path: p, uid: o.UID, gid: o.GID, mode: o.mode()})
	g.items = append(g.items, groupItem{file: f, name: filepath.Base(p), data: data})
}

func (g *atomicGroup) check(fail func(File, error)) {
	if len(g.items) == 0 {
		return
	}
	if err := g.checkDir(); err != nil {
		fail(g.items[0].file, err)
		return
	}
	for _, it := range g.items {
		if err := g.checkMember(it.name, it.file.AllowSymlink); err != nil {
			fail(it.file, err)
		} else if err := checkReach(g.dir.path, it.file.UID); err != nil {
			fail(it.file, err)
		}
	}
}

// checkDir checks the group's directory and its ..data link.
func (g *atomicGroup) checkDir() error {
	if g.dir.err != nil {
		return g.dir.err
	}
	if g.dir.fd < 0 {
		return nil // created by stage
	}
	link := filepath.Join(g.dir.path, dataLink)
	var st unix.Stat_t
	err := unix.Fstatat(g.dir.fd, dataLink, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == nil:
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			return fmt.Errorf("%s is not a symlink", link)
		}
		target, err := readlinkat(g.dir.fd, dataLink)
		if err != nil {
			return fmt.Errorf("%s: %w", link, err)
		}
		if !isTSDir(target) {
			return fmt.Errorf("%s does not point to a ..timestamp directory of %s", link, g.dir.path)
		}
		g.oldTS = target
	case errors.Is(err, unix.ENOENT):
	default:
		return fmt.Errorf("%s: %w", link, err)
	}
	return nil
}

// checkMember checks the user-visible entry D/NAME: absent, the expected
// ..data/NAME symlink, or a regular file (replaced by the link).
func (g *atomicGroup) checkMember(name string, allowSymlink bool) error {
	if g.dir.fd < 0 {
		return nil
	}
	var st unix.Stat_t
	err := unix.Fstatat(g.dir.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		if t, err := readlinkat(g.dir.fd, name); err == nil && t == dataLink+"/"+name {
			return nil
		}
	}
	return checkExisting(&st, allowSymlink)
}

func (g *atomicGroup) stage() error {
	oldFd := -1
	if g.oldTS != "" {
		fd, err := unix.Openat(g.dir.fd, g.oldTS, dirOpenFlags, 0)
		if err == nil {
			oldFd = fd
			defer unix.Close(oldFd)
		} else if !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("open %s: %w", filepath.Join(g.dir.path, g.oldTS), err)
		}
	}
	swap := false
	for i := range g.items {
		it := &g.items[i]
		it.changed = true
		if oldFd >= 0 {
			same, err := sameFileAt(oldFd, it.name, it.data, it.file.Options())
			if err != nil {
				return err
			}
			it.changed = !same
		}
		it.relink = true
		if g.dir.fd >= 0 {
			t, err := readlinkat(g.dir.fd, it.name)
			it.relink = err != nil || t != dataLink+"/"+it.name
		}
		swap = swap || it.changed
	}
	if !swap {
		return nil
	}

	if err := g.ds.ensure(g.dir); err != nil {
		return err
	}
	if err := g.dir.stillThere(); err != nil {
		return err
	}
	name := snapshotName(time.Now())
	ts := filepath.Join(g.dir.path, name)
	if err := unix.Mkdirat(g.dir.fd, name, 0o700); err != nil {
		return fmt.Errorf("mkdir %s: %w", ts, err)
	}
	g.newTS = name
	newFd, err := unix.Openat(g.dir.fd, name, dirOpenFlags, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", ts, err)
	}
	defer unix.Close(newFd)
	var needs []fileNeed
	names := map[string]bool{}
	for _, it := range g.items {
		o := it.file.Options()
		names[it.name] = true
		needs = append(needs, fileNeed{path: filepath.Join(ts, it.name), uid: o.UID, gid: o.GID, mode: o.mode()})
		if err := createFileAt(newFd, ts, it.name, it.data, o); err != nil {
			return err
		}
	}
	carried, err := g.carryOver(oldFd, newFd, names)
	if err != nil {
		return err
	}
	needs = append(needs, carried...)
	var st unix.Stat_t
	if err := unix.Fstat(newFd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", ts, err)
	}
	if err := unix.Fchmod(newFd, uint32(dirMode(&st, needs))); err != nil {
		return fmt.Errorf("chmod %s: %w", ts, err)
	}
	return syncDir(newFd, ts)
}

// carryOver links into the new snapshot the files of the current one that
// this Write does not render (a re-render of only some files of the
// group), so their D/NAME links keep working. It returns what the new
// snapshot directory must let through for them.
func (g *atomicGroup) carryOver(oldFd, newFd int, names map[string]bool) ([]fileNeed, error) {
	if oldFd < 0 {
		return nil, nil
	}
	old := filepath.Join(g.dir.path, g.oldTS)
	entries, err := readNames(oldFd)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", old, err)
	}
	var needs []fileNeed
	for _, e := range entries {
		var st unix.Stat_t
		if names[e] || unix.Fstatat(oldFd, e, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		needs = append(needs, fileNeed{path: filepath.Join(old, e), uid: int(st.Uid), gid: int(st.Gid), mode: os.FileMode(st.Mode & 0o777)})
		if unix.Linkat(oldFd, e, newFd, e, 0) == nil {
			continue
		}
		if err := copyFileAt(oldFd, newFd, filepath.Join(g.dir.path, g.newTS), e, &st); err != nil {
			return nil, fmt.Errorf("carry over %s: %w", filepath.Join(old, e), err)
		}
	}
	return needs, nil
}

// copyFileAt copies the regular file name (with stat st) of the directory
// src into dst with its permission bits and owner.
func copyFileAt(src, dst int, dstPath, name string, st *unix.Stat_t) error {
	f, err := unix.Openat(src, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	file := os.NewFile(uintptr(f), name)
	data, err := io.ReadAll(file)
	file.Close()
	if err != nil {
		return cause(err)
	}
	o := Options{Mode: os.FileMode(st.Mode & 0o777), UID: int(st.Uid), GID: int(st.Gid)}
	return createFileAt(dst, dstPath, name, data, o)
}

func (g *atomicGroup) commit(changed map[string]bool) error {
	swapped := false
	var prelinked []string
	dir := g.dir.path
	if g.newTS != "" {
		atomicStep("staged")
		var st unix.Stat_t
		if unix.Fstatat(g.dir.fd, dataTmpLink, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			_ = unix.Unlinkat(g.dir.fd, dataTmpLink, 0) // left by an interrupted swap
		}
		if err := unix.Symlinkat(g.newTS, g.dir.fd, dataTmpLink); err != nil {
			return fmt.Errorf("symlink %s: %w", filepath.Join(dir, dataTmpLink), err)
		}
		g.dataTmp = true
		atomicStep("data_tmp")
		// A member that does not exist yet (a first render, or a member
		// new to the group) is linked before the swap: its link points
		// into ..data, which holds it only once the rename below is done,
		// so every member appears with that one rename rather than one
		// after another after it.
		for i := range g.items {
			it := &g.items[i]
			if !it.relink {
				continue
			}
			err := unix.Symlinkat(dataLink+"/"+it.name, g.dir.fd, it.name)
			if errors.Is(err, unix.EEXIST) {
				continue // replaced after the swap, by link
			}
			if err != nil {
				return fmt.Errorf("symlink %s: %w", filepath.Join(dir, it.name), err)
			}
			it.relink = false
			g.prelinked = append(g.prelinked, it.name)
		}
		if len(g.prelinked) > 0 {
			atomicStep("prelinked")
		}
		if err := g.dir.stillThere(); err != nil {
			return err
		}
		if err := unix.Renameat(g.dir.fd, dataTmpLink, g.dir.fd, dataLink); err != nil {
			return fmt.Errorf("rename %s: %w", filepath.Join(dir, dataTmpLink), err)
		}
		swapped = true
		// Committed: abort must not remove them.
		g.newTS, g.dataTmp, prelinked = "", false, g.prelinked
		g.prelinked = nil
		atomicStep("swapped")
		if err := syncDir(g.dir.fd, dir); err != nil {
			return err
		}
	}
	relinked := false
	for _, name := range prelinked {
		changed[filepath.Join(dir, name)] = true
	}
	for _, it := range g.items {
		if it.relink {
			if err := g.link(it.name); err != nil {
				return err
			}
			atomicStep("link")
			relinked = true
		}
		if it.changed || it.relink {
			changed[filepath.Join(dir, it.name)] = true
		}
	}
	if relinked {
		atomicStep("linked")
		if err := syncDir(g.dir.fd, dir); err != nil {
			return err
		}
	}
	if swapped && g.oldTS != "" {
		if err := removeTree(g.dir.fd, g.oldTS); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("remove %s: %w", filepath.Join(dir, g.oldTS), err)
		}
		atomicStep("cleaned")
		return syncDir(g.dir.fd, dir)
	}
	return nil
}

// link makes D/NAME the symlink ..data/NAME, atomically replacing whatever
// is there (checkMember allowed it).
func (g *atomicGroup) link(name string) error {
	p, want := filepath.Join(g.dir.path, name), dataLink+"/"+name
	err := unix.Symlinkat(want, g.dir.fd, name)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("symlink %s: %w", p, err)
	}
	tmp := tempName(name)
	if err := unix.Symlinkat(want, g.dir.fd, tmp); err != nil {
		return fmt.Errorf("symlink %s: %w", filepath.Join(g.dir.path, tmp), err)
	}
	if err := unix.Renameat(g.dir.fd, tmp, g.dir.fd, name); err != nil {
		_ = unix.Unlinkat(g.dir.fd, tmp, 0)
		return fmt.Errorf("rename onto %s: %w", p, err)
	}
	return nil
}

func (g *atomicGroup) abort() {
	for _, name := range g.prelinked {
		if t, err := readlinkat(g.dir.fd, name); err == nil && t == dataLink+"/"+name {
			_ = unix.Unlinkat(g.dir.fd, name, 0)
		}
	}
	g.prelinked = nil
	if g.dataTmp {
		_ = unix.Unlinkat(g.dir.fd, dataTmpLink, 0)
		g.dataTmp = false
	}
	if g.newTS != "" {
		_ = removeTree(g.dir.fd, g.newTS)
		g.newTS = ""
	}
}

func (g *atomicGroup) failure(err error) (File, error) {
	return File{Path: g.dir.path, Format: "atomic_dir"}, err
}
