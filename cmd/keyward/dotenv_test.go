package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/testenv"
)

// TestDotenvDialect: the dialect key reaches the renderer, and a value the
// named reader cannot hold fails the render naming the secret, never the
// value, with nothing written.
func TestDotenvDialect(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const multi = "first-line-of-a-secret\nsecond-line"
	testenv.WriteFile(t, filepath.Join(dir, "src.yaml"), "multi: \""+strings.ReplaceAll(multi, "\n", `\n`)+"\"\nplain: 'it''s here'\n")
	cfg := func(dialect string) string {
		return "version: 1\nsecrets:\n  MULTI: file:src.yaml#multi\n  PLAIN: file:src.yaml#plain\nfiles:\n  - path: out/app.env\n    secrets: [MULTI, PLAIN]\n    dialect: " + dialect + "\n"
	}
	testenv.WriteFile(t, filepath.Join(dir, "docker.yaml"), cfg("docker"))
	r := keyward(t, dir, nil, "render", "--once", "-c", "docker.yaml")
	if r.code != 1 || !strings.Contains(r.stderr, `key "MULTI": value contains a newline, and docker reads one line per variable`) {
		t.Errorf("docker: exit %d, stderr %q", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "first-line-of-a-secret") {
		t.Errorf("the error leaked the value of MULTI")
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "app.env")); err == nil {
		t.Errorf("file written although a value was refused")
	}

	testenv.WriteFile(t, filepath.Join(dir, "node.yaml"), cfg("node"))
	if r := keyward(t, dir, nil, "render", "--once", "-c", "node.yaml"); r.code != 0 {
		t.Fatalf("node: exit %d: %s", r.code, r.stderr)
	}
	want := "MULTI='first-line-of-a-secret\nsecond-line'\nPLAIN=it's here\n"
	if got := testenv.ReadFile(t, filepath.Join(dir, "out", "app.env")); got != want {
		t.Errorf("node dialect file %q, want %q", got, want)
	}
}
