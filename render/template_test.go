package render

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/keyward/keyward/internal/readfile"
)

func TestTemplate(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t<&>\"pw"
	secrets := resolved(map[string]string{"DB_PASSWORD": secret, "USER": "app"})
	tests := []struct {
		name, text, want string
	}{
		{"secret", `password = {{ secret "DB_PASSWORD" }}`, "password = " + secret},
		{"base64", `{{ secret "USER" | base64 }}`, "YXBw"},
		{"json", `{"p": {{ secret "DB_PASSWORD" | json }}}`, `{"p": "s3cr3t<&>\"pw"}`},
		{"control flow", "{{ if eq (secret \"USER\") \"app\" }}yes{{ end }}\n", "yes\n"},
		{"no secrets", "static\n", "static\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := buildTemplate(tt.text, secrets)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("got %q, want %q", b, tt.want)
			}
		})
	}
}

func TestTemplateErrors(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-pw"
	secrets := resolved(map[string]string{"A": secret, "N": "12345"})
	tests := []struct {
		name, text, want string
	}{
		{"missing literal names, all listed", "a\n{{ secret \"X\" }}\n{{ if false }}{{ secret \"Y\" }}{{ end }}",
			`line 2: secret "X" not resolved, line 3: secret "Y" not resolved`},
		{"missing computed name", `{{ secret (printf "%s" "Z") }}`, `line 1: secret "Z" not resolved`},
		{"dot is empty", "\n{{ .A }}", `line 2: the template's dot holds nothing; write {{ secret "NAME" }} to use a secret`},
		{"parse error", "ok\n{{ secret \"A\" ", "line 2: unclosed action"},
		{"unknown function", `{{ env "HOME" }}`, `line 1: function "env" not defined`},
		{"range over a value", `{{ range secret "A" }}{{ end }}`, "line 1: "},
		{"index out of range", `{{ index (secret "A") 99 }}`, "line 1: at <index (secret \"A\") 99>: error calling index: index out of range: 99"},
		{"compare to number", `{{ if lt (secret "N") 5 }}{{ end }}`, "line 1: "},
		{"field of a string", `{{ (secret "A").Foo }}`, "line 1: "},
		{"call a string", `{{ call (secret "A") }}`, "line 1: "},
		{"computed name holds a value", `{{ printf "%d" (secret "A") | secret }}`, "line 1: computed secret name not resolved (name withheld"},
		{"computed name is part of a value", `{{ slice (secret "A") 0 4 | secret }}`, "line 1: computed secret name not resolved (name withheld"},
		{"computed name is a value's hex", `{{ secret "A" | printf "%x" | secret }}`, "line 1: computed secret name not resolved (name withheld"},
		{"computed name holds a slice of a value", `{{ printf "x%sy" (slice (secret "A") 2 8) | secret }}`, "line 1: computed secret name not resolved (name withheld"},
		{"computed name built from literals", `{{ secret (printf "%s_%s" "DB" "X") }}`, "line 1: computed secret name not resolved (name withheld"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := buildTemplate(tt.text, secrets)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			assertNoLeak(t, err, secret, "12345", secret[:4], hex.EncodeToString([]byte(secret))[:8], secret[2:8])
			t.Logf("%v", err)
		})
	}
}

