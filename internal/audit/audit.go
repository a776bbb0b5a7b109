// Package audit finds hard-coded credentials in source trees and build
// outputs: API keys, tokens, private keys, passwords in connection strings.
// It applies gitleaks' default rule set (rules_gitleaks.go, compiled on
// first use) to text files and, given the configured secrets' values as a
// mask.Set, reports any of those by the secret's name, in every form scan
// knows. It walks trees as scan does, honouring .gitignore files and an
// allow-list of reviewed findings, and never reports a value: a finding
// carries at most the last four characters of the secret.
//
// A rule runs only where its matches can be: around the occurrences of
// its keywords (or of strings or runs of bytes that its regex requires),
// from as far before them as the regex's syntax allows, with the
// findings that running it over the whole text gives (anchor.go's
// analysis; tests compare the two, and the findings with gitleaks').
package audit

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/keyward/keyward/internal/mask"
	"github.com/keyward/keyward/internal/scan"
)

// RulesVersion names the gitleaks release whose default rules Audit
// applies.
const RulesVersion = gitleaksVersion

// SecretRulePrefix starts the rule of a finding that is a configured
// secret's value: "secret:DB_PASSWORD", as scan names it.
const SecretRulePrefix = scan.RulePrefix

// TailLength is how many of a secret's last characters a finding shows;
// a secret shorter than MinTailSource characters shows none.
const (
	TailLength    = 4
	MinTailSource = 12
)

// chunkSize is how much text the rules see at once; a chunk is extended
// to a blank line (at most maxPeek further) so that a multi-line secret
// such as a PEM block is seldom cut.
const (
	chunkSize = 1 << 20
	maxPeek   = 64 << 10
)

// binarySniff is how much of a file's start is looked at for a NUL byte:
// the rules do not read binary files (configured values are still found).
const binarySniff = 8000

// Options tune Audit.
type Options struct {
	// MaxSize, Workers and Logger are scan's (scan.Options).
	MaxSize int64
	Workers int
	Logger  *slog.Logger
	// Secrets, when set, holds the configured secrets' values: a file
	// holding one is reported as that secret, by name.
	Secrets *mask.Set
	// Allow lists the reviewed findings that are not reported; nil for
	// none.
	Allow *AllowList
	// NoGitignore reads the paths that .gitignore files exclude too.
	NoGitignore bool
}

// A Finding is one credential in a file. It never holds the value.
type Finding struct {
	// Path is the file, as reached from the root it was given under.
	Path string
	// Line is the 1-based line of the finding's start; 0 for a binary
	// file or a rule that matches the file's name.
	Line int
	// Offset and Length locate the match in the file, in bytes.
	Offset int64
	Length int
	// Rule is a gitleaks rule ID ("aws-access-token") or, for a
	// configured secret, SecretRulePrefix + its name.
	Rule string
	// Description says what the rule finds.
	Description string
	// Tail is the secret's last TailLength characters, "" for a secret
	// shorter than MinTailSource or a configured secret (named instead).
	Tail string
	// Secret and Kind are the configured secret's name and the form it
	// was found in (mask.KindRaw, …); "" for a rule's finding.
	Secret, Kind string
}

// Report is the result of Audit: the findings sorted by path, line, rule,
// and what the walk counted, skipped and could not read.
type Report struct {
	Findings []Finding
	// Allowed counts the findings that the allow-list accepted.
	Allowed int
	// Unused lists the allow-list entries that matched no finding.
	Unused []AllowEntry
	// Files, Bytes, Skipped and Errors are the walk's (scan.Report).
	Files   int
	Bytes   int64
	Skipped []scan.Skip
	Errors  []*scan.FileError
	// Rules is the number of rules applied; RulesVersion the gitleaks
	// release they come from.
	Rules        int
	RulesVersion string
}

// Audit searches roots (files or directories, the latter recursively) for
// credentials. Directories are walked as scan.Walk walks them: symlinks
// below a root are not followed, special files and files over the size
// limit skipped. Below each root, .gitignore files apply as git applies
// them (nested ones too, and .git/info/exclude at a repository's top);
// .gitignore files above a root are not read, so a build output that the
// repository ignores is audited when named. .git directories are never
// read. Files that cannot be read are listed in Report.Errors; Audit's
// error is ctx's or the rule set's. It returns after all its goroutines
// have ended.
func Audit(ctx context.Context, roots []string, opts Options) (*Report, error) {
	rs, err := defaultRules()
	if err != nil {
		return nil, err
	}
	a := &auditor{rules: rs, set: opts.Secrets}
	if opts.Secrets != nil && opts.Secrets.Matcher().Empty() {
		a.set = nil
	}
	sopts := scan.Options{MaxSize: opts.MaxSize, Workers: opts.Workers, Logger: opts.Logger}
	if !opts.NoGitignore {
		sopts.Ignore = newIgnorer(opts.Logger).ignore
	} else {
		sopts.Ignore = func(_, path string, dir bool) bool { return dir && filepath.Base(path) == ".git" }
	}
	walked, err := scan.Walk(ctx, roots, sopts, a.file)
	rep := &Report{
		Files: walked.Files, Bytes: walked.Bytes, Skipped: walked.Skipped, Errors: walked.Errors,
		Rules: len(rs.rules), RulesVersion: gitleaksVersion,
	}
	slices.SortFunc(a.found, func(x, y Finding) int {
		return cmp.Or(cmp.Compare(x.Path, y.Path), cmp.Compare(x.Line, y.Line), cmp.Compare(x.Offset, y.Offset), cmp.Compare(x.Rule, y.Rule))
	})
	rep.Findings, rep.Allowed, rep.Unused = opts.Allow.filter(a.found)
	return rep, err
}

