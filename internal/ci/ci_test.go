package ci

import (
	"bytes"
	"crypto/rand"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/keyward/providers"
)

// adversarial values: each tries to end its entry early or to define
// another variable.
var adversarial = map[string]string{
	"EMPTY":     "",
	"NEWLINES":  "line one\nline two\n\nline four\n",
	"HEREDOC":   "x<<EOF\nEVIL=injected\nEOF\n",
	"EQUALS":    "a=b<<c",
	"PREFIX":    delimiterPrefix + "\n" + delimiterPrefix + "0000\nEVIL=1",
	"ADDMASK":   "::add-mask::\n::set-output name=x::y\n",
	"CR":        "carriage\rreturn\r\n\r",
	"TRAILING":  "ends with newline\n",
	"LEADINGNL": "\nEVIL=1",
	"UNICODE":   "pässwörd ✓ \u2028 end",
	"SPACES":    "  padded  ",
}

func vars(m map[string]string) []Var {
	var out []Var
	for _, k := range sortedKeys(m) {
		out = append(out, Var{Name: k, Value: providers.StringValue(m[k])})
	}
	return out
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

func TestGitHubFileRoundTrip(t *testing.T) {
	t.Parallel()
	data, err := FormatGitHubFile(vars(adversarial), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// The runner's file may already hold entries of earlier steps.
	text := "EARLIER=1\n" + string(data)
	got, err := ParseGitHubFile(text)
	if err != nil {
		t.Fatalf("the runner would fail on the file: %v", err)
	}
	want := maps.Clone(adversarial)
	want["EARLIER"] = "1"
	if !maps.Equal(got, want) {
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("extra variable %q", k)
			}
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: read back %d bytes, want %d", k, len(got[k]), len(v))
			}
		}
	}
}

// seqReader yields its blocks one per Read, then fails.
type seqReader struct{ blocks [][]byte }

func (s *seqReader) Read(p []byte) (int, error) {
	if len(s.blocks) == 0 {
		return 0, errors.New("exhausted")
	}
	n := copy(p, s.blocks[0])
	s.blocks = s.blocks[1:]
	return n, nil
}

// TestDelimiterRedrawn: a delimiter that occurs in the value is not used.
func TestDelimiterRedrawn(t *testing.T) {
	t.Parallel()
	first := bytes.Repeat([]byte{0xaa}, 16)
	second := bytes.Repeat([]byte{0xbb}, 16)
	collide := delimiterPrefix + strings.Repeat("aa", 16)
	value := []byte("x\n" + collide + "\nEVIL=1\n")
	d, err := Delimiter(value, &seqReader{blocks: [][]byte{first, second}})
	if err != nil {
		t.Fatal(err)
	}
	if d != delimiterPrefix+strings.Repeat("bb", 16) {
		t.Fatalf("delimiter %q: want the second draw", d)
	}
	data, err := FormatGitHubFile([]Var{{Name: "V", Value: providers.NewValue(value)}}, &seqReader{blocks: [][]byte{first, second}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseGitHubFile(string(data))
	if err != nil || len(got) != 1 || got["V"] != string(value) {
		t.Fatalf("round trip: %d vars, err %v", len(got), err)
	}
	if _, err := Delimiter(value, &seqReader{}); err == nil {
		t.Fatal("no error from a failing random source")
	}
}

func TestFormatGitHubFileRefuses(t *testing.T) {
	t.Parallel()
	for name, v := range map[string]Var{
		"NUL":        {Name: "A", Value: providers.StringValue("s3cr3t\x00hidden")},
		"not UTF-8":  {Name: "A", Value: providers.NewValue([]byte("\xff\xfes3cr3t"))},
		"bad name":   {Name: "A=B", Value: providers.StringValue("s3cr3t")},
		"heredoc":    {Name: "A<<B", Value: providers.StringValue("s3cr3t")},
		"empty name": {Name: "", Value: providers.StringValue("s3cr3t")},
	} {
		_, err := FormatGitHubFile([]Var{v}, rand.Reader)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "hidden") {
			t.Errorf("%s: the error reveals the value", name)
		}
	}
}

// FuzzGitHubFile: any UTF-8 value without NUL reads back exactly, and no
// other variable appears.
func FuzzGitHubFile(f *testing.F) {
	for _, v := range adversarial {
		f.Add(v, "other\nvalue")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if CheckGitHubValue([]byte(a)) != nil || CheckGitHubValue([]byte(b)) != nil {
			return
		}
		want := map[string]string{"A": a, "B": b}
		data, err := FormatGitHubFile(vars(want), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseGitHubFile(string(data))
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, want) {
			t.Fatalf("read back %d variables, not exactly A and B", len(got))
		}
	})
}

