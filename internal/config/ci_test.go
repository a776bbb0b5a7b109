package config

import (
	"path/filepath"
	"slices"
	"testing"
)

func TestCISection(t *testing.T) {
	t.Parallel()
	const base = "version: 1\nsecrets:\n  A: vault://a#b\n  B: vault://a#c\n"
	dir := t.TempDir()
	path := filepath.Join(dir, "keyward.yaml")

	c, err := Parse([]byte(base+"ci:\n  outputs: [A, B]\n  dotenv: out/ci.env\n"), path)
	if err != nil {
		t.Fatal(err)
	}
	if c.CI == nil || !slices.Equal(c.CI.Outputs, []string{"A", "B"}) || c.CI.Dotenv != filepath.Join(dir, "out", "ci.env") || c.CI.Line != 6 {
		t.Fatalf("ci = %+v", c.CI)
	}
	if c, err := Parse([]byte(base), path); err != nil || c.CI != nil {
		t.Fatalf("without ci: %+v, %v", c.CI, err)
	}
	if c, err := Parse([]byte(base+"ci:\n  dotenv: /abs/ci.env\n"), path); err != nil || c.CI.Dotenv != "/abs/ci.env" {
		t.Fatalf("absolute dotenv: %+v, %v", c.CI, err)
	}

	cases := map[string]struct {
		src  string
		want []want
	}{
		"unknown output": {base + "ci:\n  outputs: [C]\n", []want{{6, `unknown secret "C"`}}},
		"duplicate":      {base + "ci:\n  outputs: [A, A]\n", []want{{6, `"A" listed twice`}}},
		"unknown key":    {base + "ci:\n  output: [A]\n", []want{{6, "output"}}},
		"dotenv dir":     {base + "ci:\n  dotenv: out/\n", []want{{6, "not a directory"}}},
		"dotenv clash":   {base + "files:\n  - path: app.env\n    secrets: [A]\nci:\n  dotenv: app.env\n", []want{{9, "also written by files[0]"}}},
		"not a list":     {base + "ci:\n  outputs: A\n", []want{{6, "list"}}},
	}
	sch := compileSchema(t)
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(c.src), path)
			checkProblems(t, err, c.want)
			if name != "unknown output" && name != "dotenv clash" { // semantic checks the schema cannot make
				if validateSchema(t, sch, []byte(c.src)) == nil {
					t.Errorf("schema accepts it")
				}
			}
		})
	}
	if err := validateSchema(t, sch, []byte(base+"ci:\n  outputs: [A]\n  dotenv: ci.env\n")); err != nil {
		t.Errorf("schema rejects a valid ci section: %v", err)
	}
}
