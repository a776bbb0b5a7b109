package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/mask"
	"github.com/keyward/keyward/internal/sarif"
)

// gen makes credentials at test time, so that the repository holds none
// (and no push protection trips on it).
type gen struct{ r *rand.Rand }

func newGen(t *testing.T) gen {
	seed := rand.Uint64()
	t.Logf("credential seed %d", seed)
	return gen{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

const (
	upper  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	lower  = "abcdefghijklmnopqrstuvwxyz"
	digits = "0123456789"
	alnum  = upper + lower + digits
)

// s returns n characters from set, with every class of set represented
// often enough to pass the rules' entropy checks.
func (g gen) s(set string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = set[g.r.IntN(len(set))]
	}
	return string(b)
}

// finding returns a value of make for which rule ruleID reports a
// finding, so that a random value always is one: none of the rule's (or
// the global) allowlists excuses it (it holds none of their stopwords and
// matches none of their regexes: an all-letter value is taken for a name)
// and its Shannon entropy is above the rule's minimum (a short random value
// sometimes has less).
func finding(ruleID string, make func() string) string {
	var stop []string
	var allow []*regexp.Regexp
	var minEntropy float64
	for _, r := range gitleaksRules {
		if r.ID == ruleID {
			minEntropy = r.Entropy
			for _, a := range append(r.Allowlists, gitleaksAllowlists...) {
				stop = append(stop, a.StopWords...)
				for _, re := range a.Regexes {
					allow = append(allow, regexp.MustCompile(re))
				}
			}
		}
	}
	entropy := func(v string) float64 {
		count := map[rune]float64{}
		for _, c := range v {
			count[c]++
		}
		var h float64
		for _, k := range count {
			p := k / float64(len(v))
			h -= p * math.Log2(p)
		}
		return h
	}
	for {
		v := make()
		if (minEntropy == 0 || entropy(v) > minEntropy+0.1) &&
			!slices.ContainsFunc(stop, func(w string) bool { return strings.Contains(strings.ToLower(v), w) }) &&
			!slices.ContainsFunc(allow, func(re *regexp.Regexp) bool { return re.MatchString(v) }) {
			return v
		}
	}
}

// generic returns s(set, n) as a generic-api-key finding, starting with a
// letter or digit (a value holding + or / must, for the rule's regex).
func (g gen) generic(set string, n int) string {
	return finding("generic-api-key", func() string {
		for {
			if v := g.s(set, n); strings.IndexByte(alnum, v[0]) >= 0 {
				return v
			}
		}
	})
}

func (g gen) b64url(raw string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// planted is a credential of one kind, written into a file.
type planted struct {
	file, rule, value, text string
	line                    int
}

// plant returns one credential of each kind the issue names, each in the
// context such a credential is usually found in.
func plant(g gen) []planted {
	pem := "-----BEGIN PRIVATE KEY-----\n"
	body := base64.StdEncoding.EncodeToString([]byte(g.s(alnum, 600)))
	for len(body) > 64 {
		pem += body[:64] + "\n"
		body = body[64:]
	}
	pem += body + "\n-----END PRIVATE KEY-----"
	jwt := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + g.b64url(`{"sub":"`+g.s(digits, 10)+`","name":"`+g.s(lower, 12)+`"}`) + "." + g.b64url(g.s(alnum, 32))
	awsID := finding("aws-access-token", func() string { return "AKIA" + g.s("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16) })
	awsSecret := g.generic(alnum+"+/", 40)
	ps := []planted{
		{file: "deploy/aws.env", rule: "aws-access-token", value: awsID, text: "AWS_ACCESS_KEY_ID=" + awsID},
		{file: "deploy/aws.env", rule: "generic-api-key", value: awsSecret, text: "aws_secret_access_key = " + awsSecret},
		{file: "src/github.go", rule: "github-pat", value: "ghp_" + g.s(alnum, 36)},
		{file: "src/ai.py", rule: "openai-api-key", value: "sk-" + g.s(alnum, 20) + "T3BlbkFJ" + g.s(alnum, 20)},
		{file: "src/slack.js", rule: "slack-bot-token", value: "xoxb-" + g.s(digits, 12) + "-" + g.s(digits, 13) + "-" + g.s(alnum, 24)},
		{file: "src/pay.rb", rule: "stripe-access-token", value: "sk_live_" + g.s(alnum, 24)},
		{file: "web/maps.html", rule: "gcp-api-key", value: "AIza" + g.s(alnum+"_-", 35)},
		{file: "keys/id_server", rule: "private-key", value: pem, text: pem},
		{file: "test/auth.txt", rule: "jwt", value: jwt, text: "Authorization: Bearer " + jwt},
		{file: "config/db.yaml", rule: "url-password", value: "Pg" + g.s(alnum, 14), text: ""},
		{file: "config/app.ini", rule: "generic-api-key", value: g.generic(alnum, 18), text: ""},
	}
	for i := range ps {
		p := &ps[i]
		switch {
		case p.rule == "url-password":
			p.text = "url: postgres://app:" + p.value + "@db.internal:5432/app"
		case p.file == "config/app.ini":
			p.text = "password=" + p.value
		case p.text == "":
			p.text = fmt.Sprintf("const credential = %q", p.value)
		}
	}
	return ps
}

// writeTree writes ps below dir, each after a few ordinary lines, and
// sets each one's line.
func writeTree(t *testing.T, dir string, ps []planted) {
	t.Helper()
	content := map[string]string{}
	for i := range ps {
		p := &ps[i]
		c := content[p.file] + "// ordinary code\nfunc f() int { return 1 }\n\n"
		p.line = strings.Count(c, "\n") + 1
		content[p.file] = c + p.text + "\n"
	}
	for f, c := range content {
		write(t, filepath.Join(dir, f), c)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, roots []string, opts Options) *Report {
	t.Helper()
	rep, err := Audit(context.Background(), roots, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Errors) > 0 {
		t.Fatalf("errors: %v", rep.Errors)
	}
	return rep
}

// assertNoValue fails when out holds any planted value, or more of one
// than its last TailLength characters; it never prints the value.
func assertNoValue(t *testing.T, what, out string, ps []planted) {
	t.Helper()
	for _, p := range ps {
		for _, v := range strings.Split(p.value, "\n") {
			if len(v) > TailLength && strings.Contains(out, v[len(v)-TailLength-1:]) {
				t.Errorf("%s: leaked value of %s (%s), or more than its tail", what, p.rule, p.file)
			}
		}
	}
}

// TestPlanted finds a credential of each of eleven kinds, on its line, by
// the right rule, with its tail and never its value, in text and SARIF.
func TestPlanted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ps := plant(newGen(t))
	writeTree(t, dir, ps)
	write(t, filepath.Join(dir, "README.md"), "# app\n\nSet the key in the environment: see docs.\npassword = ${DB_PASSWORD}\n")

	rep := run(t, []string{dir}, Options{})
	var got []string
	for _, f := range rep.Findings {
		got = append(got, fmt.Sprintf("%s:%d:%s:%s", strings.TrimPrefix(f.Path, dir+"/"), f.Line, f.Rule, f.Tail))
	}
	var want []string
	for _, p := range ps {
		want = append(want, fmt.Sprintf("%s:%d:%s:%s", p.file, p.line, p.rule, tail(strings.TrimSpace(p.value))))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("findings (file:line:rule:tail):\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(ps) < 10 || len(rep.Findings) < 10 {
		t.Errorf("%d kinds planted, %d found: want at least ten", len(ps), len(rep.Findings))
	}

	var text, sar bytes.Buffer
	if err := WriteText(&text, rep); err != nil {
		t.Fatal(err)
	}
	if err := WriteSARIF(&sar, rep, sarif.Program{Name: "keyward", Version: "test"}); err != nil {
		t.Fatal(err)
	}
	assertNoValue(t, "text", text.String(), ps)
	assertNoValue(t, "sarif", sar.String(), ps)
	if !strings.Contains(text.String(), filepath.Join(dir, "src/pay.rb")+":4: stripe-access-token (…") {
		t.Errorf("text output:\n%s", text.String())
	}
	checkSARIF(t, sar.Bytes(), len(rep.Findings))
}

// checkSARIF parses a log and checks what SARIF 2.1.0 and GitHub code
// scanning require of it.
func checkSARIF(t *testing.T, b []byte, results int) {
	t.Helper()
	var log struct {
		Schema  string `json:"$schema"`
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string `json:"name"`
					Rules []struct {
						ID               string `json:"id"`
						ShortDescription struct {
							Text string `json:"text"`
						} `json:"shortDescription"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				RuleIndex *int   `json:"ruleIndex"`
				Message   struct {
					Text string `json:"text"`
				} `json:"message"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct {
							URI string `json:"uri"`
						} `json:"artifactLocation"`
						Region struct {
							StartLine int `json:"startLine"`
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
				PartialFingerprints map[string]string `json:"partialFingerprints"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(b, &log); err != nil {
		t.Fatalf("SARIF does not parse: %v", err)
	}
	if log.Version != "2.1.0" || log.Schema == "" || len(log.Runs) != 1 || log.Runs[0].Tool.Driver.Name == "" {
		t.Fatalf("SARIF header: version %q schema %q runs %d", log.Version, log.Schema, len(log.Runs))
	}
	run := log.Runs[0]
	if len(run.Results) != results {
		t.Errorf("SARIF has %d results, want %d", len(run.Results), results)
	}
	fps := map[string]bool{}
	for i, r := range run.Results {
		if r.RuleIndex == nil || *r.RuleIndex >= len(run.Tool.Driver.Rules) || run.Tool.Driver.Rules[*r.RuleIndex].ID != r.RuleID {
			t.Errorf("result %d: ruleId %q does not match its ruleIndex", i, r.RuleID)
		}
		if r.Message.Text == "" || len(r.Locations) != 1 || r.Locations[0].PhysicalLocation.ArtifactLocation.URI == "" {
			t.Errorf("result %d: message or location missing", i)
		}
		fp := r.PartialFingerprints["keywardAudit/v1"]
		if fp == "" || fps[fp] {
			t.Errorf("result %d: fingerprint %q missing or repeated", i, fp)
		}
		fps[fp] = true
	}
	for _, r := range run.Tool.Driver.Rules {
		if r.ID == "" || r.ShortDescription.Text == "" {
			t.Errorf("rule %q without a description", r.ID)
		}
	}
}

// TestCleanTree: ordinary code, configuration with placeholders and a
// binary file give no finding.
func TestCleanTree(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "main.go"), "package main\n\nimport \"os\"\n\nfunc main() {\n\tkey := os.Getenv(\"API_KEY\")\n\t_ = key\n}\n")
	write(t, filepath.Join(dir, "config.yaml"), "database:\n  url: postgres://app:${DB_PASSWORD}@db:5432/app\n  password: <your-password>\napi_key: \"\"\ntoken: changeme\n")
	write(t, filepath.Join(dir, "README.md"), strings.Repeat("Keyward hands secrets to a workload; keys are never in files.\n", 200))
	write(t, filepath.Join(dir, "app.bin"), "\x7fELF\x00\x00"+strings.Repeat("\x00\x01\x02", 3000))
	rep := run(t, []string{dir}, Options{})
	if len(rep.Findings) != 0 {
		t.Errorf("clean tree: %v", rep.Findings)
	}
	if rep.Files != 4 {
		t.Errorf("files = %d, want 4", rep.Files)
	}
}

// TestGitignore: nested .gitignore files, negation, .git/info/exclude and
// .git directories are honoured below a root; a root is audited even when
// a .gitignore above it excludes it; --no-gitignore reads everything.
func TestGitignore(t *testing.T) {
	t.Parallel()
	g := newGen(t)
	dir := t.TempDir()
	key := func() string { return "const k = \"ghp_" + g.s(alnum, 36) + "\"\n" }
	write(t, filepath.Join(dir, ".gitignore"), "# build output\ndist/\n*.local\n!keep.local\n")
	write(t, filepath.Join(dir, ".git", "info", "exclude"), "scratch.txt\n")
	write(t, filepath.Join(dir, ".git", "config"), key())
	write(t, filepath.Join(dir, "dist", "app.js"), key())
	write(t, filepath.Join(dir, "a.local"), key())
	write(t, filepath.Join(dir, "keep.local"), key())
	write(t, filepath.Join(dir, "scratch.txt"), key())
	write(t, filepath.Join(dir, "sub", ".gitignore"), "secret.go\n")
	write(t, filepath.Join(dir, "sub", "secret.go"), key())
	write(t, filepath.Join(dir, "sub", "deeper", "secret.go"), key())
	write(t, filepath.Join(dir, "other", "secret.go"), key())

	paths := func(rep *Report) []string {
		var out []string
		for _, f := range rep.Findings {
			rel, _ := filepath.Rel(dir, f.Path)
			out = append(out, filepath.ToSlash(rel))
		}
		return out
	}
	if got, want := paths(run(t, []string{dir}, Options{})), []string{"keep.local", "other/secret.go"}; !slices.Equal(got, want) {
		t.Errorf("with .gitignore: %v, want %v", got, want)
	}
	if got, want := paths(run(t, []string{filepath.Join(dir, "dist")}, Options{})), []string{"dist/app.js"}; !slices.Equal(got, want) {
		t.Errorf("an ignored root named: %v, want %v", got, want)
	}
	// In a worktree, .git is a file: no exclude file, and no complaint.
	wt := t.TempDir()
	write(t, filepath.Join(wt, ".git"), "gitdir: /elsewhere\n")
	write(t, filepath.Join(wt, "a.go"), key())
	var logs bytes.Buffer
	if rep := run(t, []string{wt}, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}); len(rep.Findings) != 1 || logs.Len() > 0 {
		t.Errorf("worktree: %d findings, logs %q", len(rep.Findings), logs.String())
	}
	want := []string{"a.local", "dist/app.js", "keep.local", "other/secret.go", "scratch.txt", "sub/deeper/secret.go", "sub/secret.go"}
	if got := paths(run(t, []string{dir}, Options{NoGitignore: true})); !slices.Equal(got, want) {
		t.Errorf("without .gitignore: %v, want %v", got, want)
	}
}

// TestAllowList: entries by path, rule and tail allow exactly what they
// name; an entry that matches nothing is reported; an entry without a
// reason is refused with its line.
func TestAllowList(t *testing.T) {
	t.Parallel()
	g := newGen(t)
	dir := t.TempDir()
	pat1, pat2 := "ghp_"+g.s(alnum, 36), "ghp_"+g.s(alnum, 36)
	stripe := "sk_live_" + g.s(alnum, 24)
	write(t, filepath.Join(dir, "testdata", "fixture.txt"), "k = \""+pat1+"\"\n")
	write(t, filepath.Join(dir, "src", "a.go"), "k := \""+pat2+"\"\ns := \""+stripe+"\"\n")
	write(t, filepath.Join(dir, "src", "b.go"), "s := \""+stripe+"\"\n")
	write(t, filepath.Join(dir, AllowFile), strings.Join([]string{
		"# reviewed findings",
		"testdata/**  -- fixtures for the parser tests, revoked",
		"src/a.go github-pat …" + tail(pat2) + "  -- the documented example token of the API",
		"src/b.go stripe-access-token ...ZZZZ -- a tail that no finding has",
		"nothing/** * -- a path that holds nothing",
	}, "\n")+"\n")
	allow, err := LoadAllowList("", []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	rep := run(t, []string{dir}, Options{Allow: allow})
	var got []string
	for _, f := range rep.Findings {
		rel, _ := filepath.Rel(dir, f.Path)
		got = append(got, filepath.ToSlash(rel)+":"+f.Rule)
	}
	if want := []string{"src/a.go:stripe-access-token", "src/b.go:stripe-access-token"}; !slices.Equal(got, want) {
		t.Errorf("findings %v, want %v", got, want)
	}
	if rep.Allowed != 2 {
		t.Errorf("allowed = %d, want 2", rep.Allowed)
	}
	if len(rep.Unused) != 2 || rep.Unused[0].Line != 4 || rep.Unused[1].Line != 5 {
		t.Errorf("unused entries %+v, want lines 4 and 5", rep.Unused)
	}

	for _, c := range []struct{ entry, msg string }{
		{"src/a.go", ":2: entry without a reason"},
		{"src/a.go --", ":2: entry without a reason"},
		{"src/a.go  --  ", ":2: entry without a reason"},
		{"a b c d -- too many", ":2: want PATTERN"},
		{"a rule ZZZZ -- tail without its ellipsis", ":2: tail \"ZZZZ\""},
	} {
		f := filepath.Join(t.TempDir(), "allow")
		write(t, f, "# header\n"+c.entry+"\n")
		_, err := LoadAllowList(f, nil)
		if err == nil || !strings.Contains(err.Error(), f+c.msg) {
			t.Errorf("entry %q: error %v, want %q", c.entry, err, c.msg)
		}
	}
}

// TestInlineAllowMarkerIgnored: gitleaks' inline "gitleaks:allow" marker
// does not excuse a finding: an exception is recorded, with its reason, in
// the allow-list, which a marker in the code cannot carry
// (docs/local-development.md says how to move such lines there).
func TestInlineAllowMarkerIgnored(t *testing.T) {
	t.Parallel()
	g := newGen(t)
	dir := t.TempDir()
	pat := "ghp_" + g.s(alnum, 36)
	stripe := "sk_live_" + g.s(alnum, 24)
	write(t, filepath.Join(dir, "src", "a.go"), "k := \""+pat+"\" // gitleaks:allow\n"+
		"s = \""+stripe+"\"  # gitleaks:allow\n")
	rep := run(t, []string{dir}, Options{})
	var got []string
	for _, f := range rep.Findings {
		got = append(got, fmt.Sprintf("%d:%s:%s", f.Line, f.Rule, f.Tail))
	}
	want := []string{"1:github-pat:" + tail(pat), "2:stripe-access-token:" + tail(stripe)}
	if !slices.Equal(got, want) {
		t.Errorf("findings (line:rule:tail) %v, want %v: a gitleaks:allow marker must not hide a finding", got, want)
	}
	if rep.Allowed != 0 {
		t.Errorf("allowed = %d, want 0: only the allow-list allows", rep.Allowed)
	}
}

// TestConfiguredSecret: a configured secret's value is reported by the
// secret's name, in every form scan finds, and a rule's finding of the
// same bytes is not reported a second time.
func TestConfiguredSecret(t *testing.T) {
	t.Parallel()
	g := newGen(t)
	dir := t.TempDir()
	stripe := "sk_live_" + g.s(alnum, 24)
	pw := "db-" + g.s(alnum, 20)
	write(t, filepath.Join(dir, "app.js"), "const key = \""+stripe+"\";\n")
	write(t, filepath.Join(dir, "dump.json"), "{\"db\": \""+base64.StdEncoding.EncodeToString([]byte(pw))+"\"}\n")
	write(t, filepath.Join(dir, "blob.bin"), "\x00\x01"+pw+"\x00")
	set := mask.NewSet([]mask.Secret{{Name: "STRIPE_KEY", Value: []byte(stripe)}, {Name: "DB_PASSWORD", Value: []byte(pw)}}, 0)
	rep := run(t, []string{dir}, Options{Secrets: set})
	var got []string
	for _, f := range rep.Findings {
		got = append(got, f.String()[len(dir)+1:])
	}
	want := []string{
		"app.js:1: secret:STRIPE_KEY (value of secret STRIPE_KEY, raw)",
		"blob.bin: secret:DB_PASSWORD (value of secret DB_PASSWORD, raw)",
		"dump.json:1: secret:DB_PASSWORD (value of secret DB_PASSWORD, base64)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestChunks: in a file of several chunks, credentials on either side of
// a chunk's end, and a PEM block across it, are found on their lines.
func TestChunks(t *testing.T) {
	t.Parallel()
	g := newGen(t)
	dir := t.TempDir()
	var b strings.Builder
	line := 0
	add := func(s string) int {
		b.WriteString(s)
		b.WriteByte('\n')
		line += strings.Count(s, "\n") + 1
		return line - strings.Count(s, "\n")
	}
	filler := strings.Repeat("x", 99)
	var want []int
	for i := 0; b.Len() < 3*chunkSize; i++ {
		switch {
		case b.Len() > chunkSize-300 && len(want) == 0,
			b.Len() > 2*chunkSize-300 && len(want) == 1:
			want = append(want, add("-----BEGIN RSA PRIVATE KEY-----\n"+strings.Repeat(base64.StdEncoding.EncodeToString([]byte(g.s(alnum, 48)))+"\n", 8)+"-----END RSA PRIVATE KEY-----"))
		case i%4000 == 3999:
			want = append(want, add("token = \"ghp_"+g.s(alnum, 36)+"\""))
		default:
			add(filler)
		}
	}
	write(t, filepath.Join(dir, "big.txt"), b.String())
	rep := run(t, []string{dir}, Options{})
	var got []int
	for _, f := range rep.Findings {
		got = append(got, f.Line)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("lines %v, want %v", got, want)
	}
}

// TestGitignoreNotFollowed: a .gitignore that is a symlink, as git does,
// or a FIFO is not read (a FIFO would block the walk forever), and says
// so in a warning; the files it would have excluded are audited.
func TestGitignoreNotFollowed(t *testing.T) {
	t.Parallel()
	g := newGen(t)
	dir := t.TempDir()
	elsewhere := filepath.Join(t.TempDir(), "ignore")
	write(t, elsewhere, "*.go\n")
	write(t, filepath.Join(dir, "link", "a.go"), "const k = \"ghp_"+g.s(alnum, 36)+"\"\n")
	if err := os.Symlink(elsewhere, filepath.Join(dir, "link", ".gitignore")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "fifo", "b.go"), "const k = \"ghp_"+g.s(alnum, 36)+"\"\n")
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo", ".gitignore"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan *Report, 1)
	go func() {
		rep, _ := Audit(ctx, []string{dir}, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		done <- rep
	}()
	var rep *Report
	select {
	case rep = <-done:
	case <-ctx.Done():
		t.Fatal("audit blocked on a FIFO .gitignore")
	}
	if len(rep.Findings) != 2 {
		t.Errorf("findings = %v, want one in link/a.go and one in fifo/b.go", rep.Findings)
	}
	if n := strings.Count(logs.String(), "cannot read ignore file"); n != 2 {
		t.Errorf("%d warnings about ignore files, want 2: %s", n, logs.String())
	}
}

// TestAllowListNotRegular: an allow-list found at a root that is a FIFO
// (or a device) is refused, naming it, instead of blocking the audit.
func TestAllowListNotRegular(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, AllowFile), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := LoadAllowList("", []string{dir})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), AllowFile) || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("err = %v, want one naming %s as not a regular file", err, AllowFile)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("LoadAllowList blocked on a FIFO")
	}
}
