package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/fsnotify/fsnotify"

	"github.com/keyward/keyward/providers"
)

var _ providers.Watcher = (*Provider)(nil)

// Watch implements providers.Watcher with fsnotify (inotify on Linux). It
// watches the directory that contains each file, not the file itself, so
// the ways a file gets replaced are all seen:
//
//   - a write in place, a truncate, a chmod;
//   - an editor's rename-write (a temp file renamed over the name, or the
//     old file renamed to a backup and a new one created);
//   - removal and re-creation;
//   - the kubelet's layout for mounted Secrets and ConfigMaps (NAME is a
//     symlink to ..data/NAME, ..data a symlink to a timestamped directory,
//     swapped with one rename of ..data_tmp): any change to an entry whose
//     name starts with ".." in a watched directory counts as a change of
//     every watched file there;
//   - a file that is a symlink into another directory: that directory is
//     watched as well, and the link is followed again after every change.
//
// A directory that does not exist yet is watched through its nearest
// existing ancestor until it appears. Once the watches are in place, Watch
// calls changed once for every ref, so that a change made between the
// caller's first Fetch and the start of the watch is not lost; afterwards
// it calls changed for each ref whose file may have changed (possibly more
// than once per change: callers debounce and compare content). On an
// inotify queue overflow it calls changed for every ref.
//
// Watch returns ctx.Err() after cancellation, or an error when the
// watcher cannot be created or fails; it closes the watcher before
// returning.
func (p *Provider) Watch(ctx context.Context, refs []providers.Ref, changed func(providers.Ref)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("file watch: %w", err)
	}
	defer w.Close()
	ws := &watchSet{w: w, refs: make([]watchedRef, 0, len(refs))}
	for _, r := range refs {
		path, err := filepath.Abs(p.Path(r))
		if err != nil {
			return fmt.Errorf("file watch %s: %w", r.String(), err)
		}
		ws.refs = append(ws.refs, watchedRef{ref: r, path: path})
	}
	if err := ws.sync(); err != nil {
		return err
	}
	for _, r := range ws.refs {
		changed(r.ref)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("file watch: watcher closed")
			}
			hit := ws.match(ev)
			if !ev.Has(fsnotify.Write) && !ev.Has(fsnotify.Chmod) || ws.isWatchedDir(ev.Name) {
				if err := ws.sync(); err != nil {
					return err
				}
			}
			for _, i := range hit {
				changed(ws.refs[i].ref)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("file watch: watcher closed")
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				if err := ws.sync(); err != nil {
					return err
				}
				for _, r := range ws.refs {
					changed(r.ref)
				}
				continue
			}
			return fmt.Errorf("file watch: %w", err)
		}
	}
}

type watchedRef struct {
	ref  providers.Ref
	path string // absolute, as configured (not resolved)
}

// interest is one ref's interest in one directory entry: an event on
// dir/name concerns ref. prefixDots also takes every ".." entry (the
// kubelet's ..data and timestamped directories).
type interest struct {
	ref        int
	name       string
	prefixDots bool
}

// watchSet maps the watched directories to the refs they concern.
type watchSet struct {
	w    *fsnotify.Watcher
	refs []watchedRef
	dirs map[string][]interest
}

// sync recomputes which directories must be watched (following symlinks
// again, climbing to the nearest existing ancestor of a missing
// directory) and adds and removes inotify watches to match.
func (ws *watchSet) sync() error {
	want := map[string][]interest{}
	for i, r := range ws.refs {
		dir, name := filepath.Split(r.path)
		dir = filepath.Clean(dir)
		want[dir] = append(want[dir], interest{ref: i, name: name, prefixDots: true})
		if real, err := filepath.EvalSymlinks(r.path); err == nil {
			rdir, rname := filepath.Split(real)
			rdir = filepath.Clean(rdir)
			// A link into dir's own ".." layout is covered by the rule above.
			if rdir != dir && !strings.HasPrefix(rdir, dir+string(filepath.Separator)+"..") {
				want[rdir] = append(want[rdir], interest{ref: i, name: rname})
			}
		}
	}
	have := map[string]bool{}
	for _, d := range ws.w.WatchList() {
		have[d] = true
	}
	ws.dirs = map[string][]interest{}
	for dir, ins := range want {
		for {
			if have[dir] {
				break
			}
			err := ws.w.Add(dir)
			if err == nil {
				have[dir] = true
				break
			}
			if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
				return fmt.Errorf("file watch %s: %w", dir, err)
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				return fmt.Errorf("file watch %s: %w", dir, err)
			}
			// Watch the parent for the missing entry instead.
			up := make([]interest, len(ins))
			for k, in := range ins {
				up[k] = interest{ref: in.ref, name: filepath.Base(dir)}
			}
			dir, ins = parent, up
		}
		ws.dirs[dir] = append(ws.dirs[dir], ins...)
	}
	for d := range have {
		if _, ok := ws.dirs[d]; !ok {
			_ = ws.w.Remove(d)
		}
	}
	return nil
}

// isWatchedDir reports whether path is itself a watched directory (an
// event on it means it was removed or moved).
func (ws *watchSet) isWatchedDir(path string) bool {
	_, ok := ws.dirs[filepath.Clean(path)]
	return ok
}

// match returns the indexes of the refs ev concerns.
func (ws *watchSet) match(ev fsnotify.Event) []int {
	var hit []int
	add := func(i int) {
		if !slices.Contains(hit, i) {
			hit = append(hit, i)
		}
	}
	name := filepath.Clean(ev.Name)
	if ins, ok := ws.dirs[name]; ok { // the directory itself went away
		for _, in := range ins {
			add(in.ref)
		}
	}
	dir, base := filepath.Split(name)
	for _, in := range ws.dirs[filepath.Clean(dir)] {
		if base == in.name || in.prefixDots && strings.HasPrefix(base, "..") {
			add(in.ref)
		}
	}
	return hit
}
