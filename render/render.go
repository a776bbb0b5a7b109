package render

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/keyward/keyward/internal/readfile"
	"github.com/keyward/keyward/providers"
)

// Format is the encoding of a rendered file.
type Format string

// The formats a File can be rendered in.
const (
	// FormatRaw writes one secret's bytes exactly (binary safe).
	FormatRaw Format = "raw"
	// FormatDotenv writes NAME=value lines sorted by name, each value in a
	// form that the reader named by File.Dialect (bash by default) reads
	// back exactly; a value that reader cannot represent is an error naming
	// the key and the secret. Keys must be valid environment names
	// ([A-Za-z_][A-Za-z0-9_]*); a value with a NUL byte is an error.
	FormatDotenv Format = "dotenv"
	// FormatJSON writes one JSON object of string values, keys sorted.
	FormatJSON Format = "json"
	// FormatYAML writes one YAML mapping of string values, keys sorted.
	FormatYAML Format = "yaml"
	// FormatTemplate executes a Go text/template whose only access to the
	// secrets is the secret function.
	FormatTemplate Format = "template"
)

// File describes one file to render. The CLI fills it from the config's
// files: entries.
type File struct {
	// Path is the absolute target path.
	Path string
	// Format selects the encoding.
	Format Format
	// Secrets are, for dotenv, json and yaml, the secret names used as keys.
	// A name whose Resolved has Fields (a whole structured secret) contributes
	// each field as its own top-level key instead.
	Secrets []string
	// Secret is, for raw, the one secret whose bytes are written.
	Secret string
	// Dialect is, for dotenv, the program that reads the file ("" means
	// DialectBash).
	Dialect Dialect
	// Template is the template text (format template); or TemplateFile:
	Template string
	// TemplateFile is the absolute path of a template file, read by Build.
	TemplateFile string
	// Mode is the file's permission bits; 0 means 0600. Only the bits in
	// 0777 are allowed, and the owner must be able to read.
	Mode os.FileMode
	// UID and GID are the owner and group given to the file (with fchown on
	// the temp file, before the rename); -1 leaves that one as the process
	// creates it. One that cannot be applied is an error (see Options).
	// Files of different owners may share a directory: the directories
	// keyward creates let each owner reach its file.
	UID, GID int
	// AtomicDir makes the file part of its directory's atomic group: all
	// files of one Write with AtomicDir set that share a directory D are
	// swapped together through the kubelet's layout (D/NAME -> ..data/NAME,
	// D/..data -> ..TIMESTAMP.keyward-HEX, a directory swapped by one
	// rename), so a reader never sees a new a with an old b. Files of the
	// current ..data that a Write does not render are carried over.
	AtomicDir bool
	// AllowSymlink lets a target that is a symlink be replaced; the link
	// itself is replaced, the file it points to is never written.
	AllowSymlink bool
}

// ErrDynamicNames is returned by SecretNames for a template whose secret
// names are computed when it runs, so that they cannot be listed in advance.
var ErrDynamicNames = errors.New("template computes secret names")

// Options returns the WriteFile options that f asks for.
func (f File) Options() Options {
	return Options{Mode: f.Mode, UID: f.UID, GID: f.GID, AllowSymlink: f.AllowSymlink}
}

// SecretNames returns the secret names f's content depends on, for
// validating a config and for re-rendering only the files a rotated secret
// affects. For a template these are the names it spells out as string
// literals ({{ secret "A" }}, {{ "A" | secret }}; see TemplateSecrets),
// reading TemplateFile when set. The error is a template read or parse
// error, or ErrDynamicNames.
//
// A template that computes the name it passes to secret ({{ secret .x }},
// {{ secret (printf "%s" "A") }}) may use any secret: SecretNames then
// returns ErrDynamicNames.
func (f File) SecretNames() ([]string, error) {
	switch f.Format {
	case FormatRaw:
		if f.Secret == "" {
			return nil, nil
		}
		return []string{f.Secret}, nil
	case FormatTemplate:
		text, err := f.templateText()
		if err != nil {
			return nil, err
		}
		uses, err := TemplateSecrets(text)
		if err != nil {
			return nil, err
		}
		var names []string
		seen := map[string]bool{}
		for _, u := range uses {
			if u.Dynamic {
				return nil, ErrDynamicNames
			}
			if !seen[u.Name] {
				seen[u.Name] = true
				names = append(names, u.Name)
			}
		}
		return names, nil
	default:
		return append([]string(nil), f.Secrets...), nil
	}
}

