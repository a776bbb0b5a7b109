package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/keyward/keyward/internal/ci"
	"github.com/keyward/keyward/internal/testenv"
)

// adversarialValues try to break out of a $GITHUB_ENV entry.
var adversarialValues = map[string]string{
	"NEWLINES": "first line\nsecond line\n\nfourth\n",
	"HEREDOC":  "x<<EOF\nEVIL=injected\nEOF\n",
	"DELIM":    "KEYWARD_EOF_\nKEYWARD_EOF_00\nEVIL=1",
	"ADDMASK":  "::add-mask::\n::set-env name=EVIL::1\n",
	"CR":       "carriage\rreturn\r\nmore\r",
	"PERCENT":  "100%0A-sure%25",
	"EQUALS":   "NAME=value<<x",
}

// adversarialFixture lays out a config whose secrets are adversarialValues.
func adversarialFixture(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	b, err := json.Marshal(adversarialValues)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WriteFile(t, filepath.Join(dir, "values.json"), string(b))
	cfg := "version: 1\nsecrets:\n"
	for _, name := range sortedKeys(adversarialValues) {
		cfg += fmt.Sprintf("  %s: file:values.json#%s\n", name, name)
	}
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), cfg+extra)
	return dir
}

// assertNoValue fails when any of values (or a line of one, 6 bytes or
// longer) occurs in out; the message never shows the value.
func assertNoValue(t *testing.T, what, out string, values []string) {
	t.Helper()
	for _, v := range values {
		for _, piece := range append([]string{v}, regexp.MustCompile("[\r\n]+").Split(v, -1)...) {
			if len(piece) >= 6 && strings.Contains(out, piece) {
				t.Fatalf("%s: a secret value (%d bytes) appears in it", what, len(piece))
			}
		}
	}
}

func TestCIGitHubAdversarial(t *testing.T) {
	t.Parallel()
	dir := adversarialFixture(t, "ci:\n  outputs: [HEREDOC, CR]\n")
	envFile := filepath.Join(dir, "github_env")
	outFile := filepath.Join(dir, "github_output")
	testenv.WriteFile(t, envFile, "EARLIER=kept\n")
	r := keyward(t, dir, []string{"GITHUB_ACTIONS=true", "GITHUB_ENV=" + envFile, "GITHUB_OUTPUT=" + outFile}, "ci", "-c", "keyward.yaml")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	assertNoValue(t, "stderr", r.stderr, slicesOf(adversarialValues))

	// stdout is only ::add-mask:: commands, one per value and per line.
	masks := map[string]bool{}
	for _, line := range strings.SplitAfter(r.stdout, "\n") {
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "::add-mask::")
		if !ok || !strings.HasSuffix(data, "\n") || strings.Contains(data[:len(data)-1], "\r") {
			t.Fatalf("stdout holds something other than one-line ::add-mask:: commands (%d bytes)", len(line))
		}
		data = strings.NewReplacer("%0D", "\r", "%0A", "\n").Replace(data[:len(data)-1])
		masks[strings.ReplaceAll(data, "%25", "%")] = true
	}
	for name, v := range adversarialValues {
		if !masks[v] {
			t.Errorf("%s: no ::add-mask:: for the value", name)
		}
		for _, line := range regexp.MustCompile("[\r\n]+").Split(v, -1) {
			if len(line) >= 6 && !masks[line] {
				t.Errorf("%s: no ::add-mask:: for one of its lines", name)
			}
		}
	}

	got, err := ci.ParseGitHubFile(testenv.ReadFile(t, envFile))
	if err != nil {
		t.Fatalf("the runner would fail on $GITHUB_ENV: %v", err)
	}
	want := maps.Clone(adversarialValues)
	want["EARLIER"] = "kept"
	compareVars(t, "$GITHUB_ENV", got, want)
	got, err = ci.ParseGitHubFile(testenv.ReadFile(t, outFile))
	if err != nil {
		t.Fatalf("the runner would fail on $GITHUB_OUTPUT: %v", err)
	}
	compareVars(t, "$GITHUB_OUTPUT", got, map[string]string{"HEREDOC": adversarialValues["HEREDOC"], "CR": adversarialValues["CR"]})
}

func slicesOf(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func compareVars(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected variable %q", what, k)
		}
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: %s reads back as %d bytes, want %d", what, k, len(g), len(v))
		}
	}
}

