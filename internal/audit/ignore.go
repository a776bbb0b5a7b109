package audit

import (
	"bufio"
	"cmp"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// ignorer answers scan.Options.Ignore with the .gitignore files at and
// below each root, read once per directory, as git applies them: a
// directory's patterns apply to its subtree, deeper files win, a later
// line wins over an earlier one, and "!" re-includes.
type ignorer struct {
	log *slog.Logger

	mu   sync.Mutex
	dirs map[string][]gitignore.Pattern // directory -> patterns in force in it
}

func newIgnorer(log *slog.Logger) *ignorer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ignorer{log: log, dirs: map[string][]gitignore.Pattern{}}
}

// ignore reports whether path (below root) is excluded. .git directories
// always are.
func (ig *ignorer) ignore(root, path string, dir bool) bool {
	if dir && filepath.Base(path) == ".git" {
		return true
	}
	root = filepath.Clean(root)
	rel, err := filepath.Rel(root, path)
	if err != nil {
		return false
	}
	ig.mu.Lock()
	pats := ig.patterns(root, filepath.Dir(path))
	ig.mu.Unlock()
	if len(pats) == 0 {
		return false
	}
	return gitignore.NewMatcher(pats).Match(strings.Split(filepath.ToSlash(rel), "/"), dir)
}

// patterns returns the patterns in force in dir, a directory at or below
// root: its parent's, then its own .gitignore's (at root, first those of
// .git/info/exclude when root is a repository's top).
func (ig *ignorer) patterns(root, dir string) []gitignore.Pattern {
	if p, ok := ig.dirs[dir]; ok {
		return p
	}
	var pats []gitignore.Pattern
	var domain []string
	if parent := filepath.Dir(dir); dir == root || parent == dir {
		pats = ig.read(filepath.Join(dir, ".git", "info", "exclude"), nil)
	} else {
		pats = slices.Clip(ig.patterns(root, parent))
		if rel, err := filepath.Rel(root, dir); err == nil {
			domain = strings.Split(filepath.ToSlash(rel), "/")
		}
	}
	pats = append(pats, ig.read(filepath.Join(dir, ".gitignore"), domain)...)
	ig.dirs[dir] = pats
	return pats
}

// read parses one ignore file; a missing one has no patterns. As git
// (2.32 on) does, it does not follow a symlink; nor does it read
// anything but a regular file, or past the size the file had when opened.
func (ig *ignorer) read(file string, domain []string) []gitignore.Pattern {
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		// ENOTDIR: .git is a file in a worktree or submodule.
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			ig.log.Warn("cannot read ignore file", "path", file, "err", err)
		}
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		ig.log.Warn("cannot read ignore file", "path", file, "err", cmp.Or(err, errors.New("not a regular file")))
		return nil
	}
	var out []gitignore.Pattern
	s := bufio.NewScanner(io.LimitReader(f, fi.Size()))
	for s.Scan() {
		line := strings.TrimSuffix(s.Text(), "\r")
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		out = append(out, gitignore.ParsePattern(line, domain))
	}
	if err := s.Err(); err != nil {
		ig.log.Warn("cannot read ignore file", "path", file, "err", err)
	}
	return out
}
