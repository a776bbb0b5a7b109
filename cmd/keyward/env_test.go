package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/testenv"
)

// TestEnvOnlyMeantReferences runs keyward exec with environment values that
// are, or look like, references, and checks which ones the child gets
// resolved, the exit code, and that no output of keyward holds the value or
// a part of it (issue: a SQLite DSN was printed whole, and file:test.db was
// replaced by the file's content).
func TestEnvOnlyMeantReferences(t *testing.T) {
	t.Parallel()
	const dsn = "file:app.db?_auth=1&_auth_user=admin&_auth_pass=S3cretPassw0rd"
	// secretParts are pieces of the values below that must never appear in
	// keyward's own output.
	secretParts := []string{"S3cretPassw0rd", "_auth", "app.db", "test.db", "db-5ecret", "sqlite-content"}
	tests := []struct {
		name   string
		val    string // the value of DB
		args   []string
		config string // keyward.yaml, or "" for none
		code   int
		child  string   // what the child gets in DB (code 0)
		stderr []string // substrings keyward's stderr must hold
		noWarn bool     // stderr must be empty
	}{
		{name: "sqlite dsn", val: dsn, child: dsn, noWarn: true},
		{name: "file uri of an existing file", val: "file:test.db", child: "file:test.db", noWarn: true},
		{name: "host and port named vault", val: "vault:8200", child: "vault:8200", noWarn: true},
		{name: "file reference without the flag", val: "file:dev.yaml#db-5ecret", child: "file:dev.yaml#db-5ecret", stderr: []string{"variable=DB", "--env-file-refs"}},
		{name: "file reference with the flag", val: "file:dev.yaml#pw", args: []string{"--env-file-refs"}, child: "hunter2-db-password"},
		{name: "file reference with the config key", val: "file:dev.yaml#pw", config: "version: 1\nenv_file_refs: true\n", child: "hunter2-db-password"},
		{name: "sqlite dsn with the flag", val: dsn, args: []string{"--env-file-refs"}, code: 78, stderr: []string{"environment: DB: invalid file reference"}},
		{name: "near miss", val: "vualt://secret/db-5ecret#pw", child: "vualt://secret/db-5ecret#pw", stderr: []string{"variable=DB", "closest scheme: vault://"}},
		{name: "near miss, single slash", val: "gcpsm:/p/db-5ecret", child: "gcpsm:/p/db-5ecret", stderr: []string{"variable=DB", "closest scheme: gcpsm://"}},
		{name: "meant reference that does not parse", val: "vault://secret/db?version=#S3cretPassw0rd", code: 78, stderr: []string{"environment: DB: vault reference: invalid reference at position 27"}},
		{name: "meant reference the provider refuses", val: "vault://secret/db?_auth_pass=S3cretPassw0rd#pw", code: 78, stderr: []string{"environment: DB: invalid vault reference"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			testenv.WriteFile(t, filepath.Join(dir, "dev.yaml"), "pw: hunter2-db-password\n")
			testenv.WriteFile(t, filepath.Join(dir, "test.db"), "sqlite-content")
			testenv.WriteFile(t, filepath.Join(dir, "app.db"), "sqlite-content")
			args := append([]string{"--log-level", "debug", "exec"}, tt.args...)
			if tt.config != "" {
				testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), tt.config)
				args = append(args, "-c", "keyward.yaml")
			}
			args = append(args, "--", "sh", "-c", `printf %s "$DB" >child.out`)
			r := keyward(t, dir, []string{"DB=" + tt.val}, args...)
			for _, p := range secretParts {
				if strings.Contains(r.stdout+r.stderr, p) {
					t.Errorf("leaked value of DB (a part of it is in keyward's output)")
				}
			}
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %q", r.code, tt.code, redactParts(r.stderr, secretParts))
			}
			for _, w := range tt.stderr {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q does not hold %q", redactParts(r.stderr, secretParts), w)
				}
			}
			if tt.noWarn && strings.Contains(r.stderr, "level=WARN") {
				t.Errorf("stderr has a warning: %q", redactParts(r.stderr, secretParts))
			}
			if tt.code != 0 {
				if _, err := os.Stat(filepath.Join(dir, "child.out")); err == nil {
					t.Errorf("the child ran although keyward failed")
				}
				return
			}
			if got := testenv.ReadFile(t, filepath.Join(dir, "child.out")); got != tt.child {
				t.Errorf("child got a different DB than expected (length %d, want %d)", len(got), len(tt.child))
			}
		})
	}
}

// redactParts replaces each part in s, so a failure message shows the
// output without the values.
func redactParts(s string, parts []string) string {
	for _, p := range parts {
		s = strings.ReplaceAll(s, p, "[REDACTED]")
	}
	return s
}