func TestCIGitHubNeedsRunnerFiles(t *testing.T) {
	t.Parallel()
	dir := adversarialFixture(t, "")
	r := keyward(t, dir, []string{"GITHUB_ACTIONS=true"}, "ci", "-c", "keyward.yaml")
	if r.code != 1 || !strings.Contains(r.stderr, "GITHUB_ENV") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("wrote to stdout before failing: %d bytes", len(r.stdout))
	}
}

// TestCIDotenv: GitLab and other systems get a 0600 dotenv file that bash
// reads back exactly, and the note about keyward exec --mask.
func TestCIDotenv(t *testing.T) {
	t.Parallel()
	for _, sys := range []struct {
		env  []string
		args []string
	}{
		{[]string{"GITLAB_CI=true", "CI=true"}, nil},
		{[]string{"CI=true"}, nil},
		{nil, []string{"--system", "gitlab"}},
	} {
		dir := adversarialFixture(t, "ci:\n  dotenv: out/ci.env\n")
		r := keyward(t, dir, sys.env, append([]string{"ci", "-c", "keyward.yaml"}, sys.args...)...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d: %s", sys, r.code, r.stderr)
		}
		if r.stdout != "" || !strings.Contains(r.stderr, "keyward exec --mask") {
			t.Errorf("%v: stdout %d bytes, stderr without the note: %q", sys, len(r.stdout), r.stderr)
		}
		path := filepath.Join(dir, "out", "ci.env")
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("dotenv mode %v", st.Mode().Perm())
		}
		for name, v := range adversarialValues {
			cmd := exec.Command("bash", "-c", `set -a; . "$1"; set +a; printf %s "${!2}"`, "bash", path, name)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("bash cannot source the dotenv file: %v", err)
			}
			if string(out) != v {
				t.Errorf("%s reads back as %d bytes, want %d", name, len(out), len(v))
			}
		}
	}
	// --dotenv wins over the config.
	dir := adversarialFixture(t, "ci:\n  dotenv: out/ci.env\n")
	flagPath := filepath.Join(dir, "flag.env")
	if r := keyward(t, dir, []string{"GITLAB_CI=true"}, "ci", "-c", "keyward.yaml", "--dotenv", flagPath); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if _, err := os.Stat(flagPath); err != nil {
		t.Errorf("--dotenv not written: %v", err)
	}
	if r := keyward(t, dir, nil, "ci", "-c", "keyward.yaml", "--system", "jenkins"); r.code != 2 {
		t.Errorf("unknown --system: exit %d", r.code)
	}
}

// TestExecMask runs a child that prints a secret raw, split across writes,
// base64-, hex- and URL-encoded, and line by line, through exec --mask.
func TestExecMask(t *testing.T) {
	t.Parallel()
	dir, _ := fixture(t)
	pw := "hunter2-db-password"
	script := `printf '%s\n' "$DATABASE_PASSWORD"
printf 'split: hunter2-'; printf 'db-'; printf 'password!\n'
printf '%s' "$DATABASE_PASSWORD" | base64
printf '%s' "$DATABASE_PASSWORD" | od -An -tx1 | tr -d ' \n'; echo
echo "to stderr: $DATABASE_PASSWORD" >&2
cat out/tls.crt
echo plain output stays
exit 3`
	for _, c := range []struct {
		name string
		env  []string
		args []string
		mask bool
	}{
		{"--mask", nil, []string{"--mask"}, true},
		{"CI set", []string{"CI=true"}, nil, true},
		{"CI set, --no-mask", []string{"CI=true"}, []string{"--no-mask"}, false},
		{"no CI", nil, nil, false},
		{"CI=false", []string{"CI=false"}, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			args := append(append([]string{"exec", "-c", "keyward.yaml", "--mask-idle", "1m"}, c.args...), "--", "sh", "-c", script)
			r := keyward(t, dir, c.env, args...)
			if r.code != 3 {
				t.Fatalf("exit %d, want the child's 3; stderr %q", r.code, r.stderr)
			}
			if !strings.Contains(r.stdout, "plain output stays\n") {
				t.Errorf("secret-free output lost")
			}
			if !c.mask {
				if !strings.Contains(r.stdout, pw) {
					t.Errorf("output masked without --mask")
				}
				return
			}
			assertClean(t, r)
			for _, enc := range []string{base64.StdEncoding.EncodeToString([]byte(pw)), hex.EncodeToString([]byte(pw)), "MIIBfake"} {
				if strings.Contains(r.stdout, enc) {
					t.Errorf("an encoded form or line of a secret survives")
				}
			}
			wantOut := "***\nsplit: ***!\n***\n***\n***\nplain output stays\n"
			if r.stdout != wantOut {
				t.Errorf("stdout %q, want %q", r.stdout, wantOut)
			}
			if !strings.Contains(r.stderr, "to stderr: ***\n") {
				t.Errorf("stderr not masked: %q", r.stderr)
			}
		})
	}
}

