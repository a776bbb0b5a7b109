package audit

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// AllowFile is the allow-list Audit's caller looks for at the top of each
// directory it audits, unless it is given one.
const AllowFile = ".keyward-audit-allow"

// An AllowEntry is one line of an allow-list file:
//
//	PATTERN [RULE [TAIL]] -- REASON
//
// PATTERN is a gitignore-style pattern matched against the finding's path
// relative to the file's directory; RULE a rule ID or * for any; TAIL the
// last characters of the secret as audit prints them (…Xy3Q, or ...Xy3Q).
// The reason is required: an allow-list is a record of decisions.
type AllowEntry struct {
	// File and Line are where the entry is written.
	File string
	Line int
	// Pattern, Rule ("" for any) and Tail ("" for any) select findings.
	Pattern, Rule, Tail string
	// Reason says why the findings are not leaks.
	Reason string

	dir     string
	pattern gitignore.Pattern
}

// AllowList is the set of entries of one or more allow-list files. The
// nil AllowList allows nothing.
type AllowList struct {
	Entries []*AllowEntry
}

// LoadAllowList reads file when it is not "", else the AllowFile at the
// top of each root that is a directory and has one. A malformed entry is
// an error naming the file and line.
func LoadAllowList(file string, roots []string) (*AllowList, error) {
	var files []string
	if file != "" {
		files = []string{file}
	} else {
		for _, r := range roots {
			if fi, err := os.Stat(r); err != nil || !fi.IsDir() {
				continue
			}
			p := filepath.Join(r, AllowFile)
			if _, err := os.Lstat(p); err != nil {
				continue
			}
			// Opening a FIFO would block: only a regular file is read.
			if fi, err := os.Stat(p); err == nil && !fi.Mode().IsRegular() {
				return nil, fmt.Errorf("allow-list %s: not a regular file", p)
			}
			files = append(files, p)
		}
	}
	l := &AllowList{}
	for _, f := range files {
		if err := l.read(f); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (l *AllowList) read(file string) error {
	f, err := os.Open(file)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("allow-list %s: %w", file, err)
	}
	defer f.Close()
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return fmt.Errorf("allow-list %s: %w", file, err)
	}
	s := bufio.NewScanner(f)
	for n := 1; s.Scan(); n++ {
		text := strings.TrimSpace(s.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		e, err := parseAllowEntry(text)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", file, n, err)
		}
		e.File, e.Line, e.dir = file, n, dir
		l.Entries = append(l.Entries, e)
	}
	if err := s.Err(); err != nil {
		return fmt.Errorf("allow-list %s: %w", file, err)
	}
	return nil
}

func parseAllowEntry(text string) (*AllowEntry, error) {
	sel, reason, ok := strings.Cut(text, " -- ")
	reason = strings.TrimSpace(reason)
	if !ok || reason == "" {
		return nil, errors.New(`entry without a reason: write PATTERN [RULE [TAIL]] -- REASON`)
	}
	fields := strings.Fields(sel)
	if len(fields) == 0 || len(fields) > 3 {
		return nil, errors.New(`want PATTERN [RULE [TAIL]] -- REASON`)
	}
	e := &AllowEntry{Pattern: fields[0], Reason: reason}
	if len(fields) > 1 && fields[1] != "*" {
		e.Rule = fields[1]
	}
	if len(fields) > 2 {
		t, ok := strings.CutPrefix(fields[2], "…")
		if !ok {
			t, ok = strings.CutPrefix(fields[2], "...")
		}
		if !ok || t == "" {
			return nil, fmt.Errorf("tail %q: write it as audit prints it, …XXXX", fields[2])
		}
		e.Tail = t
	}
	e.pattern = gitignore.ParsePattern(e.Pattern, nil)
	return e, nil
}

// allows reports whether e covers f, whose absolute path is abs.
func (e *AllowEntry) allows(f Finding, abs string) bool {
	if e.Rule != "" && e.Rule != f.Rule || e.Tail != "" && e.Tail != f.Tail {
		return false
	}
	rel, err := filepath.Rel(e.dir, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return false
	}
	return e.pattern.Match(strings.Split(filepath.ToSlash(rel), "/"), false) == gitignore.Exclude
}

// filter splits findings into those no entry allows, the count of those
// allowed, and the entries that allowed nothing.
func (l *AllowList) filter(findings []Finding) (kept []Finding, allowed int, unused []AllowEntry) {
	if l == nil || len(l.Entries) == 0 {
		return findings, 0, nil
	}
	used := make([]bool, len(l.Entries))
	for _, f := range findings {
		abs, err := filepath.Abs(f.Path)
		hit := false
		for i, e := range l.Entries {
			if err == nil && e.allows(f, abs) {
				used[i], hit = true, true
			}
		}
		if hit {
			allowed++
		} else {
			kept = append(kept, f)
		}
	}
	for i, e := range l.Entries {
		if !used[i] {
			unused = append(unused, *e)
		}
	}
	return kept, allowed, unused
}
