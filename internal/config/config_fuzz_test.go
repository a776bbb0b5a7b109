package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// configSeeds are the corpus of FuzzParse beside the repository's own
// configs (testdata and examples): small documents that reach each
// section, and hostile YAML.
var configSeeds = []string{
	"version: 1\n",
	"version: 1\nsecrets:\n  A: file:dev.yaml#a\nfiles:\n  - {path: out/a, secret: A, mode: \"0400\"}\n",
	"version: 1\nsecrets: {A: vault://secret/x#y, B: awssm://p/q#r}\nenv: {X: A}\nfiles:\n  - path: o.env\n    secrets: [A, B]\n    format: dotenv\n    atomic_dir: true\n    on_change: {signal: HUP}\n",
	"version: 1\nsecrets: {A: k8s://ns/s#k}\nfiles:\n  - path: t.ini\n    template: |\n      pw = {{ secret \"A\" }}\n",
	"version: 1\nproviders:\n  v2: {kind: vault, address: https://v:8200, auth: {method: approle, role_id: x, secret_id: file:s#id}}\nsecrets: {A: v2://secret/a#b}\n",
	"version: 1\ntokens:\n  api:\n    token_url: http://127.0.0.1:1/token\n    client_id: file:c#id\n    client_secret: file:c#s\n    scopes: [a, b]\n    file: tok\n    file_format: json\nserver: {listen: \"127.0.0.1:8099\"}\nwatch: {interval: 1s, jitter: 0.5, debounce: 10ms}\non_change: {restart: true}\n",
	"version: 1\nci: {}\nkeep_env: [VAULT_TOKEN]\n",
	// An alias bomb: refused quickly, never expanded.
	"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\nversion: 1\nsecrets: *d\n",
	"version: 1\nsecrets: &s {A: file:x#y}\nenv: *s\n",
	"version: 1\n---\nversion: 1\n",
	"version: 1\nfiles: [{path: \"\\x00\", secret: A}]\n",
	"\t\x00\xff: [",
}

// FuzzParse feeds arbitrary documents to the config loader. It never
// panics; an error is always an *Error whose message is one line and whose
// problems point at lines of the document; a config it accepts passes
// Validate again and has absolute file paths; and parsing is
// deterministic (the same input gives the same result twice).
func FuzzParse(f *testing.F) {
	for _, s := range configSeeds {
		f.Add([]byte(s))
	}
	for _, glob := range []string{"testdata/*.yaml", "../../examples/*/keyward.yaml", "../../examples/*/*/keyward.yaml"} {
		paths, _ := filepath.Glob(glob)
		for _, p := range paths {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	dir := f.TempDir()
	path := filepath.Join(dir, "keyward.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, path)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *config.Error: %v", err, err)
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("error message is not one line: %q", msg)
			}
			if !strings.HasPrefix(msg, path) {
				t.Fatalf("error message does not start with the config path: %q", msg)
			}
			lines := bytes.Count(data, []byte("\n")) + 1
			for _, p := range ce.Problems {
				if p.Line < 0 || p.Line > lines+1 {
					t.Fatalf("problem on line %d of a %d-line document: %q", p.Line, lines, p.Msg)
				}
			}
			if _, err2 := Parse(data, path); err2 == nil || err2.Error() != msg {
				t.Fatalf("second parse of the same input gave %v, first %q", err2, msg)
			}
			return
		}
		if c == nil {
			t.Fatal("Parse returned neither a config nor an error")
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("an accepted config fails Validate: %v", err)
		}
		for i, fl := range c.Files {
			if !filepath.IsAbs(fl.Path) {
				t.Fatalf("files[%d].path is not absolute after Parse", i)
			}
		}
		c2, err := Parse(data, path)
		if err != nil {
			t.Fatalf("second parse of an accepted input fails: %v", err)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatal("two parses of the same input differ")
		}
	})
}
