package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/testenv"
)

// TestGetByName checks that keyward get reads a secret declared in the
// config by its name, that a reference still works beside it, and that
// each mistake is a one-line error saying what is missing, never a value.
func TestGetByName(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const pw, token = "get-by-name-pw-4f7a", "get-by-name-token-9c2e"
	testenv.WriteFile(t, filepath.Join(dir, "dev.yaml"), "db:\n  password: "+pw+"\napi: "+token+"\n")
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), "version: 1\nsecrets:\n  DB_PASSWORD: file:dev.yaml#db.password\n  API_TOKEN: file:dev.yaml#api\n  BROKEN: file:dev.yaml#db.user\n")
	cfg := []string{"KEYWARD_CONFIG=keyward.yaml"}
	tests := []struct {
		name   string
		env    []string
		args   []string
		code   int
		stdout string
		stderr []string // each in stderr
	}{
		{name: "name", args: []string{"get", "-c", "keyward.yaml", "DB_PASSWORD"}, stdout: pw},
		{name: "name, config from the environment", env: cfg, args: []string{"get", "API_TOKEN"}, stdout: token},
		{name: "name with -n", args: []string{"get", "-c", "keyward.yaml", "-n", "API_TOKEN"}, stdout: token + "\n"},
		{name: "reference beside a config", args: []string{"get", "-c", "keyward.yaml", "file:dev.yaml#api"}, stdout: token},
		{name: "reference without a config", args: []string{"get", "file:dev.yaml#db.password"}, stdout: pw},
		{name: "misspelt name", args: []string{"get", "-c", "keyward.yaml", "DB_PASWORD"}, code: exitUsage,
			stderr: []string{`no secret "DB_PASWORD"`, "keyward.yaml", `did you mean "DB_PASSWORD"?`}},
		{name: "name without a config", args: []string{"get", "DB_PASSWORD"}, code: exitUsage,
			stderr: []string{`"DB_PASSWORD" is not a reference`, "-c FILE"}},
		{name: "name whose reference fails", env: cfg, args: []string{"get", "BROKEN"}, code: exitRuntime,
			stderr: []string{"BROKEN", "file:dev.yaml#db.user", `field "db.user" not found`}},
		{name: "reference that fails", args: []string{"get", "file:dev.yaml#nope"}, code: exitRuntime,
			stderr: []string{"file:dev.yaml#nope:", `field "nope" not found`}},
		{name: "two arguments", env: cfg, args: []string{"get", "DB_PASSWORD", "API_TOKEN"}, code: exitUsage,
			stderr: []string{"exactly one"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := keyward(t, dir, tt.env, tt.args...)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d: %s", r.code, tt.code, r.stderr)
			}
			if r.stdout != tt.stdout {
				t.Errorf("stdout has %d bytes, want %d", len(r.stdout), len(tt.stdout))
			}
			for _, want := range tt.stderr {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr %q lacks %q", r.stderr, want)
				}
			}
			if tt.code != 0 {
				if strings.Count(strings.TrimSuffix(r.stderr, "\n"), "\n") != 0 {
					t.Errorf("error is not one line: %q", r.stderr)
				}
				if strings.Contains(r.stderr, pw) || strings.Contains(r.stderr, token) {
					t.Errorf("leaked value of a secret in the error")
				}
			}
		})
	}
}