// unescapeCommandData is the runner's UnescapeData: %0D, %0A, then %25.
func unescapeCommandData(s string) string {
	s = strings.ReplaceAll(s, "%0D", "\r")
	s = strings.ReplaceAll(s, "%0A", "\n")
	return strings.ReplaceAll(s, "%25", "%")
}

func TestWriteMasks(t *testing.T) {
	t.Parallel()
	values := []providers.Value{
		providers.StringValue("plain-secret"),
		providers.StringValue("pem-begin-line\r\nmiddle-line\nab\rlast-line-x"),
		providers.StringValue("percent%0Aencoded%25"),
		providers.StringValue("{\n  \"private_key\": \"k3y-material\"\n}\n"),
		providers.StringValue("pin1"), // short, but a value of its own
		providers.StringValue("   "),
		providers.StringValue("plain-secret"), // a duplicate
	}
	var out bytes.Buffer
	if err := WriteMasks(&out, values, 6); err != nil {
		t.Fatal(err)
	}
	var masked []string
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		data, ok := strings.CutPrefix(line, "::add-mask::")
		if !ok {
			t.Fatalf("not an add-mask command: %q", line)
		}
		if strings.ContainsAny(data, "\r") {
			t.Fatalf("a command holds a raw carriage return")
		}
		masked = append(masked, unescapeCommandData(data))
	}
	want := []string{
		"plain-secret",
		"pem-begin-line\r\nmiddle-line\nab\rlast-line-x",
		"pem-begin-line", "middle-line", "last-line-x",
		"percent%0Aencoded%25",
		"{\n  \"private_key\": \"k3y-material\"\n}\n", `  "private_key": "k3y-material"`, // not "{" nor "}"
		"pin1",
	}
	if strings.Join(masked, "|") != strings.Join(want, "|") {
		t.Errorf("masks (unescaped) = %q, want %q", masked, want)
	}
	out.Reset()
	if err := WriteMasks(&out, nil, 6); err != nil || out.Len() != 0 {
		t.Errorf("no values: wrote %d bytes, err %v", out.Len(), err)
	}
}

func TestDetect(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env  map[string]string
		want System
	}{
		{map[string]string{"GITHUB_ACTIONS": "true", "CI": "true"}, GitHub},
		{map[string]string{"GITLAB_CI": "true", "CI": "true"}, GitLab},
		{map[string]string{"CI": "true"}, Generic},
		{map[string]string{}, Generic},
		{map[string]string{"GITHUB_ACTIONS": "false"}, Generic},
	} {
		if got := Detect(func(k string) string { return c.env[k] }); got != c.want {
			t.Errorf("%v: %s, want %s", c.env, got, c.want)
		}
	}
	if _, err := ParseSystem("jenkins"); err == nil {
		t.Error("ParseSystem accepts an unknown system")
	}
}

func TestWriteDotenv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "ci.env")
	if err := WriteDotenv(path, vars(map[string]string{"B": "two words", "A": "plain"})); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if string(b) != "A=plain\nB='two words'\n" {
		t.Errorf("content %q", b)
	}
	// Never through a symlink.
	link := filepath.Join(dir, "link.env")
	if err := os.Symlink(filepath.Join(dir, "elsewhere"), link); err != nil {
		t.Fatal(err)
	}
	if err := WriteDotenv(link, vars(map[string]string{"A": "x"})); err == nil {
		t.Error("wrote through a symlink")
	}
}

func TestAppendFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "github_env")
	if err := os.WriteFile(path, []byte("A=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := AppendFile(path, []byte("B=2\n")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != "A=1\nB=2\n" {
		t.Errorf("content %q", b)
	}
}
