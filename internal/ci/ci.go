// Package ci hands secrets to a CI system: it detects GitHub Actions,
// GitLab CI or anything else from the environment, registers every value
// with GitHub's log masker (::add-mask::), appends variables to the
// runner's $GITHUB_ENV and $GITHUB_OUTPUT files in the multi-line
// NAME<<DELIMITER form that no value can break out of, and writes 0600
// dotenv files for the other systems.
package ci

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/render"
)

// System is a CI system keyward knows how to hand secrets to.
type System string

// The systems Detect recognises.
const (
	// GitHub is GitHub Actions (GITHUB_ACTIONS=true).
	GitHub System = "github"
	// GitLab is GitLab CI (GITLAB_CI=true).
	GitLab System = "gitlab"
	// Generic is any other CI system, or none.
	Generic System = "generic"
)

// Detect returns the CI system the process runs under, from the variables
// the runners set: GITHUB_ACTIONS=true for GitHub Actions, GITLAB_CI=true
// for GitLab CI, otherwise Generic.
func Detect(getenv func(string) string) System {
	switch {
	case getenv("GITHUB_ACTIONS") == "true":
		return GitHub
	case getenv("GITLAB_CI") == "true":
		return GitLab
	}
	return Generic
}

// ParseSystem parses a --system flag value: auto (""), github, gitlab or
// generic. auto returns "" and no error.
func ParseSystem(s string) (System, error) {
	switch s {
	case "", "auto":
		return "", nil
	case string(GitHub), string(GitLab), string(Generic):
		return System(s), nil
	}
	return "", fmt.Errorf("unknown CI system %q (want auto, github, gitlab or generic)", s)
}

// A Var is one variable handed to the CI system.
type Var struct {
	// Name is the variable's (or output's) name.
	Name string
	// Value is the secret.
	Value providers.Value
}

// EscapeCommandData escapes s as the data of a workflow command
// (::add-mask::DATA), the way GitHub's toolkit does and its runner undoes:
// % as %25, \r as %0D, \n as %0A. A value with line breaks then stays one
// command on one line, and a value containing %0A is not taken for one
// with a line break.
func EscapeCommandData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// WriteMasks writes one ::add-mask:: command for every value, whatever its
// length, and for every line of a value with line breaks (\n, \r\n or \r:
// the runner splits its log at each, so a whole multi-line value never
// matches a log line) that is at least minLen bytes long, to w, in one
// Write. Blank values and lines are skipped: the runner refuses them.
//
// Why lines have a minimum and values do not: GitHub's runner registers any
// non-blank string (its SecretMasker has no length threshold) and replaces
// it, and the encodings it derives (base64 at three alignments, JSON-, URI-
// and XML-escaped), everywhere in the job's log. A value is a secret of its
// own and is registered like GitHub's own secrets. A short line of a
// multi-line value is mostly structure, not secret: the "{" and "}" of a
// JSON key file, a PEM's "-----" or padding "AB==". Registered, every brace
// of every later log line would become ***. Lines shorter than minLen (6,
// keyward's own masking threshold) carry too little of the secret to be
// worth that.
//
// The runner then replaces each registered string with *** in the job's
// log. Nothing is written when values is empty.
func WriteMasks(w io.Writer, values []providers.Value, minLen int) error {
	var b bytes.Buffer
	seen := map[string]bool{}
	add := func(s string) {
		if strings.TrimSpace(s) == "" || seen[s] {
			return
		}
		seen[s] = true
		b.WriteString("::add-mask::")
		b.WriteString(EscapeCommandData(s))
		b.WriteByte('\n')
	}
	for _, v := range values {
		s := v.Reveal()
		add(s)
		if !strings.ContainsAny(s, "\r\n") {
			continue
		}
		for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }) {
			if len(line) >= minLen {
				add(line)
			}
		}
	}
	if b.Len() == 0 {
		return nil
	}
	_, err := w.Write(b.Bytes())
	return err
}

// delimiterPrefix starts every heredoc delimiter keyward writes.
const delimiterPrefix = "KEYWARD_EOF_"

// Delimiter returns a fresh delimiter for value: delimiterPrefix and 32
// random hex digits from rnd, drawn again in the (astronomically unlikely)
// case that value contains it. It fails only when rnd fails.
func Delimiter(value []byte, rnd io.Reader) (string, error) {
	var raw [16]byte
	for range 100 {
		if _, err := io.ReadFull(rnd, raw[:]); err != nil {
			return "", fmt.Errorf("random delimiter: %w", err)
		}
		d := delimiterPrefix + hex.EncodeToString(raw[:])
		if !bytes.Contains(value, []byte(d)) {
			return d, nil
		}
	}
	return "", errors.New("random delimiter: every draw occurs in the value")
}

// CheckGitHubValue reports why value cannot be passed through a runner's
// file command intact, or nil: the runner reads the file as UTF-8 (other
// bytes would be replaced) and an environment variable cannot hold a NUL.
func CheckGitHubValue(value []byte) error {
	if bytes.IndexByte(value, 0) >= 0 {
		return errors.New("value contains a NUL byte")
	}
	if !utf8.Valid(value) {
		return errors.New("value is not valid UTF-8 (the runner would alter it)")
	}
	return nil
}

// FormatGitHubFile returns the entries for vars in the form the runner
// reads from $GITHUB_ENV and $GITHUB_OUTPUT, each
//
//	NAME<<DELIMITER
//	VALUE
//	DELIMITER
//
// with a fresh random delimiter (see Delimiter) per variable, so that no
// value can end its entry early and define another variable. Names must be
// non-empty and contain neither "=", "<<" nor a line break; values must
// pass CheckGitHubValue. The error names the variable, never its value.
func FormatGitHubFile(vars []Var, rnd io.Reader) ([]byte, error) {
	var b bytes.Buffer
	var problems []string
	for _, v := range vars {
		if v.Name == "" || strings.ContainsAny(v.Name, "=\r\n") || strings.Contains(v.Name, "<<") {
			problems = append(problems, fmt.Sprintf("%q: not a valid name", v.Name))
			continue
		}
		value := v.Value.Bytes()
		if err := CheckGitHubValue(value); err != nil {
			problems = append(problems, v.Name+": "+err.Error())
			continue
		}
		d, err := Delimiter(value, rnd)
		if err != nil {
			return nil, err
		}
		b.WriteString(v.Name)
		b.WriteString("<<")
		b.WriteString(d)
		b.WriteByte('\n')
		b.Write(value)
		b.WriteByte('\n')
		b.WriteString(d)
		b.WriteByte('\n')
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return b.Bytes(), nil
}

// AppendFile appends data to the runner's file at path in one write (the
// runner creates it; keyward creates it 0600 when it does not exist).
func AppendFile(path string, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WriteDotenv writes vars to path as a dotenv file (render's dotenv format:
// sorted, quoted so that `set -a; . FILE` reads back every value exactly),
// atomically with mode 0600 and never through a symlink, as keyward renders
// every file. path must be absolute.
func WriteDotenv(path string, vars []Var) error {
	res := make(map[string]providers.Resolved, len(vars))
	names := make([]string, 0, len(vars))
	for _, v := range vars {
		if _, dup := res[v.Name]; !dup {
			names = append(names, v.Name)
		}
		res[v.Name] = providers.Resolved{Value: v.Value}
	}
	sort.Strings(names)
	_, err := render.Render([]render.File{{
		Path:    path,
		Format:  render.FormatDotenv,
		Secrets: names,
		Mode:    0o600,
		UID:     -1,
		GID:     -1,
	}}, res)
	return err
}
