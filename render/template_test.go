package render

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
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
			assertNoLeak(t, err, secret, "12345", secret[:4])
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
}
