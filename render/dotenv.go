package render

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/keyward/keyward/providers"
)

// Dialect names the program that reads a dotenv file. dotenv has no
// standard: each reader has its own quoting, escapes, comments and
// variable expansion, and a value written for one is read back altered by
// another. keyward writes each value in a form its reader reads back byte
// for byte, and refuses (naming the key and the secret, never the value)
// a value that reader cannot represent rather than alter or lose it.
type Dialect string

// The dotenv dialects.
const (
	// DialectBash (the default): `set -a; . FILE` in bash or any POSIX
	// shell. Every value without a NUL byte.
	DialectBash Dialect = "bash"
	// DialectDocker: `docker run --env-file FILE` (docker/cli's kvfile
	// parser: one KEY=VALUE per line, taken literally, quotes included).
	// No newline, no carriage return at the end, valid UTF-8, and a line
	// under 64 KiB.
	DialectDocker Dialect = "docker"
	// DialectPythonDotenv: python-dotenv (load_dotenv, dotenv_values, with
	// their default interpolate=True). Valid UTF-8; no ${...} (it would be
	// expanded, and cannot be escaped); a value ending in a backslash only
	// where it needs no quotes.
	DialectPythonDotenv Dialect = "python-dotenv"
	// DialectNode: the dotenv package of npm (require('dotenv').config(),
	// dotenv.parse). Valid UTF-8; a value is quoted with ', ` or " (the
	// only one that can hold a carriage return, but never a ") and must
	// not end in a backslash unless it needs no quotes.
	DialectNode Dialect = "node"
	// DialectGodotenv: github.com/joho/godotenv (Load, Read). Everything
	// but a few values that need quotes and hold a ' or a carriage return
	// and end in a backslash or a double quote.
	DialectGodotenv Dialect = "godotenv"
)

// Dialects lists the dotenv dialects, the default first.
var Dialects = []Dialect{DialectBash, DialectDocker, DialectPythonDotenv, DialectNode, DialectGodotenv}

func knownDialect(d Dialect) bool { return d == "" || slices.Contains(Dialects, d) }

func dialectList() string {
	s := make([]string, len(Dialects))
	for i, d := range Dialects {
		s[i] = string(d)
	}
	return strings.Join(s, ", ")
}

// buildDotenv renders NAME=value lines sorted by name, each value written
// for dialect d (see encodeDotenv).
func buildDotenv(names []string, secrets map[string]providers.Resolved, d Dialect) ([]byte, error) {
	entries, err := collect(names, secrets)
	if err != nil {
		return nil, err
	}
	var errs []string
	var b bytes.Buffer
	for _, e := range entries {
		if !validEnvName(e.key) {
			errs = append(errs, e.describe()+": not a valid environment variable name")
			continue
		}
		enc, err := encodeDotenv(d, e.key, e.value.Bytes())
		if err != nil {
			errs = append(errs, e.describe()+": "+err.Error())
			continue
		}
		b.WriteString(e.key)
		b.WriteByte('=')
		b.Write(enc)
		b.WriteByte('\n')
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, ", "))
	}
	return b.Bytes(), nil
}

// encodeDotenv returns v written so that dialect d reads it back exactly
// as the value of key, or an error saying why d cannot hold it. The error
// describes the value's shape, never its content.
func encodeDotenv(d Dialect, key string, v []byte) ([]byte, error) {
	if bytes.IndexByte(v, 0) >= 0 {
		return nil, errors.New("value contains a NUL byte")
	}
	if d != DialectBash && d != "" && d != DialectGodotenv && !utf8.Valid(v) {
		return nil, fmt.Errorf("value is not valid UTF-8, which %s cannot read", d)
	}
	switch d {
	case DialectBash, "":
		var b bytes.Buffer
		encodeDotenvValue(&b, v)
		return b.Bytes(), nil
	case DialectDocker:
		return encodeDocker(key, v)
	case DialectPythonDotenv:
		return encodePython(v)
	case DialectNode:
		return encodeNode(v)
	case DialectGodotenv:
		return encodeGodotenv(v)
	}
	return nil, fmt.Errorf("unknown dotenv dialect %q", d)
}