// Result lists the target paths of one Write by outcome, each in the order of
// the files given.
type Result struct {
	// Changed are the paths whose content, mode or owner was (re)written.
	Changed []string
	// Unchanged are the paths that already held exactly the wanted content,
	// mode and owner and were not touched.
	Unchanged []string
	// Removed are the leftovers of interrupted writes (keyward's own temp
	// files and atomic_dir snapshots) that the Write swept from the
	// directories it writes to.
	Removed []string
}

// FileError is the failure of one file of a Build or Write. Err names
// secrets, keys, template lines or the failing operation; never a value. A
// failure of a whole AtomicDir group has the group's directory as Path and
// "atomic_dir" as Format.
type FileError struct {
	Path   string
	Format Format
	Err    error
}

// Error returns "PATH (FORMAT): reason".
func (e *FileError) Error() string {
	return fmt.Sprintf("%s (%s): %v", e.Path, e.Format, e.Err)
}

// Unwrap returns the underlying cause.
func (e *FileError) Unwrap() error { return e.Err }

// Error lists every file that failed in one Build or Write. Its message is a
// single line: "render /a (dotenv): reason" for one file, "render: 2 files
// failed: /a (dotenv): reason; /b (template): reason" for several.
type Error struct {
	Failures []*FileError
}

// Error returns the one-line list described at Error.
func (e *Error) Error() string {
	if len(e.Failures) == 1 {
		return "render " + e.Failures[0].Error()
	}
	parts := make([]string, len(e.Failures))
	for i, f := range e.Failures {
		parts[i] = f.Error()
	}
	return fmt.Sprintf("render: %d files failed: %s", len(parts), strings.Join(parts, "; "))
}

// Unwrap returns the failures so that errors.Is and errors.As see them.
func (e *Error) Unwrap() []error {
	out := make([]error, len(e.Failures))
	for i, f := range e.Failures {
		out[i] = f
	}
	return out
}

// Build returns the content of every file, in order. It reads template files
// but writes nothing. If any file fails, it returns nil and an *Error that
// lists every failing file.
func Build(files []File, secrets map[string]providers.Resolved) ([][]byte, error) {
	out := make([][]byte, len(files))
	var fails []*FileError
	seen := map[string]bool{}
	for i, f := range files {
		var b []byte
		err := validateFile(f, seen)
		if err == nil {
			b, err = build(f, secrets)
		}
		if err != nil {
			fails = append(fails, &FileError{Path: f.Path, Format: f.Format, Err: err})
			continue
		}
		out[i] = b
	}
	if len(fails) > 0 {
		return nil, &Error{Failures: fails}
	}
	return out, nil
}

func build(f File, secrets map[string]providers.Resolved) ([]byte, error) {
	switch f.Format {
	case FormatRaw:
		return buildRaw(f.Secret, secrets)
	case FormatDotenv:
		return buildDotenv(f.Secrets, secrets, f.Dialect)
	case FormatJSON:
		return buildJSON(f.Secrets, secrets)
	case FormatYAML:
		return buildYAML(f.Secrets, secrets)
	case FormatTemplate:
		text, err := f.templateText()
		if err != nil {
			return nil, err
		}
		return buildTemplate(text, secrets)
	}
	return nil, fmt.Errorf("unknown format %q", f.Format)
}

