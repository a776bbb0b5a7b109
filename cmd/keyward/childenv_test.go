package main

import (
	"bytes"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/ci"
	"github.com/keyward/keyward/internal/testenv"
)

// TestCIAndExecHandOverTheSameVariables checks that keyward ci (into
// $GITHUB_ENV and into a dotenv file), keyward exec and keyward agent --
// COMMAND hand a config's secrets over under the same names: without an
// env: section every secret under its own name, with one exactly its
// entries, with env: {} none. ci used to export every secret and exec none
// for a config without env:, so a script run by exec found nothing.
func TestCIAndExecHandOverTheSameVariables(t *testing.T) {
	t.Parallel()
	values := map[string]string{"DB_PASSWORD": "childenv-db-pw-7Q2x", "API_TOKEN": "childenv-api-Zk93mW1p"}
	const secrets = "version: 1\nsecrets:\n  DB_PASSWORD: file:dev.yaml#db\n  API_TOKEN: file:dev.yaml#api\n"
	tests := []struct {
		name string
		env  string
		want map[string]string
	}{
		{"no env section", "", values},
		{"null env section", "env:\n", values},
		{"env entries", "env:\n  DATABASE_PASSWORD: DB_PASSWORD\n", map[string]string{"DATABASE_PASSWORD": values["DB_PASSWORD"]}},
		{"empty env section", "env: {}\n", map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			testenv.WriteFile(t, filepath.Join(dir, "dev.yaml"), "db: "+values["DB_PASSWORD"]+"\napi: "+values["API_TOKEN"]+"\n")
			testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), secrets+tt.env)

			// keyward ci under GitHub Actions: $GITHUB_ENV.
			envFile := filepath.Join(dir, "github_env")
			testenv.WriteFile(t, envFile, "")
			r := keyward(t, dir, []string{"GITHUB_ACTIONS=true", "GITHUB_ENV=" + envFile}, "ci", "-c", "keyward.yaml")
			if r.code != 0 {
				t.Fatalf("ci (github): exit %d: %s", r.code, r.stderr)
			}
			github, err := ci.ParseGitHubFile(testenv.ReadFile(t, envFile))
			if err != nil {
				t.Fatal(err)
			}
			compareVars(t, "ci $GITHUB_ENV", github, tt.want)

			// keyward ci elsewhere: the dotenv file, read back by bash.
			dotenv := filepath.Join(dir, "ci.env")
			if r := keyward(t, dir, nil, "ci", "-c", "keyward.yaml", "--system", "generic", "--dotenv", dotenv); r.code != 0 {
				t.Fatalf("ci (generic): exit %d: %s", r.code, r.stderr)
			}
			compareVars(t, "ci dotenv", childVars(t, dir, "sh", "-c", `set -a; . ./ci.env; set +a; exec env -0`), tt.want)

			// keyward exec and keyward agent -- COMMAND: the child's environment.
			compareVars(t, "exec", childVars(t, dir, binPath, "exec", "-c", "keyward.yaml", "--", "env", "-0"), tt.want)
			compareVars(t, "agent", childVars(t, dir, binPath, "agent", "-c", "keyward.yaml", "--", "env", "-0"), tt.want)
		})
	}
}

// childVars runs args in dir with only PATH set and returns the variables
// of the NUL-separated environment it prints, without PATH and what a
// shell sets by itself.
func childVars(t *testing.T, dir string, args ...string) map[string]string {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v: %s", filepath.Base(args[0]), err, stderr.String())
	}
	got := map[string]string{}
	for _, kv := range strings.Split(stdout.String(), "\x00") {
		if name, val, ok := strings.Cut(kv, "="); ok {
			got[name] = val
		}
	}
	maps.DeleteFunc(got, func(name, _ string) bool {
		return name == "PATH" || name == "PWD" || name == "SHLVL" || name == "_" || name == "OLDPWD"
	})
	return got
}

// TestExampleDeployScriptUnderExec runs examples/ci/deploy.sh as its
// comment says, through keyward exec --mask with the example's config and
// nothing in the environment: exec hands it every secret of a config
// without env:, and what it prints of them is masked.
func TestExampleDeployScriptUnderExec(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	copyExample(t, work)
	r := keyward(t, work, []string{"CI=true"}, "exec", "--mask", "-c", "examples/ci/keyward.yaml", "--", "./examples/ci/deploy.sh")
	if r.code != 0 {
		t.Fatalf("deploy.sh under keyward exec: exit %d: %s", r.code, r.stderr)
	}
	assertNoValue(t, "deploy.sh's output", r.stdout+r.stderr, exampleSecrets)
	if !strings.Contains(r.stdout, "Bearer ***") {
		t.Errorf("deploy.sh's output is not masked as expected:\n%s", r.stdout)
	}
}
