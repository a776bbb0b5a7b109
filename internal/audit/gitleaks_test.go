package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zricethezav/gitleaks/v8/config"
	"github.com/zricethezav/gitleaks/v8/detect"
	"github.com/zricethezav/gitleaks/v8/sources"
)

// gitleaksDetector is gitleaks' own detector with its default config, as
// its library offers it: a test dependency only (see gen/main.go).
func gitleaksDetector(t *testing.T) *detect.Detector {
	t.Helper()
	d, err := detect.NewDetectorDefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRulesMatchGitleaks: rules_gitleaks.go holds exactly the default
// rules of the gitleaks that go.mod requires. It fails after an update of
// gitleaks until go generate ./internal/audit is run.
func TestRulesMatchGitleaks(t *testing.T) {
	t.Parallel()
	cfg := gitleaksDetector(t).Config
	if len(gitleaksRules) != len(cfg.OrderedRules) {
		t.Fatalf("%d rules, gitleaks has %d: run go generate ./internal/audit", len(gitleaksRules), len(cfg.OrderedRules))
	}
	str := func(r interface{ String() string }) string {
		if r == nil || fmt.Sprint(r) == "<nil>" {
			return ""
		}
		return r.String()
	}
	for i, id := range cfg.OrderedRules {
		want, got := cfg.Rules[id], gitleaksRules[i]
		same := got.ID == want.RuleID && got.Description == want.Description &&
			got.SecretGroup == want.SecretGroup && got.Entropy == want.Entropy &&
			slices.Equal(got.Keywords, want.Keywords) && len(got.Allowlists) == countFileAllowlists(want.Allowlists)
		if want.Regex != nil {
			same = same && got.Regex == want.Regex.String()
		}
		if want.Path != nil {
			same = same && got.Path == str(want.Path)
		}
		if !same {
			t.Errorf("rule %d (%s) differs from gitleaks' %s: run go generate ./internal/audit", i, got.ID, id)
		}
	}
	if len(gitleaksAllowlists) != countFileAllowlists(cfg.Allowlists) {
		t.Errorf("global allowlists differ from gitleaks': run go generate ./internal/audit")
	}
}

func countFileAllowlists(as []*config.Allowlist) int {
	n := 0
	for _, a := range as {
		if len(a.Paths)+len(a.Regexes)+len(a.StopWords) > 0 {
			n++
		}
	}
	return n
}

// TestSameFindingsAsGitleaks runs gitleaks' detector and keyward's engine
// over the same texts (planted credentials, near misses, and this
// repository's own sources, which are full of keywords) and wants the
// same findings: rule, line and secret. keyward searches only near each
// rule's keywords; this is what shows that it misses nothing by it.
func TestSameFindingsAsGitleaks(t *testing.T) {
	t.Parallel()
	g := newGen(t)
	texts := map[string]string{}
	for _, p := range plant(g) {
		if p.rule == "url-password" {
			continue // keyward's own rule
		}
		texts[p.file] += "x\n" + p.text + "\n"
	}
	texts["near/miss.txt"] = strings.Join([]string{
		"api_key = \"\"", "token: ${TOKEN}", "password = 'password'", "AKIA" + g.s(lower, 16),
		"ghp_" + g.s(alnum, 20), "the key is in the vault", "secret:\n  " + g.s(alnum, 30),
		"auth =\n\"" + g.s(alnum, 24) + "\"", "Authorization: Basic " + g.s(alnum, 30),
	}, "\n")
	budget := 400 << 10
	if testing.Short() {
		budget = 50 << 10
	}
	root := filepath.Join("..", "..")
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || budget <= 0 {
			return filepath.SkipDir
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".cache" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if ext := filepath.Ext(p); !d.IsDir() && (ext == ".go" || ext == ".md" || ext == ".yaml" || ext == ".sh") {
			b, err := os.ReadFile(p)
			if err == nil && len(b) < 200<<10 {
				texts[filepath.ToSlash(p)] = string(b)
				budget -= len(b)
			}
		}
		return nil
	})

	d := gitleaksDetector(t)
	rs, err := compileRules(gitleaksRules, gitleaksAllowlists)
	if err != nil {
		t.Fatal(err)
	}
	key := func(rule string, line int, secret string) string {
		return fmt.Sprintf("%s:%d:%x", rule, line, secret)
	}
	total := 0
	for path, text := range texts {
		var want, got []string
		//lint:ignore SA1019 gitleaks' Detect takes no other type before v9
		for _, f := range d.Detect(detect.Fragment(sources.Fragment{Raw: text, FilePath: path, StartLine: 1})) {
			want = append(want, key(f.RuleID, f.StartLine, f.Secret))
		}
		for _, h := range rs.detect(path, text, 1) {
			got = append(got, key(h.rule.id, h.line, h.secret))
		}
		slices.Sort(want)
		slices.Sort(got)
		total += len(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: keyward and gitleaks differ: %s", path, differ(got, want))
		}
	}
	if total < 10 {
		t.Errorf("only %d findings in the corpus: the comparison shows little", total)
	}
	t.Logf("%d texts, %d findings", len(texts), total)
}

// differ names the rule and line of each finding one side has and the
// other lacks; the secrets are not shown.
func differ(got, want []string) string {
	var out []string
	short := func(k string) string { return k[:strings.LastIndexByte(k, ':')] }
	for _, k := range want {
		if !slices.Contains(got, k) {
			out = append(out, "missing "+short(k))
		}
	}
	for _, k := range got {
		if !slices.Contains(want, k) {
			out = append(out, "extra "+short(k))
		}
	}
	return strings.Join(out, ", ")
}