// LoadTemplate returns f with its TemplateFile read into Template (and
// TemplateFile cleared), or f itself when it has none: a caller that both
// asks SecretNames and renders f again and again (the rotation engine)
// reads the file once, so that the names it learnt and every later render
// come from the same bytes, never from two versions of an edited file.
// The error is the read error, as Build would report it.
func (f File) LoadTemplate() (File, error) {
	if f.TemplateFile == "" {
		return f, nil
	}
	text, err := f.templateText()
	if err != nil {
		return f, err
	}
	f.Template, f.TemplateFile = text, ""
	return f, nil
}

func (f File) templateText() (string, error) {
	if f.TemplateFile == "" {
		return f.Template, nil
	}
	// readfile.Read, not os.ReadFile: a FIFO or device put where the
	// template should be is an error, not a hang, and a huge file is
	// refused at the size limit instead of read into memory.
	b, _, err := readfile.Read(context.Background(), f.TemplateFile, readfile.Options{})
	if err != nil {
		return "", fmt.Errorf("read template %s: %w", f.TemplateFile, cause(err))
	}
	return string(b), nil
}

// validateFile checks the parts of f that do not depend on the file system
// or the secrets, and that this process may give f its owner and group; seen collects cleaned paths to catch duplicates.
func validateFile(f File, seen map[string]bool) error {
	if !filepath.IsAbs(f.Path) {
		return errors.New("path is not absolute")
	}
	p := filepath.Clean(f.Path)
	if base := filepath.Base(p); base == "/" || base == "." {
		return errors.New("path names no file")
	}
	if seen[p] {
		return errors.New("path appears more than once")
	}
	seen[p] = true
	if err := checkMode(f.Mode); err != nil {
		return err
	}
	if err := checkOwner(f.UID, f.GID); err != nil {
		return err
	}
	if f.AtomicDir && strings.HasPrefix(filepath.Base(p), "..") {
		return errors.New(`atomic_dir file name must not start with ".."`)
	}
	switch f.Format {
	case FormatRaw:
		if f.Secret == "" || len(f.Secrets) > 0 || f.Template != "" || f.TemplateFile != "" {
			return errors.New("raw takes exactly one secret (secret:) and nothing else")
		}
	case FormatDotenv, FormatJSON, FormatYAML:
		if f.Secret != "" || f.Template != "" || f.TemplateFile != "" {
			return fmt.Errorf("%s takes a list of secrets (secrets:) and nothing else", f.Format)
		}
		if !knownDialect(f.Dialect) {
			return fmt.Errorf("unknown dotenv dialect %q (want one of %s)", f.Dialect, dialectList())
		}
	case FormatTemplate:
		if (f.Template == "") == (f.TemplateFile == "") {
			return errors.New("template takes exactly one of the keys template and template_file")
		}
		if f.TemplateFile != "" && !filepath.IsAbs(f.TemplateFile) {
			return errors.New("template_file is not an absolute path")
		}
		if f.Secret != "" || len(f.Secrets) > 0 {
			return errors.New("template reaches secrets with {{ secret \"NAME\" }}, not through the keys secret or secrets")
		}
	default:
		return fmt.Errorf("unknown format %q", f.Format)
	}
	if f.Dialect != "" && f.Format != FormatDotenv {
		return fmt.Errorf("dialect applies to format dotenv, not %s", f.Format)
	}
	return nil
}

