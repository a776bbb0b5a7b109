package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/keyward/keyward/providers"
)

// dotenvValues are the values every dotenv round trip must survive.
var dotenvValues = []string{
	"",
	"plain",
	"postgres://user@db:5432/app",
	"aGVsbG8gd29ybGQ+Pz8/Pw==",
	"with space",
	"  leading and trailing  ",
	`double "quotes"`,
	"single 'quotes'",
	"it's",
	"dollar $HOME and ${HOME} and $(id) and $1 and $$",
	"back`tick`",
	`back\slash`,
	`trailing backslash\`,
	`\\double\\`,
	`\n not a newline`,
	"hash # not a comment",
	"#starts with hash",
	"unicode: héllo wörld ✓ 日本",
	"line1\nline2\n",
	"\nleading newline",
	"multi\nline with 'quote' and $VAR and \\ and \"dq\"",
	"tab\there",
	"carriage\rreturn",
	"~/tilde",
	"a=b=c",
	"glob*?[x]",
	"bang!",
	"semi;colon&amp|pipe<>",
	"'",
	`"`,
	`'\'`,
	"=",
}

func TestDotenvEncoding(t *testing.T) {
	t.Parallel()
	tests := []struct{ value, want string }{
		{"", ``},
		{"abc-123_x.y/z:@%+,=", `abc-123_x.y/z:@%+,=`},
		{"with space", `'with space'`},
		{"$HOME \"q\"\nline", "'$HOME \"q\"\nline'"},
		{"it's $x", `"it's \$x"`},
		{`a\b"c` + "`", `"a\\b\"c\` + "`" + `"`},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		encodeDotenvValue(&b, []byte(tt.value))
		if b.String() != tt.want {
			t.Errorf("encode(%q) = %s, want %s", tt.value, b.String(), tt.want)
		}
	}
}

func TestDotenvFile(t *testing.T) {
	t.Parallel()
	secrets := resolved(map[string]string{"B": "two", "A": "one"})
	secrets["DB"] = whole(map[string]string{"DB_USER": "app", "DB_PASS": "p w"})
	b, err := buildDotenv([]string{"DB", "B", "A"}, secrets, "")
	if err != nil {
		t.Fatal(err)
	}
	want := "A=one\nB=two\nDB_PASS='p w'\nDB_USER=app\n"
	if string(b) != want {
		t.Errorf("got\n%s\nwant\n%s", b, want)
	}
}

func TestFormatErrors(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-value"
	secrets := resolved(map[string]string{"A": secret, "NUL": "x\x00" + secret, "BAD": "\xff" + secret})
	secrets["W"] = whole(map[string]string{"bad-key": secret, "A": secret})
	tests := []struct {
		name   string
		format Format
		names  []string
		want   string
	}{
		{"missing one", FormatDotenv, []string{"A", "X"}, `secret "X" not resolved`},
		{"missing two", FormatJSON, []string{"X", "A", "Y"}, `secrets "X", "Y" not resolved`},
		{"bad key", FormatDotenv, []string{"W"}, `key "bad-key" (field of secret "W"): not a valid environment variable name`},
		{"nul", FormatDotenv, []string{"NUL"}, `key "NUL": value contains a NUL byte`},
		{"duplicate", FormatYAML, []string{"A", "W"}, `key "A" comes from both secret`},
		{"invalid utf8 json", FormatJSON, []string{"BAD"}, `key "BAD": value is not valid UTF-8`},
		{"invalid utf8 yaml", FormatYAML, []string{"BAD"}, `key "BAD": value is not valid UTF-8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := build(File{Format: tt.format, Secrets: tt.names}, secrets)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			assertNoLeak(t, err, secret)
		})
	}
}

func TestRaw(t *testing.T) {
	t.Parallel()
	bin := []byte{0, 1, 2, 0xff, '\n', 0xfe, 0}
	secrets := map[string]providers.Resolved{"BIN": {Value: providers.NewValue(bin)}}
	b, err := buildRaw("BIN", secrets)
	if err != nil || !bytes.Equal(b, bin) {
		t.Fatalf("raw = %v, %v", b, err)
	}
	if _, err := buildRaw("NOPE", secrets); err == nil || err.Error() != `secret "NOPE" not resolved` {
		t.Errorf("err = %v", err)
	}
}

// trickyStrings are values that a YAML or JSON reader could take for
// something other than a string, or alter.
var trickyStrings = []string{
	"", "true", "false", "yes", "no", "on", "off", "y", "n", "True", "NULL", "null", "~",
	"0", "007", "1e3", "0x1F", "0o17", "0b101", "1_000", "1:20", ".inf", "-.Inf", ".nan", "3.14",
	"2001-12-14", "2001-12-14t21:59:43.10-05:00", "=", "<<", "- item", "key: value", "#comment",
	"[a, b]", "{a: b}", "&anchor", "*alias", "!tag", "%percent", "@at", "`tick", "|", ">",
	"'single'", `"double"`, "  leading", "trailing  ", "multi\nline\n", "multi\nline", "trailing\n\n",
	"\ttab", "line\n  indented\n", "unicode ✓", "back\\slash", "<html>&amp;",
}

func TestJSONRoundTrip(t *testing.T) {
	t.Parallel()
	kv := map[string]string{}
	var names []string
	for i, v := range trickyStrings {
		name := fmt.Sprintf("K%02d", i)
		kv[name] = v
		names = append(names, name)
	}
	b, err := buildJSON(names, resolved(kv))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(b, []byte("}\n")) {
		t.Errorf("no trailing newline")
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for name, want := range kv {
		if s, ok := got[name].(string); !ok || s != want {
			t.Errorf("%s = %#v, want %q", name, got[name], want)
		}
	}
	// Keys in sorted order, stable across runs.
	b2, _ := buildJSON(names, resolved(kv))
	if !bytes.Equal(b, b2) || bytes.Index(b, []byte(`"K00"`)) > bytes.Index(b, []byte(`"K01"`)) {
		t.Errorf("output not stable or not sorted")
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	t.Parallel()
	kv := map[string]string{}
	var names []string
	for i, v := range trickyStrings {
		name := fmt.Sprintf("K%02d", i)
		kv[name] = v
		names = append(names, name)
	}
	b, err := buildYAML(names, resolved(kv))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := yaml.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	for name, want := range kv {
		if s, ok := got[name].(string); !ok || s != want {
			t.Errorf("yaml.v3: %s = %#v, want %q", name, got[name], want)
		}
	}

	// A YAML 1.1 reader (PyYAML) must read the same strings.
	py, err := exec.LookPath("python3")
	if err != nil || exec.Command(py, "-c", "import yaml").Run() != nil {
		t.Skip("PyYAML not available: the YAML 1.1 read-back is not checked (the yaml.v3 read-back above was)")
	}
	path := filepath.Join(t.TempDir(), "s.yaml")
	writeRaw(t, path, string(b))
	out, err := exec.Command(py, "-c", `import sys, json, yaml
d = yaml.safe_load(open(sys.argv[1]))
print(json.dumps({k: (v if isinstance(v, str) else ["NOT A STRING", repr(v)]) for k, v in d.items()}))`, path).Output()
	if err != nil {
		t.Fatalf("PyYAML: %v", err)
	}
	var py11 map[string]any
	if err := json.Unmarshal(out, &py11); err != nil {
		t.Fatal(err)
	}
	for name, want := range kv {
		if s, ok := py11[name].(string); !ok || s != want {
			t.Errorf("PyYAML: %s = %#v, want %q", name, py11[name], want)
		}
	}
}
