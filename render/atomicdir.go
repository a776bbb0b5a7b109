package render

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The kubelet's AtomicWriter layout of a directory D whose files change
// together:
//
//	D/..2025_01_02_15_04_05.RANDOM/NAME   the content, in a fresh dir per swap
//	D/..data -> ..2025_01_02_15_04_05.RANDOM
//	D/NAME   -> ..data/NAME
//
// A swap builds a new timestamped directory, points a ..data_tmp symlink at
// it and renames that over ..data (one atomic rename switches every file),
// then removes the previous directory. A reader that opens D/a and then D/b
// sees either both old or b new, never a new a with an old b.
const (
	dataLink    = "..data"
	dataTmpLink = "..data_tmp"
	tsLayout    = "..2006_01_02_15_04_05."
)

// testHookAtomicStep, when set (by non-parallel tests only), is called after
// each step of an atomic directory swap.
var testHookAtomicStep func(step string)

func atomicStep(step string) {
	if testHookAtomicStep != nil {
		testHookAtomicStep(step)
	}
}

// isTSDir reports whether name is a timestamped data directory name.
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
	dir     string
	items   []groupItem
	oldTS   string   // the directory ..data points to now, "" if none
	newTS   string   // the staged directory's path, "" if none (or committed)
	created []string // parent directories created for the group
}

// checkDir checks the group's directory and its ..data link.
func (g *atomicGroup) checkDir() error {
	link := filepath.Join(g.dir, dataLink)
	fi, err := os.Lstat(link)
	switch {
	case err == nil:
		if fi.Mode()&fs.ModeSymlink == 0 {
			return fmt.Errorf("%s is not a symlink", link)
		}
		target, err := os.Readlink(link)
		if err != nil {
			return fmt.Errorf("%s: %w", link, cause(err))
		}
		if !isTSDir(target) {
			return fmt.Errorf("%s does not point to a ..timestamp directory of %s", link, g.dir)
		}
		g.oldTS = target
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
	default:
		return fmt.Errorf("%s: %w", link, cause(err))
	}
	return checkParent(g.dir)
}

// checkMember checks the user-visible entry D/NAME: absent, the expected
// ..data/NAME symlink, or a regular file (replaced by the link).
func (g *atomicGroup) checkMember(name string, allowSymlink bool) error {
	p := filepath.Join(g.dir, name)
	fi, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return cause(err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if t, err := os.Readlink(p); err == nil && t == dataLink+"/"+name {
			return nil
		}
	}
	return checkExisting(fi, allowSymlink)
}

// owner returns the Options carrying the group's owner: the one owner its
// files ask for (checkOwners ensures there is at most one) or none.
func (g *atomicGroup) owner() Options {
	o := Options{UID: -1, GID: -1}
	for _, it := range g.items {
		if uid, gid, ok := it.file.Options().owner(); ok {
			o.UID, o.GID = uid, gid
		}
	}
	return o
}

// checkOwners refuses a group whose files ask for different owners: they
// share the timestamped directory, which has one owner.
func (g *atomicGroup) checkOwners() error {
	type pair struct{ uid, gid int }
	var first *pair
	for _, it := range g.items {
		uid, gid, ok := it.file.Options().owner()
		if !ok {
			continue
		}
		if first == nil {
			first = &pair{uid, gid}
		} else if *first != (pair{uid, gid}) {
			return fmt.Errorf("atomic_dir files in %s ask for different owners", g.dir)
		}
	}
	return nil
}

func (g *atomicGroup) stage() error {
	swap := false
	for i := range g.items {
		it := &g.items[i]
		it.changed = true
		if g.oldTS != "" {
			uid, gid, chown := it.file.Options().owner()
			same, err := sameFile(filepath.Join(g.dir, g.oldTS, it.name), it.data, it.file.Options().mode(), uid, gid, chown)
			if err != nil {
				return err
			}
			it.changed = !same
		}
		t, err := os.Readlink(filepath.Join(g.dir, it.name))
		it.relink = err != nil || t != dataLink+"/"+it.name
		swap = swap || it.changed
	}
	if !swap {
		return nil
	}

	var dm os.FileMode
	for _, it := range g.items {
		dm |= dirMode(it.file.Options().mode())
	}
	owner := g.owner()
	var err error
	if g.created, err = mkdirAll(g.dir, dm, owner); err != nil {
		return err
	}
	ts, err := os.MkdirTemp(g.dir, time.Now().UTC().Format(tsLayout))
	if err != nil {
		return fmt.Errorf("mkdir in %s: %w", g.dir, cause(err))
	}
	g.newTS = ts
	if err := fixDir(ts, dm, owner); err != nil {
		return fmt.Errorf("mkdir %s: %w", ts, err)
	}
	names := map[string]bool{}
	for _, it := range g.items {
		names[it.name] = true
		if err := createFile(filepath.Join(ts, it.name), it.data, it.file.Options()); err != nil {
			return err
		}
	}
	if err := g.carryOver(names); err != nil {
		return err
	}
	return syncDir(ts)
}

