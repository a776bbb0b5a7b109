package file

import (
	"errors"
	"regexp"
	"testing"
)

// errorShape is what every parse error must look like: a position and a
// reason made of words, never a quote of the input.
// Quoted, only a single punctuation character is allowed ("expected ':'").
var errorShape = regexp.MustCompile(`^line [1-9][0-9]*(, column [1-9][0-9]*)?: (?:[a-zA-Z0-9 ,.:=()<>!?/\\-]|'[^a-zA-Z0-9\s']')+$`)

// FuzzDecode feeds arbitrary content to every format's parser and to the
// sniffer: none may panic, and every error is a positioned, content-free
// *syntaxError.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"a": {"b": [1, "x", null]}}`, `{"a": hunter2}`, `["a"]`, "",
		"a: b\nc:\n  d: [1, 2]\n", "base: &b {x: 1}\nc:\n  <<: *b\n", "a: *nope\n", "- x\n", "a: !!binary aGk=\n",
		"export A='x'\nB=\"y\\n\" # c\nC=z\n", "A=\"unterminated\n", "A='x'y\n",
		"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "\x00\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, format := range []string{FormatJSON, FormatYAML, FormatDotenv} {
			_, err := decode(format, b)
			if err == nil {
				continue
			}
			var se *syntaxError
			if !errors.As(err, &se) {
				t.Fatalf("%s: error %T is not a *syntaxError: %v", format, err, err)
			}
			if !errorShape.MatchString(err.Error()) {
				t.Fatalf("%s: error %q does not have the expected shape", format, err)
			}
		}
		_ = sniff(b)
	})
}
