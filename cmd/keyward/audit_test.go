package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/testenv"
)

// randomAlnum returns n random letters and digits: credentials are made at
// test time, never kept in the repository.
func randomAlnum(t *testing.T, n int) string {
	t.Helper()
	const set = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = set[int(b[i])%len(set)]
	}
	return string(b)
}

// TestAudit runs keyward audit over a source tree: it exits 0 on the
// clean tree; with credentials planted it names each (file, line, rule,
// tail; a configured secret by name), exits 1 and prints no value, in
// text or SARIF; the allow-list silences what it names.
func TestAudit(t *testing.T) {
	t.Parallel()
	dir, _ := fixture(t)
	src := filepath.Join(dir, "src")
	testenv.WriteFile(t, filepath.Join(src, "main.go"), "package main\n\nfunc main() { println(\"hello\") }\n")
	testenv.WriteFile(t, filepath.Join(dir, ".gitignore"), "out/\n")

	r := keyward(t, dir, nil, "audit", "src")
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("clean tree: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	pat := "ghp_" + randomAlnum(t, 36)
	pw := randomAlnum(t, 16)
	testenv.WriteFile(t, filepath.Join(src, "client.go"), fmt.Sprintf("package main\n\nconst token = %q\nconst dsn = \"postgres://app:%s@db:5432/app\"\n", pat, pw))
	testenv.WriteFile(t, filepath.Join(src, "billing.go"), "package main\n\n// the live key\nconst key = \"sk_live_4eC39HqLyjWDarjtT1zdp7dc\"\n")
	leaked := []string{pat, pw}

	noValue := func(r result) {
		t.Helper()
		assertClean(t, r)
		for _, v := range leaked {
			if strings.Contains(r.stdout+r.stderr, v[len(v)-5:]) {
				t.Fatalf("leaked value of a planted credential, or more than its last 4 characters")
			}
		}
	}
	r = keyward(t, dir, nil, "audit", "-c", "keyward.yaml", "src")
	noValue(r)
	want := fmt.Sprintf("src/billing.go:4: secret:STRIPE_KEY (value of secret STRIPE_KEY, raw)\n"+
		"src/client.go:3: github-pat (…%s)\n"+
		"src/client.go:4: url-password (…%s)\n", pat[len(pat)-4:], pw[len(pw)-4:])
	if r.code != 1 || r.stdout != want {
		t.Fatalf("planted: exit %d, stdout:\n%s\nwant:\n%s\nstderr: %s", r.code, r.stdout, want, r.stderr)
	}
	if !strings.Contains(r.stderr, "keyward: found 3 credentials in files") {
		t.Errorf("stderr %q", r.stderr)
	}
	// Without the config, the Stripe key is found by its rule.
	r = keyward(t, dir, nil, "audit", "src")
	noValue(r)
	if r.code != 1 || !strings.Contains(r.stdout, "src/billing.go:4: stripe-access-token (…p7dc)\n") {
		t.Errorf("without config: exit %d, stdout %q", r.code, r.stdout)
	}

	r = keyward(t, dir, nil, "audit", "-c", "keyward.yaml", "--format", "sarif", "src")
	noValue(r)
	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Results []struct {
				RuleID string `json:"ruleId"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &log); err != nil || r.code != 1 || log.Version != "2.1.0" || len(log.Runs) != 1 || len(log.Runs[0].Results) != 3 {
		t.Fatalf("sarif: exit %d, parse error %v, log %+v", r.code, err, log)
	}

	testenv.WriteFile(t, filepath.Join(src, ".keyward-audit-allow"), "client.go -- revoked test fixtures\nbilling.go secret:STRIPE_KEY -- Stripe's documented test key\n")
	r = keyward(t, dir, nil, "audit", "-c", "keyward.yaml", "src")
	noValue(r)
	if r.code != 0 || r.stdout != "" {
		t.Errorf("allow-listed: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	testenv.WriteFile(t, filepath.Join(src, ".keyward-audit-allow"), "client.go\n")
	r = keyward(t, dir, nil, "audit", "src")
	checkFailure(t, r, 78, []string{".keyward-audit-allow:1: entry without a reason"})
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"audit"}, 2},
		{[]string{"audit", "--format", "xml", "src"}, 2},
		{[]string{"audit", "--max-size", "lots", "src"}, 2},
	} {
		checkFailure(t, keyward(t, dir, nil, c.args...), c.code, nil)
	}
}