// TestExecMaskPassThrough: output without secrets comes through byte for
// byte, binary included.
func TestExecMaskPassThrough(t *testing.T) {
	t.Parallel()
	dir, _ := fixture(t)
	data := make([]byte, 3<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "big.bin")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r := keyward(t, dir, nil, "exec", "--mask", "-c", "keyward.yaml", "--", "cat", path)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !bytes.Equal([]byte(r.stdout), data) {
		t.Fatalf("output differs from input (%d bytes vs %d)", len(r.stdout), len(data))
	}
}

// TestCheckWarnsShortValues: check warns about values the masker ignores.
func TestCheckWarnsShortValues(t *testing.T) {
	t.Parallel()
	dir, _ := fixture(t)
	r := keyward(t, dir, nil, "check", "-c", "keyward.yaml")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	// DB_USER is "app": 3 bytes.
	if !strings.Contains(r.stderr, "masking threshold") || !strings.Contains(r.stderr, "DB_USER") {
		t.Errorf("no warning for the 3-byte DB_USER: %q", r.stderr)
	}
	if strings.Contains(r.stderr, "DB_PASSWORD") {
		t.Errorf("warning for a long value")
	}
}

// copyExample copies examples/ci into work/examples/ci, as a checkout.
func copyExample(t *testing.T, work string) {
	t.Helper()
	src := filepath.Join("..", "..", "examples", "ci")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, _ := d.Info()
		dst := filepath.Join(work, "examples", "ci", rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

var exampleSecrets = []string{"ci-demo-db-password-7Q2x", "ci-demo-api-token-Zk93mW1p", "MIIdemoSigningKeyLineOne4f7a", "MIIdemoSigningKeyLineTwo9c2e"}

// gitlabJob is the part of a .gitlab-ci.yml job the emulator runs.
type gitlabJob struct {
	BeforeScript []string `yaml:"before_script"`
	Script       []string `yaml:"script"`
	AfterScript  []string `yaml:"after_script"`
}

// TestExampleGitLabCI runs the deploy job of examples/ci/.gitlab-ci.yml as
// a shell runner does: before_script and script in one bash session that
// stops at the first failing command, then after_script in another.
func TestExampleGitLabCI(t *testing.T) {
	t.Parallel()
	var jobs map[string]gitlabJob
	if err := yaml.Unmarshal([]byte(testenv.ReadFile(t, "../../examples/ci/.gitlab-ci.yml")), &jobs); err != nil {
		t.Fatal(err)
	}
	job, ok := jobs["deploy"]
	if !ok || len(job.Script) == 0 {
		t.Fatal("no deploy job with a script")
	}
	work, builds := t.TempDir(), t.TempDir()
	copyExample(t, work)
	env := []string{
		"PATH=" + filepath.Dir(binPath) + ":" + os.Getenv("PATH"),
		"HOME=" + builds, "CI=true", "GITLAB_CI=true", "CI_JOB_ID=42",
		"CI_PROJECT_DIR=" + work, "CI_BUILDS_DIR=" + builds,
	}
	run := func(lines []string) (string, string, error) {
		cmd := exec.Command("bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", strings.Join(lines, "\n"))
		cmd.Dir, cmd.Env = work, env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	dotenv := filepath.Join(builds, "keyward-42.env")
	// Check the dotenv file between script and after_script.
	stdout, stderr, err := run(append(append(job.BeforeScript, job.Script...), `stat -c %a "$CI_BUILDS_DIR/keyward-$CI_JOB_ID.env"`))
	if err != nil {
		t.Fatalf("job failed: %v\nstderr: %s", err, stderr)
	}
	assertNoValue(t, "job log", stdout+stderr, exampleSecrets)
	if !strings.HasSuffix(stdout, "600\n") {
		t.Errorf("dotenv file mode: %q", stdout[max(0, len(stdout)-5):])
	}
	if !strings.Contains(stdout, "Bearer ***") || !strings.Contains(stderr, "keyward exec --mask") {
		t.Errorf("log not masked or note missing:\nstdout: %s\nstderr: %s", stdout, stderr)
	}
	if _, _, err := run(job.AfterScript); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dotenv); !os.IsNotExist(err) {
		t.Errorf("after_script left the dotenv file: %v", err)
	}
}
