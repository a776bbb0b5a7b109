package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/testenv"
)

// TestEnvExample: the variables exec hands over, in the config's order,
// with their references and no values; written with -o, then --check
// passes until the config changes, and names what changed. No store is
// contacted: the Vault of the config does not exist.
func TestEnvExample(t *testing.T) {
	t.Parallel()
	dir, _ := fixture(t)
	cfg := strings.Replace(fixtureConfig, "env:\n  DATABASE_PASSWORD: DB_PASSWORD\n",
		"env:\n  ZED_TOKEN: PARTNER_ID\n  DATABASE_PASSWORD: DB_PASSWORD\n  APP_DB_KEY: VAULT_PW\n", 1)
	cfg = strings.Replace(cfg, "secrets:\n", "providers:\n  vault:\n    kind: vault\n    address: http://127.0.0.1:1\nsecrets:\n  VAULT_PW: vault://secret/app#password\n", 1)
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), cfg)

	r := keyward(t, dir, nil, "env-example", "-c", "keyward.yaml")
	assertClean(t, r)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var names []string
	for _, line := range strings.Split(r.stdout, "\n") {
		if name, val, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			names = append(names, name)
			if val != "" {
				t.Errorf("%s has a value", name)
			}
		}
	}
	if got := strings.Join(names, " "); got != "ZED_TOKEN DATABASE_PASSWORD APP_DB_KEY" {
		t.Errorf("variables %q, want the config's order ZED_TOKEN DATABASE_PASSWORD APP_DB_KEY", got)
	}
	for _, want := range []string{"# secret PARTNER_ID: file:dev.yaml#partner.client_id\nZED_TOKEN=\n", "# secret VAULT_PW: vault://secret/app#password\nAPP_DB_KEY=\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}

	r = keyward(t, dir, nil, "env-example", "-c", "keyward.yaml", "--check")
	checkFailure(t, r, 1, []string{".env.example does not exist"})
	r = keyward(t, dir, nil, "env-example", "-c", "keyward.yaml", "-o", ".env.example")
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("-o: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := keyward(t, dir, nil, "env-example", "-c", "keyward.yaml", "--check"); r.code != 0 {
		t.Fatalf("--check after -o: exit %d: %s", r.code, r.stderr)
	}

	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), strings.Replace(cfg, "  APP_DB_KEY: VAULT_PW\n", "  APP_DB_PASSWORD: VAULT_PW\n", 1))
	r = keyward(t, dir, nil, "env-example", "-c", "keyward.yaml", "--check")
	checkFailure(t, r, 1, []string{".env.example is out of date (missing APP_DB_PASSWORD; not handed over by the config: APP_DB_KEY)"})

	// Without env:, every secret under its own name, as exec hands them.
	testenv.WriteFile(t, filepath.Join(dir, "plain.yaml"), "version: 1\nsecrets:\n  B_SECRET: file:dev.yaml#db.user\n  A_SECRET: file:dev.yaml#db.password\n")
	r = keyward(t, dir, nil, "env-example", "-c", "plain.yaml")
	if r.code != 0 || !strings.Contains(r.stdout, "# file:dev.yaml#db.user\nB_SECRET=\n\n# file:dev.yaml#db.password\nA_SECRET=\n") {
		t.Errorf("no env: section: exit %d, stdout:\n%s", r.code, r.stdout)
	}
	checkFailure(t, keyward(t, dir, nil, "env-example"), 2, []string{"-c FILE"})
}