type auditor struct {
	rules *ruleSet
	set   *mask.Set

	mu    sync.Mutex
	found []Finding
}

// file audits one file: the configured values first, then (text files
// only) the rules, whose findings that overlap a configured value's are
// dropped since the value is reported by name.
func (a *auditor) file(path string, f *os.File) (int64, error) {
	var found []Finding
	var read int64
	if a.set != nil {
		hits, _, n, err := scan.Search(a.set, path, f)
		if err != nil {
			return n, err
		}
		read = n
		for _, h := range hits {
			found = append(found, Finding{
				Path: h.Path, Line: h.Line, Offset: h.Offset, Length: h.Length,
				Rule: SecretRulePrefix + h.Secret, Secret: h.Secret, Kind: h.Kind,
				Description: "the value of the configured secret " + h.Secret,
			})
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return read, err
		}
	}
	named := len(found)
	n, err := a.text(path, f, func(fd Finding) {
		for _, s := range found[:named] {
			if fd.Offset < s.Offset+int64(s.Length) && s.Offset < fd.Offset+int64(fd.Length) {
				return
			}
		}
		found = append(found, fd)
	})
	read = max(read, n)
	if err != nil {
		return read, err
	}
	a.mu.Lock()
	a.found = append(a.found, found...)
	a.mu.Unlock()
	return read, nil
}

// bufs holds the text buffers, chunkSize+maxPeek bytes each.
var bufs sync.Pool

// text runs the rules over f in chunks unless f is binary, and returns
// the bytes read. A chunk is chunkSize bytes and then up to a blank line
// (or, failing one within maxPeek, a line's end), so that a chunk ends
// between lines and seldom inside a multi-line secret.
func (a *auditor) text(path string, f io.Reader, add func(Finding)) (int64, error) {
	slash := filepath.ToSlash(path)
	var (
		base  int64 // file offset of buf[0]
		line  = 1   // line of buf[0]
		keep  int   // bytes carried over at buf[:keep]
		first = true
	)
	bp, _ := bufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, chunkSize+maxPeek)
		bp = &b
	}
	defer bufs.Put(bp)
	buf := *bp
	for {
		n, err := io.ReadFull(f, buf[keep:])
		end := keep + n
		eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !eof {
			return base + int64(end), err
		}
		if first {
			first = false
			if bytes.IndexByte(buf[:min(end, binarySniff)], 0) >= 0 {
				return int64(end), nil // binary: the rules read text
			}
		}
		cut := end
		if !eof {
			cut = boundary(buf[:end])
		}
		if cut > 0 {
			text := string(buf[:cut])
			for _, h := range a.rules.detect(slash, text, line) {
				fd := Finding{
					Path: path, Line: h.line, Offset: base + int64(h.offset), Length: h.length,
					Rule: h.rule.id, Description: h.rule.desc, Tail: tail(h.secret),
				}
				if h.rule.re == nil { // a rule on the file's name
					fd.Offset, fd.Length = 0, 0
				}
				add(fd)
			}
			line += bytes.Count(buf[:cut], []byte{'\n'})
			base += int64(cut)
		}
		if eof {
			return base, nil
		}
		keep = copy(buf, buf[cut:end])
	}
}

// boundary returns where to end a chunk of the full buffer b: after the
// first blank line past chunkSize, else after the first line end past
// it, else at len(b).
func boundary(b []byte) int {
	if i := bytes.Index(b[chunkSize-1:], []byte("\n\n")); i >= 0 {
		return chunkSize - 1 + i + 2
	}
	if i := bytes.IndexByte(b[chunkSize:], '\n'); i >= 0 {
		return chunkSize + i + 1
	}
	return len(b)
}

// tail returns the last TailLength characters of s, or "" when s is
// shorter than MinTailSource characters.
func tail(s string) string {
	if utf8.RuneCountInString(s) < MinTailSource {
		return ""
	}
	i := len(s)
	for range TailLength {
		_, size := utf8.DecodeLastRuneInString(s[:i])
		i -= size
	}
	return s[i:]
}