// dotenvPlain reports whether v can be written unquoted: only characters
// that no shell or dotenv parser treats specially ([A-Za-z0-9_./:@%+,=-]),
// which covers identifiers, numbers, URLs without queries, paths and base64.
func dotenvPlain(v []byte) bool {
	for _, c := range v {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case strings.IndexByte("_./:@%+,=-", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// encodeDotenvValue writes v for bash (and any POSIX shell) in the first
// of three forms that fits it:
//
//  1. Plain (dotenvPlain): NAME=value.
//  2. No ' and no \ in the value: NAME='value', everything literal,
//     newlines included.
//  3. Otherwise: NAME="value" with \\ \" \$ and \` escaped and newlines
//     kept as newlines (the escape \n is not used: bash does not decode it
//     inside double quotes).
//
// `set -a; . FILE` reads back every value without a NUL byte exactly,
// carriage returns and invalid UTF-8 included.
func encodeDotenvValue(b *bytes.Buffer, v []byte) {
	switch {
	case dotenvPlain(v):
		b.Write(v)
	case bytes.IndexByte(v, '\'') < 0 && bytes.IndexByte(v, '\\') < 0:
		b.WriteByte('\'')
		b.Write(v)
		b.WriteByte('\'')
	default:
		b.WriteByte('"')
		for _, c := range v {
			switch c {
			case '\\', '"', '$', '`':
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
		b.WriteByte('"')
	}
}

// dockerMaxLine is the longest line docker's env-file reader accepts: it
// reads lines with a bufio.Scanner, whose token limit is 64 KiB.
const dockerMaxLine = 64*1024 - 1

// encodeDocker writes v as it is: docker/cli's kvfile parser takes
// everything after the first '=' literally, reads one line per variable
// (bufio.ScanLines, which also drops a carriage return at the end of a
// line) and refuses a file that is not valid UTF-8.
func encodeDocker(key string, v []byte) ([]byte, error) {
	switch {
	case bytes.IndexByte(v, '\n') >= 0:
		return nil, errors.New("value contains a newline, and docker reads one line per variable (use a raw file or env: instead)")
	case bytes.HasSuffix(v, []byte("\r")):
		return nil, errors.New("value ends with a carriage return, which docker drops")
	case len(key)+1+len(v) > dockerMaxLine:
		return nil, fmt.Errorf("value is longer than the %d bytes of a line docker reads", dockerMaxLine-len(key)-1)
	}
	return v, nil
}

// pythonInterpolation matches what python-dotenv's variable expansion
// (interpolate=True, its default) replaces: ${NAME} and ${NAME:-default}.
var pythonInterpolation = regexp.MustCompile(`\$\{[^}:]*(?::-[^}]*)?\}`)

// pySpace reports whether Python's str.isspace (and so the \s of its re
// module and str.strip) takes r for whitespace.
func pySpace(r rune) bool {
	return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f
}

// encodePython writes v for python-dotenv 1.x (parser.py), whose file is
// read as text with universal newlines (a carriage return becomes a
// newline) and whose values are expanded for ${...} in every form:
//
//   - Unquoted when v has no newline or carriage return, does not start
//     with a quote or whitespace, does not end with whitespace and has no
//     whitespace followed by # (a comment): taken literally, backslashes
//     included.
//   - Otherwise double-quoted with \\ \" \n \r escaped. Its reader pairs a
//     backslash before the closing quote with that quote, so a value that
//     ends with a backslash cannot be quoted.
func encodePython(v []byte) ([]byte, error) {
	if pythonInterpolation.Match(v) {
		return nil, errors.New("value contains ${...}, which python-dotenv expands (interpolate=True, its default) and has no escape for")
	}
	if dotenvPlain(v) || unquotedFits(string(v), pySpace) {
		return v, nil
	}
	if bytes.HasSuffix(v, []byte(`\`)) {
		return nil, errors.New("value ends with a backslash and needs quotes, which python-dotenv then misreads")
	}
	return doubleQuoted(v, false), nil
}

// doubleQuoted returns v between double quotes with \\ and \" (and \$ when
// dollar is set) escaped and newline and carriage return written \n and \r.
func doubleQuoted(v []byte, dollar bool) []byte {
	var b bytes.Buffer
	b.WriteByte('"')
	for _, c := range v {
		switch {
		case c == '\\' || c == '"' || (dollar && c == '$'):
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.Bytes()
}

// unquotedFits reports whether s can stand unquoted for a reader that takes
// space for whitespace: not empty, no newline or carriage return, no quote
// first, no whitespace at either end and no whitespace followed by #.
func unquotedFits(s string, space func(rune) bool) bool {
	if s == "" || strings.ContainsAny(s, "\r\n") || s[0] == '\'' || s[0] == '"' {
		return false
	}
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	if space(first) || space(last) {
		return false
	}
	prev := 'x'
	for _, r := range s {
		if r == '#' && space(prev) {
			return false
		}
		prev = r
	}
	return true
}

// jsSpace reports whether JavaScript's \s and String.prototype.trim take r
// for whitespace (WhiteSpace and LineTerminator).
func jsSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}

// encodeNode writes v for the dotenv package of npm (versions 15 to 18,
// whose default parser is one regular expression, LINE in lib/main.js),
// which first turns every \r\n and \r into \n and decodes no escape but \n
// and \r inside double quotes. The first form that fits:
//
//   - Unquoted: no #, newline or carriage return, no quote first, no
//     whitespace at either end.
//   - Single quotes, then backquotes: literal, newlines included; v must
//     not contain that quote, nor a carriage return.
//   - Double quotes, with newlines and carriage returns as \n and \r: v
//     must not contain " (its reader keeps the backslash of \"), nor a
//     backslash followed by n or r (it would be decoded).
//
// In every quoted form a backslash before the closing quote pairs with it,
// so a value that needs quotes cannot end with a backslash.
func encodeNode(v []byte) ([]byte, error) {
	s := string(v)
	if dotenvPlain(v) || nodeUnquoted(s) {
		return v, nil
	}
	if strings.HasSuffix(s, `\`) {
		return nil, errors.New("value ends with a backslash and needs quotes, which node's dotenv then misreads")
	}
	for _, q := range []string{"'", "`"} {
		if !strings.Contains(s, q) && !strings.Contains(s, "\r") {
			return []byte(q + s + q), nil
		}
	}
	if strings.Contains(s, `"`) || strings.Contains(s, `\n`) || strings.Contains(s, `\r`) {
		return nil, errors.New(`value needs quotes and holds ', ` + "`" + ` and " (or a carriage return with " or a backslash before n or r): node's dotenv has no quoting that keeps it`)
	}
	s = strings.ReplaceAll(s, "\n", `\n`)
	s = strings.ReplaceAll(s, "\r", `\r`)
	return []byte(`"` + s + `"`), nil
}

func nodeUnquoted(s string) bool {
	if s == "" || strings.ContainsAny(s, "#\r\n") || strings.ContainsAny(s[:1], "'\"`") {
		return false
	}
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	return !jsSpace(first) && !jsSpace(last)
}

// godotenvSpace is godotenv's isSpace: what it trims around an unquoted
// value and takes before a # for a comment.
func godotenvSpace(r rune) bool {
	switch r {
	case '\t', '\v', '\f', '\r', ' ', 0x85, 0xa0:
		return true
	}
	return false
}

// encodeGodotenv writes v for github.com/joho/godotenv 1.5 (parser.go),
// which first turns every \r\n into \n, ends a quoted value at the first
// quote not preceded by a backslash, and expands $NAME in unquoted and
// double-quoted values. The first form that fits:
//
//   - Single quotes: literal, newlines included; v must not contain ' or
//     a carriage return, nor end with a backslash.
//   - Double quotes, with \\ \" \$ \n \r escaped: v must not end with a
//     backslash or a double quote (the reader trims quote characters off
//     both ends of what it found).
//   - Unquoted, with $ written \$: no newline or carriage return, no quote
//     first, no whitespace at either end, no whitespace followed by #.
//
// Plain values are written unquoted.
func encodeGodotenv(v []byte) ([]byte, error) {
	s := string(v)
	switch {
	case dotenvPlain(v):
		return v, nil
	case !strings.ContainsAny(s, "'\r") && !strings.HasSuffix(s, `\`):
		return []byte("'" + s + "'"), nil
	case !strings.HasSuffix(s, `\`) && !strings.HasSuffix(s, `"`):
		return doubleQuoted(v, true), nil
	case utf8.ValidString(s) && unquotedFits(s, godotenvSpace):
		return []byte(strings.ReplaceAll(s, "$", `\$`)), nil
	}
	return nil, errors.New("value needs quotes, holds a ' or a carriage return and ends with a backslash or a double quote: godotenv has no quoting that keeps it")
}