func TestTemplateFileAndSecretNames(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tf := filepath.Join(dir, "config.ini.tmpl")
	writeRaw(t, tf, "user = {{ secret \"USER\" }}\n{{ define \"x\" }}{{ secret \"PW\" | base64 }}{{ end }}{{ template \"x\" }}\n{{ secret \"USER\" }}")
	f := File{Path: filepath.Join(dir, "out", "config.ini"), Format: FormatTemplate, TemplateFile: tf, UID: -1, GID: -1}
	names, err := f.SecretNames()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"PW", "USER"}) {
		t.Errorf("SecretNames = %v", names)
	}
	contents, err := Build([]File{f}, resolved(map[string]string{"USER": "app", "PW": "pw"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(contents[0]); got != "user = app\ncHc=\napp" {
		t.Errorf("got %q", got)
	}

	f.TemplateFile = filepath.Join(dir, "missing.tmpl")
	_, err = Build([]File{f}, nil)
	want := "render " + f.Path + " (template): read template " + f.TemplateFile + ": no such file or directory"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}

	// A FIFO where the template should be (no writer ever connects) is
	// an error naming it, not a read that blocks forever.
	f.TemplateFile = filepath.Join(dir, "fifo.tmpl")
	if err := syscall.Mkfifo(f.TemplateFile, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Build([]File{f}, nil)
	if !errors.Is(err, readfile.ErrNotRegular) || !strings.Contains(err.Error(), "read template "+f.TemplateFile+": ") {
		t.Errorf("err = %v, want read template %s: ... not a regular file", err, f.TemplateFile)
	}
}

// TestTemplateComputedNamesNeverEcho: a name computed from a secret value,
// by any of the template's functions, never appears in the error of an
// unresolved secret: nothing of the error but its fixed words and the
// template's own source comes from anywhere.
func TestTemplateComputedNamesNeverEcho(t *testing.T) {
	t.Parallel()
	transforms := []string{
		`secret "A" | printf "%x"`, `secret "A" | printf "%X"`, `secret "A" | printf "%q"`,
		`secret "A" | printf "%v"`, `secret "A" | printf "%s!"`, `printf "x%sy" (slice (secret "A") 2 9)`,
		`slice (secret "A") 1`, `secret "A" | base64`, `secret "A" | json`, `secret "A" | html`,
		`secret "A" | urlquery`, `secret "A" | js`, `secret "A" | print`, `index (secret "A") 3 | printf "%c%c%c%c" 1 2 3`,
		`secret "A" | len | printf "n%d"`, `printf "%s%s" (secret "A") (secret "A")`, `secret "A" | printf "%08b"`,
	}
	r := rand.New(rand.NewPCG(4, 40))
	const alphabet = "QZXJKVWqzxjkvw0123456789"
	fixed := "line 1: computed secret name not resolved (name withheld: only names written in the template are shown)"
	for i := range 200 {
		value := string(randString(r, alphabet, 12+r.IntN(30)))
		tr := transforms[i%len(transforms)]
		text := fmt.Sprintf("{{ %s | secret }}", tr)
		_, err := buildTemplate(text, resolved(map[string]string{"A": value}))
		if err == nil {
			t.Fatalf("%s: no error for an unresolved computed name", tr)
		}
		if err.Error() != fixed {
			t.Fatalf("%s: the error is not the fixed message withholding the name (not printed: it may carry a form of A's value)", tr)
		}
	}
}

func randString(r *rand.Rand, alphabet string, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return b
}

// TestTemplateSecrets: the one reading of a template's secret names, which
// config validation, a file's dependencies and the check before running a
// template share. A name piped into secret as a literal is spelled out as
// much as one given as its argument.
func TestTemplateSecrets(t *testing.T) {
	t.Parallel()
	lit := func(name string, line int) SecretUse { return SecretUse{Name: name, Line: line} }
	dyn := func(line int) SecretUse { return SecretUse{Line: line, Dynamic: true} }
	tests := []struct {
		text string
		want []SecretUse
	}{
		{`{{ secret "A" }}`, []SecretUse{lit("A", 1)}},
		{`{{ "A" | secret }}`, []SecretUse{lit("A", 1)}},
		{"x\n{{ if true }}{{ \"B\" | secret | base64 }}{{ end }}", []SecretUse{lit("B", 2)}},
		{`{{ $n := "A" | secret }}{{ $n }}`, []SecretUse{lit("A", 1)}},
		{`{{ secret "A" | secret }}`, []SecretUse{lit("A", 1), dyn(1)}},
		{`{{ "A" | print | secret }}`, []SecretUse{dyn(1)}},
		{`{{ secret (printf "%s" "A") }}`, []SecretUse{dyn(1)}},
		{`{{ with $x := "A" }}{{ secret $x }}{{ end }}`, []SecretUse{dyn(1)}},
		{"{{ define \"d\" }}{{ secret \"D\" }}{{ end }}\n{{ template \"d\" }}{{ secret \"E\" }}", []SecretUse{lit("D", 1), lit("E", 2)}},
		{"static", nil},
	}
	for _, tt := range tests {
		got, err := TemplateSecrets(tt.text)
		if err != nil {
			t.Errorf("TemplateSecrets(%q): %v", tt.text, err)
			continue
		}
		slices.SortStableFunc(got, func(a, b SecretUse) int { return strings.Compare(a.Name, b.Name) })
		want := slices.Clone(tt.want)
		slices.SortStableFunc(want, func(a, b SecretUse) int { return strings.Compare(a.Name, b.Name) })
		if !slices.Equal(got, want) {
			t.Errorf("TemplateSecrets(%q) = %+v, want %+v", tt.text, got, want)
		}
	}
}

// TestTemplateParseError: a parse error says the line, and for an
// unclosed action the line it started at, never text/template's internal
// template name.
func TestTemplateParseError(t *testing.T) {
	t.Parallel()
	_, err := TemplateSecrets("one\n{{ secret \"A\" \n")
	var te *TemplateError
	if !errors.As(err, &te) {
		t.Fatalf("error %v is not a *TemplateError", err)
	}
	if te.Line != 3 || te.Start != 2 || te.Reason != "unclosed action" {
		t.Errorf("TemplateError = %+v, want line 3, start 2, reason unclosed action", *te)
	}
	if got, want := err.Error(), "line 3: unclosed action started at line 2"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
