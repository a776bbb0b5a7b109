package file

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/keyward/keyward/internal/backoff"
	"github.com/keyward/keyward/providers"
)

func TestParseDotenv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want map[string]string
	}{
		{"empty", "", map[string]string{}},
		{"comments and blank lines", "# c\n\n   # indented\n\t\nA=1\n", map[string]string{"A": "1"}},
		{"export prefix", "export A=1\nexport\tB=2\n", map[string]string{"A": "1", "B": "2"}},
		{"key named export", "export=1\n", map[string]string{"export": "1"}},
		{"spaces around equals", "A = 1\n  B=  2  \n", map[string]string{"A": "1", "B": "2"}},
		{"empty values", "A=\nB=''\nC=\"\"\nD= # comment\n", map[string]string{"A": "", "B": "", "C": "", "D": ""}},
		{"unquoted trailing comment", "A=abc # comment\nB=abc\t# tab comment\n", map[string]string{"A": "abc", "B": "abc"}},
		{"hash inside unquoted value", "A=abc#def\nB=#x\nC=a#b #c\n", map[string]string{"A": "abc#def", "B": "#x", "C": "a#b"}},
		{"unquoted keeps inner spaces and quotes", "A=a b  c\nB=it's\nC=say \"hi\"\n", map[string]string{"A": "a b  c", "B": "it's", "C": `say "hi"`}},
		{"unquoted backslash literal", `A=a\nb` + "\n", map[string]string{"A": `a\nb`}},
		{"single quotes literal", `A='a\nb $X "q"'` + "\n", map[string]string{"A": `a\nb $X "q"`}},
		{"single quotes multi-line", "A='line1\nline2'\nB=2\n", map[string]string{"A": "line1\nline2", "B": "2"}},
		{"double quote escapes", `A="a\nb\tc\"d\\e\$f` + "\\`" + `g\r"` + "\n", map[string]string{"A": "a\nb\tc\"d\\e$f`g\r"}},
		{"double quote unknown escape kept", `A="a\qb"` + "\n", map[string]string{"A": `a\qb`}},
		{"double quotes multi-line", "A=\"-----BEGIN-----\nMIIB\n-----END-----\"\nB=x\n", map[string]string{"A": "-----BEGIN-----\nMIIB\n-----END-----", "B": "x"}},
		{"backslash newline continues", "A=\"ab\\\ncd\"\n", map[string]string{"A": "abcd"}},
		{"quoted value then comment", `A="x y" # note` + "\n" + `B='z' #n` + "\n", map[string]string{"A": "x y", "B": "z"}},
		{"quoted hash", `A="a #b"` + "\n", map[string]string{"A": "a #b"}},
		{"crlf", "A=1\r\nB=\"x\"\r\n", map[string]string{"A": "1", "B": "x"}},
		{"no final newline", "A=1", map[string]string{"A": "1"}},
		{"later wins", "A=1\nA=2\n", map[string]string{"A": "2"}},
		{"dotted and dashed keys", "spring.datasource.password=x\nmy-key=y\n_U=z\n", map[string]string{"spring.datasource.password": "x", "my-key": "y", "_U": "z"}},
		{"equals in value", "A=b=c==\n", map[string]string{"A": "b=c=="}},
		{"utf8", "A=héllo wörld\n", map[string]string{"A": "héllo wörld"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseDotenv([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseDotenv: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseDotenv(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseDotenvErrors(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-s3cr3t"
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"no equals", "A=1\n" + secret + "\n", "line 2, column 15: expected '=' after the variable name"},
		{"bad key start", "1A=" + secret, "line 1, column 1: expected a variable name"},
		{"bad key char", "A B=" + secret, "line 1, column 3: expected '=' after the variable name"},
		{"unterminated double", "A=1\nB=\"" + secret + "\nC=2\n", "line 2, column 3: unterminated double-quoted value"},
		{"unterminated single", "\n\nB='" + secret, "line 3, column 3: unterminated single-quoted value"},
		{"text after quote", `A="x"` + secret, "line 1, column 6: unexpected text after the value"},
		{"line after multi-line value", "A=\"a\nb\" " + secret + "\n", "line 2, column 4: unexpected text after the value"},
		{"export without assignment", "export " + secret, "line 1, column 22: expected '=' after the variable name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseDotenv([]byte(tt.in))
			if err == nil {
				t.Fatal("ParseDotenv succeeded, want an error")
			}
			if err.Error() != tt.want {
				t.Errorf("error = %q, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error quotes the content: %q", err)
			}
		})
	}
}

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	got, err := decodeJSON([]byte(`{"a": 1.50, "b": {"c": [true, null, "x"]}, "big": 12345678901234567890}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"a":   json.Number("1.50"),
		"b":   map[string]any{"c": []any{true, nil, "x"}},
		"big": json.Number("12345678901234567890"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decodeJSON = %#v, want %#v", got, want)
	}
}

func TestDecodeJSONErrors(t *testing.T) {
	t.Parallel()
	const secret = "hunter2"
	tests := []struct {
		name, in, want string
	}{
		{"bare word", `{"password": hunter2}`, "line 1, column 14: invalid character looking for beginning of value"},
		{"second line", "{\n  \"a\": \"b\",\n  hunter2\n}", "line 3, column 3: invalid character looking for beginning of object key string"},
		{"after key", `{"hunter2" hunter2}`, "line 1, column 12: invalid character after object key"},
		{"truncated", `{"password": "hunter2`, "line 1, column 22: unexpected end of input"},
		{"empty", "  \n", "line 2, column 1: empty file"},
		{"trailing data", `{"a": "b"} hunter2`, "line 1, column 12: unexpected data after the top-level value"},
		{"second value", "{\"a\": \"b\"}\n {\"c\": \"hunter2\"}", "line 2, column 2: unexpected data after the top-level value"},
		{"array", `["hunter2"]`, "line 1, column 1: top-level value is an array, not an object (use ?format=raw to read the file whole)"},
		{"string", ` "hunter2"`, "line 1, column 2: top-level value is a string, not an object (use ?format=raw to read the file whole)"},
		{"bad escape", `{"a": "\q hunter2"}`, "line 1, column 9: invalid character in string escape code"},
		{"control char", "{\"a\": \"hun\x01ter2\"}", "line 1, column 11: invalid character in string literal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeJSON([]byte(tt.in))
			if err == nil {
				t.Fatal("decodeJSON succeeded, want an error")
			}
			if err.Error() != tt.want {
				t.Errorf("error = %q, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "'h'") {
				t.Errorf("error quotes the content: %q", err)
			}
		})
	}
}

func TestDecodeYAML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want map[string]any
	}{
		{"empty", "", map[string]any{}},
		{"comments only", "# nothing\n", map[string]any{}},
		{"null document", "~\n", map[string]any{}},
		{"scalars keep their text", "pin: 0123\nversion: 1.10\nhex: 0x1F\nport: 5432\nratio: 1e3\nyes: yes\nday: 2024-01-02\nplus: +1\n",
			map[string]any{"pin": "0123", "version": json.Number("1.10"), "hex": "0x1F", "port": json.Number("5432"), "ratio": json.Number("1e3"), "yes": "yes", "day": "2024-01-02", "plus": "+1"}},
		{"bools and null", "a: true\nb: False\nc: ~\nd: null\ne:\n", map[string]any{"a": true, "b": false, "c": nil, "d": nil, "e": nil}},
		{"quoted stays string", "a: \"true\"\nb: '5'\n", map[string]any{"a": "true", "b": "5"}},
		{"nested and lists", "a:\n  b:\n    c: x\n  l: [1, two]\n", map[string]any{"a": map[string]any{"b": map[string]any{"c": "x"}, "l": []any{json.Number("1"), "two"}}}},
		{"non-string keys", "1: one\ntrue: yes\nnested:\n  2: two\n", map[string]any{"1": "one", "true": "yes", "nested": map[string]any{"2": "two"}}},
		{"block scalar", "cert: |\n  line1\n  line2\n", map[string]any{"cert": "line1\nline2\n"}},
		{"binary", "b: !!binary aGVs\n  bG8=\n", map[string]any{"b": []byte("hello")}},
		{"anchors and merge", "base: &b\n  user: u\n  pass: p\nprod:\n  <<: *b\n  pass: q\n", map[string]any{
			"base": map[string]any{"user": "u", "pass": "p"},
			"prod": map[string]any{"user": "u", "pass": "q"},
		}},
		{"merge sequence", "a: &a {x: 1}\nb: &b {y: 2}\nc:\n  <<: [*a, *b]\n", map[string]any{
			"a": map[string]any{"x": json.Number("1")}, "b": map[string]any{"y": json.Number("2")},
			"c": map[string]any{"x": json.Number("1"), "y": json.Number("2")},
		}},
		{"flow mapping", "{a: 1, b: c}", map[string]any{"a": json.Number("1"), "b": "c"}},
		{"explicit document", "---\na: b\n...\n", map[string]any{"a": "b"}},
		{"custom tag", "a: !vault x\n", map[string]any{"a": "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := decodeYAML([]byte(tt.in))
			if err != nil {
				t.Fatalf("decodeYAML: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decodeYAML = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestDecodeYAMLErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"scalar", "hunter2\n", "line 1, column 1: top-level value is a scalar, not a mapping (use ?format=raw to read the file whole)"},
		{"sequence", "- hunter2\n", "line 1, column 1: top-level value is a sequence, not a mapping (use ?format=raw to read the file whole)"},
		{"tagged scalar", "!!int hunter2\n", "line 1, column 1: top-level value is a scalar, not a mapping (use ?format=raw to read the file whole)"},
		{"unterminated quote", "a: b\npassword: \"hunter2\n", "line 2: found unexpected end of stream"},
		// yaml.v3 reports the line of the enclosing block.
		{"bad indentation", "a:\n  b: c\n d: hunter2\n", "line 2: did not find expected key"},
		{"mapping in value", "a: b: hunter2\n", "line 1: mapping values are not allowed in this context"},
		{"unknown anchor", "a: *hunter2\n", "line 1: invalid YAML"},
		{"tab", "a:\n\tb: hunter2\n", "line 2: found character that cannot start any token"},
		{"duplicate key", "a: 1\na: hunter2\n", "line 2, column 1: duplicate mapping key"},
		{"two documents", "a: 1\n---\nb: hunter2\n", "line 2, column 1: more than one YAML document"},
		{"bad binary", "b: !!binary hunter2!\n", "line 1, column 4: !!binary value is not valid base64"},
		{"merge of scalar", "a:\n  <<: hunter2\n", "line 2, column 7: merge (<<) needs a mapping or a sequence of mappings"},
		{"alias bomb", aliasBomb(), "document too large after expanding aliases"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeYAML([]byte(tt.in))
			if err == nil {
				t.Fatal("decodeYAML succeeded, want an error")
			}
			if !strings.HasSuffix(err.Error(), tt.want) {
				t.Errorf("error = %q, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error quotes the content: %q", err)
			}
		})
	}
}

// aliasBomb is a "billion laughs" document: 9 levels of 9 aliases each.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("l0: &l0 [x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 9; i++ {
		b.WriteString("l" + string(rune('0'+i)) + ": &l" + string(rune('0'+i)) + " [")
		for j := 0; j < 9; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*l" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	return b.String()
}

func TestFormatFromName(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"/etc/kw/dev.json": "json", "a.JSON": "json", "dev.yaml": "yaml", "dev.yml": "yaml", "X.YML": "yaml",
		".env": "dotenv", "prod.env": "dotenv", ".env.local": "dotenv", "/a/b/.env.production": "dotenv",
		"cert.pem": "", "password": "", "env": "", "dev.env.bak": "", ".envrc": "", ".environment": "", "tls.crt": "", "json": "",
	}
	for name, want := range tests {
		if got := formatFromName(name); got != want {
			t.Errorf("formatFromName(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestSniff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want map[string]any
	}{
		{"json object", `{"a": "b"}`, map[string]any{"a": "b"}},
		{"yaml flow mapping", `{a: b}`, map[string]any{"a": "b"}},
		{"yaml mapping", "a: b\nc:\n  d: e\n", map[string]any{"a": "b", "c": map[string]any{"d": "e"}}},
		{"dotenv", "A=1\nexport B=\"x: y\"\n", map[string]any{"A": "1", "B": "x: y"}},
		{"pem", "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n", nil},
		{"token", "ghp_abcdefghijklmnopqrstuvwxyz0123456789\n", nil},
		{"empty", "", nil},
		{"whitespace", " \n\t", nil},
		{"json array", `["a"]`, nil},
		{"json string", `"abc"`, nil},
		{"yaml scalar", "just a password with spaces", nil},
		{"broken json", `{"a": `, nil},
		{"binary", "\x00\xff\xfe", nil},
		{"empty yaml mapping", "{}", map[string]any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := sniff([]byte(tt.in))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("sniff(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestReadErrorMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		err      error
		sentinel error
		want     string
	}{
		{"EACCES", &fs.PathError{Op: "open", Path: "/x", Err: syscall.EACCES}, providers.ErrPermissionDenied, "read /x: permission denied"},
		{"EPERM", &fs.PathError{Op: "open", Path: "/x", Err: syscall.EPERM}, providers.ErrPermissionDenied, "read /x: permission denied"},
		{"ENOENT", &fs.PathError{Op: "open", Path: "/x", Err: syscall.ENOENT}, providers.ErrNotFound, "read /x: not found"},
		{"ENOTDIR", &fs.PathError{Op: "open", Path: "/x", Err: syscall.ENOTDIR}, providers.ErrNotFound, "read /x: not found"},
		{"EISDIR", &fs.PathError{Op: "read", Path: "/x", Err: syscall.EISDIR}, errIsDirectory, "read /x: is a directory, not a file"},
		{"EIO", &fs.PathError{Op: "read", Path: "/x", Err: syscall.EIO}, syscall.EIO, "read /x: input/output error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := New("/", Options{})
			p.readFile = func(context.Context, string) ([]byte, error) { return nil, tt.err }
			_, err := p.Fetch(t.Context(), providers.Ref{Scheme: "file", Path: "/x"})
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("Fetch error %v does not wrap %v", err, tt.sentinel)
			}
			if err == nil || err.Error() != tt.want {
				t.Errorf("Fetch error = %v, want %q", err, tt.want)
			}
			// A directory is refused for what it is: no retry reads it.
			if permanent := tt.sentinel == errIsDirectory; backoff.IsPermanent(err) != permanent {
				t.Errorf("Fetch error %v: permanent is %v, want %v", err, !permanent, permanent)
			}
		})
	}
}