// Write writes contents[i] to files[i], in two phases so that a failure
// changes nothing: first every target's directory is opened once (see
// WriteFile: without following a symlink, locked, and on the first write
// of the process swept of the leftovers of interrupted writes, which
// Result.Removed lists) and every target checked (not a directory, not a
// symlink unless allowed, parent creatable, reachable by its owner) and,
// if all pass, every changed file is staged (a fully written and fsynced
// temp file, or a new snapshot directory for an AtomicDir group); only
// when all are staged are they renamed into place. If a check or a stage
// fails, the temp files are removed, no target is modified and the *Error
// lists every failure found. A failure in the final renames (which do not
// allocate space) is returned with the Result of what was already
// replaced.
//
// Files whose content, mode and owner already match are not touched and are
// reported in Result.Unchanged.
func Write(files []File, contents [][]byte) (Result, error) {
	if len(files) != len(contents) {
		return Result{}, fmt.Errorf("render: %d files but %d contents", len(files), len(contents))
	}
	var fails []*FileError
	fail := func(f File, err error) {
		fails = append(fails, &FileError{Path: f.Path, Format: f.Format, Err: err})
	}

	// Phase 0: validate, open the directories, check every target;
	// nothing is written but the sweep of leftovers.
	seen := map[string]bool{}
	ds := newDirSet()
	defer ds.close()
	groups := map[string]*atomicGroup{}
	var order []stager
	for i, f := range files {
		if err := validateFile(f, seen); err != nil {
			fail(f, err)
			continue
		}
		p := filepath.Clean(f.Path)
		if !f.AtomicDir {
			order = append(order, newSingle(ds, f, p, contents[i]))
			continue
		}
		dir := filepath.Dir(p)
		g, ok := groups[dir]
		if !ok {
			g = newGroup(ds, dir)
			groups[dir] = g
			order = append(order, g)
		}
		g.add(f, p, contents[i])
	}
	if len(fails) > 0 {
		return Result{}, &Error{Failures: fails}
	}
	ds.openAll()
	writeStep("opened", "")
	for _, s := range order {
		s.check(fail)
	}
	if len(fails) > 0 {
		return Result{Removed: ds.removed}, &Error{Failures: fails}
	}

	// Phase 1: stage every changed file; undo all on the first failure.
	staged := make([]stager, 0, len(order))
	for _, s := range order {
		if err := s.stage(); err != nil {
			for _, d := range staged {
				d.abort()
			}
			s.abort()
			ds.removeCreated()
			f, cerr := s.failure(err)
			fail(f, cerr)
			return Result{Removed: ds.removed}, &Error{Failures: fails}
		}
		staged = append(staged, s)
	}

	// Phase 2: rename into place.
	changed := map[string]bool{}
	for i, s := range staged {
		if err := s.commit(changed); err != nil {
			for _, d := range staged[i:] {
				d.abort()
			}
			ds.removeCreated()
			f, cerr := s.failure(err)
			fail(f, cerr)
			res := result(files, changed, false)
			res.Removed = ds.removed
			return res, &Error{Failures: fails}
		}
	}
	res := result(files, changed, true)
	res.Removed = ds.removed
	return res, nil
}

// result lists the changed paths and, when the Write completed, the others
// as unchanged.
func result(files []File, changed map[string]bool, complete bool) Result {
	var res Result
	for _, f := range files {
		switch {
		case changed[filepath.Clean(f.Path)]:
			res.Changed = append(res.Changed, f.Path)
		case complete:
			res.Unchanged = append(res.Unchanged, f.Path)
		}
	}
	return res
}

// Render builds every file's content and, if all succeed, writes them: Build
// then Write, with their all-or-nothing guarantees.
func Render(files []File, secrets map[string]providers.Resolved) (Result, error) {
	contents, err := Build(files, secrets)
	if err != nil {
		return Result{}, err
	}
	return Write(files, contents)
}

// stager is one unit of Write: a single file or an atomic directory group.
type stager interface {
	// check reports, through fail, every target of the unit that cannot
	// be written; it writes nothing.
	check(fail func(File, error))
	// stage writes everything that can fail for lack of space or
	// permission, without modifying any target.
	stage() error
	// commit puts the staged content in place and records the changed paths.
	commit(changed map[string]bool) error
	// abort removes whatever stage created. Safe to call more than once.
	abort()
	// failure attributes err to a file for the *Error.
	failure(err error) (File, error)
}