// carryOver links into the new directory the files of the current one that
// this Write does not render (a re-render of only some files of the group),
// so their D/NAME links keep working.
func (g *atomicGroup) carryOver(names map[string]bool) error {
	if g.oldTS == "" {
		return nil
	}
	old := filepath.Join(g.dir, g.oldTS)
	entries, err := os.ReadDir(old)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", old, cause(err))
	}
	for _, e := range entries {
		if names[e.Name()] || !e.Type().IsRegular() {
			continue
		}
		src, dst := filepath.Join(old, e.Name()), filepath.Join(g.newTS, e.Name())
		if os.Link(src, dst) == nil {
			continue
		}
		if err := copyFile(src, dst); err != nil {
			return fmt.Errorf("carry over %s: %w", src, err)
		}
	}
	return nil
}

// copyFile copies a regular file with its permission bits and owner.
func copyFile(src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return cause(err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return cause(err)
	}
	o := Options{Mode: fi.Mode().Perm(), UID: -1, GID: -1}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		o.UID, o.GID = int(st.Uid), int(st.Gid)
	}
	return createFile(dst, data, o)
}

func (g *atomicGroup) commit(changed map[string]bool) error {
	swapped := false
	if g.newTS != "" {
		atomicStep("staged")
		tmp := filepath.Join(g.dir, dataTmpLink)
		if fi, err := os.Lstat(tmp); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			_ = os.Remove(tmp) // left by an interrupted swap
		}
		if err := os.Symlink(filepath.Base(g.newTS), tmp); err != nil {
			return fmt.Errorf("symlink %s: %w", tmp, cause(err))
		}
		atomicStep("data_tmp")
		if err := os.Rename(tmp, filepath.Join(g.dir, dataLink)); err != nil {
			_ = os.Remove(tmp)
			return fmt.Errorf("rename %s: %w", tmp, cause(err))
		}
		swapped = true
		g.newTS, g.created = "", nil // committed: abort must not remove it
		atomicStep("swapped")
		if err := syncDir(g.dir); err != nil {
			return err
		}
	}
	relinked := false
	for _, it := range g.items {
		if it.relink {
			if err := g.link(it.name); err != nil {
				return err
			}
			relinked = true
		}
		if it.changed || it.relink {
			changed[filepath.Join(g.dir, it.name)] = true
		}
	}
	if relinked {
		atomicStep("linked")
		if err := syncDir(g.dir); err != nil {
			return err
		}
	}
	if swapped && g.oldTS != "" {
		old := filepath.Join(g.dir, g.oldTS)
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("remove %s: %w", old, cause(err))
		}
		atomicStep("cleaned")
		return syncDir(g.dir)
	}
	return nil
}

// link makes D/NAME the symlink ..data/NAME, atomically replacing whatever
// is there (checkMember allowed it).
func (g *atomicGroup) link(name string) error {
	p, want := filepath.Join(g.dir, name), dataLink+"/"+name
	err := os.Symlink(want, p)
	if err == nil || !errors.Is(err, fs.ErrExist) {
		if err != nil {
			return fmt.Errorf("symlink %s: %w", p, cause(err))
		}
		return nil
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(g.dir, "."+name+".tmp-"+hex.EncodeToString(rnd[:]))
	if err := os.Symlink(want, tmp); err != nil {
		return fmt.Errorf("symlink %s: %w", tmp, cause(err))
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("rename onto %s: %w", p, cause(err))
	}
	return nil
}

func (g *atomicGroup) abort() {
	if g.newTS != "" {
		_ = os.RemoveAll(g.newTS)
		g.newTS = ""
	}
	removeCreated(g.created)
	g.created = nil
}

func (g *atomicGroup) failure(err error) (File, error) {
	return File{Path: g.dir, Format: "atomic_dir"}, err
}
