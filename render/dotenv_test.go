package render

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/keyward/providers"
)

// dotenvCorpus is dotenvValues plus the values that break dotenv readers:
// every quote and escape character at either end, carriage returns, the
// whitespace of each reader's language, comments, expansions, and a line
// longer than docker reads.
var dotenvCorpus = append(slices.Clone(dotenvValues),
	`ends with a backslash and a 'quote'\`,
	`ends with a "double quote"`,
	`ends with 'single'`,
	"x\r", "\r", "\r\n", "a\r\nb", "cr \r and quote ' and dq \" and bt `",
	"${HOME}", "${A:-b}", "$A", "${A:b}", "$", "$(", `\$A`,
	"tab\tend\t", " lead", "trail ", "#", " #c", "a #c", "a#c", "a\t#c",
	"\u00a0nbsp\u00a0", "x\u2028y", "\u2028", "\u0085nel", "x\u0085", "\x1c", "x\x1f", "\ufeffbom",
	`\"`, `"\`, `'"`+"`", "`", "x`y", `\n`, `\r`, `a\`, `a\\`, `\`, `\\`,
	"\xff\xfe not UTF-8",
	"a very long line: "+strings.Repeat("x", 70<<10),
)

// dotenvRefusals are the values of dotenvCorpus each dialect cannot hold:
// it must refuse these, and accept and read back exactly every other one.
var dotenvRefusals = map[Dialect][]string{
	DialectBash: nil,
	DialectDocker: {
		"line1\nline2\n", "\nleading newline", "multi\nline with 'quote' and $VAR and \\ and \"dq\"",
		"x\r", "\r", "\r\n", "a\r\nb",
		"\xff\xfe not UTF-8", "a very long line: " + strings.Repeat("x", 70<<10),
	},
	DialectPythonDotenv: {
		"dollar $HOME and ${HOME} and $(id) and $1 and $$", "${HOME}", "${A:-b}",
		`"\`, "\xff\xfe not UTF-8",
	},
	DialectNode: {
		"cr \r and quote ' and dq \" and bt `", `"\`, `'"` + "`", "\xff\xfe not UTF-8",
	},
	DialectGodotenv: {
		"multi\nline with 'quote' and $VAR and \\ and \"dq\"", `"\`,
	},
}

// writeDotenv writes the values of corpus (keys KW_000, KW_001...) that d
// accepts into one file, in key order so that each value is followed by
// the next key (a reader that runs over a value's end loses it), and
// returns the file, the values written by key, and the values refused.
func writeDotenv(t *testing.T, d Dialect, corpus []string) (path string, written map[string]string, refused []string) {
	t.Helper()
	written = map[string]string{}
	secrets := map[string]providers.Resolved{}
	var names []string
	for i, v := range corpus {
		key := fmt.Sprintf("KW_%03d", i)
		_, err := encodeDotenv(d, key, []byte(v))
		if err != nil {
			refused = append(refused, v)
			// The error names the key (buildDotenv adds the secret), never
			// the value.
			_, berr := buildDotenv([]string{key}, map[string]providers.Resolved{key: {Value: providers.StringValue(v)}}, d)
			if berr == nil || !strings.Contains(berr.Error(), `key "`+key+`"`) {
				t.Errorf("%s: refusal of %s does not name it: %v", d, key, berr)
			}
			if len(v) > 3 && strings.Contains(berr.Error(), v) {
				t.Errorf("%s: the refusal of %s leaked its value", d, key)
			}
			continue
		}
		names = append(names, key)
		written[key] = v
		secrets[key] = providers.Resolved{Value: providers.StringValue(v)}
	}
	b, err := buildDotenv(names, secrets, d)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "app.env")
	writeRaw(t, path, string(b))
	return path, written, refused
}

// checkDialect writes dotenvCorpus for d, reads it back with read and
// checks every value written came back exactly and that d refused exactly
// the values of dotenvRefusals.
func checkDialect(t *testing.T, d Dialect, read dotenvReader) {
	t.Helper()
	path, written, refused := writeDotenv(t, d, dotenvCorpus)
	got, err := read(path)
	if err != nil {
		t.Fatalf("%s reader: %v", d, err)
	}
	for key, want := range written {
		if v, ok := got[key]; !ok || v != want {
			b, _ := os.ReadFile(path)
			t.Errorf("%s: %s read back as %q (present %v), want %q; line: %q", d, key, short(v), ok, short(want), short(lineOf(b, key)))
		}
	}
	if want := dotenvRefusals[d]; !slices.Equal(refused, want) {
		t.Errorf("%s refused %q\nwant %q", d, shortAll(refused), shortAll(want))
	}
	t.Logf("%s: %d values read back exactly, %d refused", d, len(written), len(refused))
}

func short(s string) string {
	if len(s) > 60 {
		return s[:60] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

func shortAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = short(v)
	}
	return out
}

func TestDotenvBash(t *testing.T) {
	t.Parallel()
	checkDialect(t, DialectBash, bashReader(t))
	// The default dialect is bash.
	a, _ := encodeDotenv("", "K", []byte("it's $x"))
	b, _ := encodeDotenv(DialectBash, "K", []byte("it's $x"))
	if string(a) != string(b) {
		t.Errorf("default dialect writes %s, bash %s", a, b)
	}
}

func TestDotenvDocker(t *testing.T) {
	t.Parallel()
	checkDialect(t, DialectDocker, dockerReader)
	// The longest value docker reads, and one byte more.
	key := "KW_LONG"
	max := dockerMaxLine - len(key) - 1
	for _, n := range []int{max, max + 1} {
		v := strings.Repeat("x", n)
		enc, err := encodeDotenv(DialectDocker, key, []byte(v))
		path := filepath.Join(t.TempDir(), "long.env")
		writeRaw(t, path, key+"="+v+"\n")
		got, rerr := dockerReader(path)
		if (err == nil) != (rerr == nil && got[key] == v) {
			t.Errorf("%d bytes: keyward %v (%d bytes), docker reads %v", n, err, len(enc), rerr)
		}
	}
}

func TestDotenvPython(t *testing.T) {
	t.Parallel()
	checkDialect(t, DialectPythonDotenv, pythonReader(t))
}

func TestDotenvGodotenv(t *testing.T) {
	t.Parallel()
	checkDialect(t, DialectGodotenv, godotenvReader)
}

// fuzzDialect checks the round trip of one value (followed by a second
// key) through dialect d and its reader: the value read back is the
// value, or d refused it naming its key.
func fuzzDialect(f *testing.F, d Dialect, read dotenvReader) {
	for _, v := range dotenvCorpus {
		if len(v) < 1<<10 {
			f.Add([]byte(v))
		}
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, v []byte) {
		secrets := map[string]providers.Resolved{
			"KW_A": {Value: providers.NewValue(v)},
			"KW_Z": {Value: providers.StringValue("end")},
		}
		b, err := buildDotenv([]string{"KW_A", "KW_Z"}, secrets, d)
		if err != nil {
			if !strings.Contains(err.Error(), `key "KW_A"`) || strings.Contains(err.Error(), "KW_Z") {
				t.Fatalf("refusal does not name only KW_A: %v", err)
			}
			return
		}
		tmp, err := os.CreateTemp(dir, "*.env")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(tmp.Name())
		if _, err := tmp.Write(b); err != nil {
			t.Fatal(err)
		}
		tmp.Close()
		got, err := read(tmp.Name())
		if err != nil {
			t.Fatalf("%s reader: %v; file %q", d, err, b)
		}
		if got["KW_A"] != string(v) || got["KW_Z"] != "end" {
			t.Fatalf("%s read back %q and %q; file %q", d, got["KW_A"], got["KW_Z"], b)
		}
	})
}

func FuzzDotenvBash(f *testing.F)     { fuzzDialect(f, DialectBash, bashReader(f)) }
func FuzzDotenvDocker(f *testing.F)   { fuzzDialect(f, DialectDocker, dockerReader) }
func FuzzDotenvPython(f *testing.F)   { fuzzDialect(f, DialectPythonDotenv, pythonReader(f)) }
func FuzzDotenvGodotenv(f *testing.F) { fuzzDialect(f, DialectGodotenv, godotenvReader) }
func FuzzDotenvNode(f *testing.F)     { fuzzDialect(f, DialectNode, nodeReader(f)) }

func lineOf(b []byte, name string) string {
	i := strings.Index(string(b), name+"=")
	if i < 0 {
		return ""
	}
	return string(b[i:min(len(b), i+80)])
}
