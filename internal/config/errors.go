package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Problem is one thing wrong with a configuration: the 1-based line of the
// config file it was found on (0 when it has no line, as for a file that
// cannot be read or an environment variable) and a message that names the
// offending key but never carries a secret value.
type Problem struct {
	Line int
	Msg  string
}

// Error reports every problem found in one configuration source. Path is
// the config file as given to Load or Parse ("environment" for FromEnv).
// Its message is always a single line, so the CLI can print it as is before
// exiting with code 78.
type Error struct {
	Path     string
	Problems []Problem
	err      error
}

// Error returns "PATH:LINE: MSG" for one problem and
// "PATH: N problems: line L1: MSG1; line L2: MSG2" for several.
func (e *Error) Error() string {
	path := e.Path
	if path == "" {
		path = "config"
	}
	switch len(e.Problems) {
	case 0:
		return path + ": invalid configuration"
	case 1:
		p := e.Problems[0]
		if p.Line > 0 {
			return fmt.Sprintf("%s:%d: %s", path, p.Line, oneLine(p.Msg))
		}
		return path + ": " + oneLine(p.Msg)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problems: ", path, len(e.Problems))
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		if p.Line > 0 {
			fmt.Fprintf(&b, "line %d: ", p.Line)
		}
		b.WriteString(oneLine(p.Msg))
	}
	return b.String()
}

// Unwrap returns the underlying error when there is one, such as the
// fs.ErrNotExist of a missing config file.
func (e *Error) Unwrap() error { return e.err }

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// problems collects Problems with the line of the key path they concern.
type problems struct {
	list []Problem
}

func (p *problems) add(line int, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	p.list = append(p.list, Problem{Line: line, Msg: msg})
}

// err returns nil when nothing was collected, else an *Error with the
// problems in line order.
func (p *problems) err(path string) error {
	if len(p.list) == 0 {
		return nil
	}
	list := slices.Clone(p.list)
	slices.SortStableFunc(list, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
	return &Error{Path: path, Problems: list}
}
