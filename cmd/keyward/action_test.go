package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/keyward/keyward/internal/ci"
	"github.com/keyward/keyward/internal/testenv"
)

// actionSpec is the part of action.yml the runner emulator reads.
type actionSpec struct {
	Inputs map[string]struct {
		Default  string `yaml:"default"`
		Required bool   `yaml:"required"`
	} `yaml:"inputs"`
	Outputs map[string]struct {
		Value string `yaml:"value"`
	} `yaml:"outputs"`
	Runs struct {
		Using string `yaml:"using"`
		Steps []struct {
			Name  string            `yaml:"name"`
			ID    string            `yaml:"id"`
			Shell string            `yaml:"shell"`
			Run   string            `yaml:"run"`
			Uses  string            `yaml:"uses"`
			If    string            `yaml:"if"`
			Env   map[string]string `yaml:"env"`
		} `yaml:"steps"`
	} `yaml:"runs"`
}

// runner emulates a GitHub Actions runner for one job: each run: step in
// `bash --noprofile --norc -eo pipefail` from the workspace, with fresh
// $GITHUB_ENV, $GITHUB_OUTPUT and $GITHUB_PATH files read back with the
// runner's rules after the step: variables and PATH entries carry to later
// steps, outputs become steps.ID.outputs. The job's PATH is the host's
// without keyward on it, so only an install step can put it there.
type actionRunner struct {
	t          *testing.T
	work, temp string
	env        map[string]string // set through $GITHUB_ENV
	path       []string          // set through $GITHUB_PATH, latest first
	extraEnv   []string          // the test's additions (GOPROXY for go install)
	n          int
}

func newActionRunner(t *testing.T) *actionRunner {
	return &actionRunner{t: t, work: t.TempDir(), temp: t.TempDir(), env: map[string]string{}}
}

// runnerArch is RUNNER_ARCH for this machine.
func runnerArch() string {
	return map[string]string{"amd64": "X64", "arm64": "ARM64", "386": "X86", "arm": "ARM"}[runtime.GOARCH]
}

// step is the result of one run: step.
type step struct {
	stdout, stderr string
	outputs        map[string]string
	err            error
}

// run runs script as a step with the step's env: (already expanded).
func (r *actionRunner) run(name, script string, stepEnv map[string]string) step {
	r.t.Helper()
	r.n++
	files := map[string]string{}
	for _, k := range []string{"GITHUB_ENV", "GITHUB_OUTPUT", "GITHUB_PATH"} {
		files[k] = filepath.Join(r.temp, fmt.Sprintf("%s_%d", strings.ToLower(k), r.n))
		testenv.WriteFile(r.t, files[k], "")
	}
	hostPath := slices.DeleteFunc(filepath.SplitList(os.Getenv("PATH")), func(d string) bool {
		_, err := os.Stat(filepath.Join(d, "keyward"))
		return err == nil
	})
	env := []string{
		"PATH=" + strings.Join(append(slices.Clone(r.path), hostPath...), string(os.PathListSeparator)),
		"HOME=" + os.Getenv("HOME"), "CI=true", "GITHUB_ACTIONS=true",
		"GITHUB_WORKSPACE=" + r.work, "RUNNER_TEMP=" + r.temp, "RUNNER_OS=Linux", "RUNNER_ARCH=" + runnerArch(),
		"GITHUB_ENV=" + files["GITHUB_ENV"], "GITHUB_OUTPUT=" + files["GITHUB_OUTPUT"], "GITHUB_PATH=" + files["GITHUB_PATH"],
	}
	for _, k := range []string{"GOPATH", "GOCACHE", "GOMODCACHE", "GOFLAGS"} {
		if v := os.Getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	env = append(env, r.extraEnv...)
	for _, k := range slices.Sorted(maps.Keys(r.env)) {
		env = append(env, k+"="+r.env[k])
	}
	for _, k := range slices.Sorted(maps.Keys(stepEnv)) {
		env = append(env, k+"="+stepEnv[k])
	}
	cmd := exec.Command("bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script)
	cmd.Dir, cmd.Env = r.work, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	res := step{err: cmd.Run()}
	res.stdout, res.stderr = stdout.String(), stderr.String()
	if res.err != nil {
		return res
	}
	vars, err := ci.ParseGitHubFile(testenv.ReadFile(r.t, files["GITHUB_ENV"]))
	if err != nil {
		r.t.Fatalf("step %q: the runner would fail on $GITHUB_ENV: %v", name, err)
	}
	maps.Copy(r.env, vars)
	if res.outputs, err = ci.ParseGitHubFile(testenv.ReadFile(r.t, files["GITHUB_OUTPUT"])); err != nil {
		r.t.Fatalf("step %q: the runner would fail on $GITHUB_OUTPUT: %v", name, err)
	}
	for _, l := range strings.Split(testenv.ReadFile(r.t, files["GITHUB_PATH"]), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			r.path = append([]string{l}, r.path...)
		}
	}
	return res
}

// exprContext is what ${{ }} expressions in an action can read here.
type exprContext struct {
	inputs, github map[string]string
	steps          map[string]map[string]string
}

var exprRE = regexp.MustCompile(`\$\{\{\s*(.*?)\s*\}\}`)

// expand replaces each ${{ EXPR }} in s as the runner would, for the
// expressions an action may use here: inputs.NAME, github.NAME,
// runner.temp and steps.ID.outputs.NAME. Any other is a test failure, so
// that action.yml cannot use what this emulator does not implement.
func (r *actionRunner) expand(s string, c exprContext) string {
	r.t.Helper()
	return exprRE.ReplaceAllStringFunc(s, func(m string) string {
		e := exprRE.FindStringSubmatch(m)[1]
		parts := strings.Split(e, ".")
		switch {
		case len(parts) == 2 && parts[0] == "inputs":
			v, ok := c.inputs[parts[1]]
			if !ok {
				r.t.Fatalf("action.yml reads inputs.%s, which it does not declare", parts[1])
			}
			return v
		case len(parts) == 2 && parts[0] == "github":
			v, ok := c.github[parts[1]]
			if !ok {
				r.t.Fatalf("action.yml reads github.%s, which the emulator does not provide", parts[1])
			}
			return v
		case e == "runner.temp":
			return r.temp
		case len(parts) == 4 && parts[0] == "steps" && parts[2] == "outputs":
			return c.steps[parts[1]][parts[3]]
		}
		r.t.Fatalf("action.yml uses the expression %q, which the runner emulator does not implement", e)
		return ""
	})
}

// actionRun is the result of running the action.
type actionRun struct {
	log     string // every step's stdout and stderr
	outputs map[string]string
	err     error
}

// runAction runs the composite action in dir (the repository root here),
// used at ref with the inputs with, as the runner does: inputs that are
// not given take their defaults, each step's env: and run: are expanded,
// a failing step ends the action.
func (r *actionRunner) runAction(dir, ref string, with map[string]string) actionRun {
	r.t.Helper()
	var spec actionSpec
	if err := yaml.Unmarshal([]byte(testenv.ReadFile(r.t, filepath.Join(dir, "action.yml"))), &spec); err != nil {
		r.t.Fatalf("action.yml: %v", err)
	}
	if spec.Runs.Using != "composite" {
		r.t.Fatalf("action.yml runs using %q, want composite", spec.Runs.Using)
	}
	c := exprContext{inputs: map[string]string{}, steps: map[string]map[string]string{},
		github: map[string]string{"action_path": dir, "action_ref": ref, "workspace": r.work}}
	for name, in := range spec.Inputs {
		c.inputs[name] = in.Default
	}
	for name, v := range with {
		if _, ok := spec.Inputs[name]; !ok {
			r.t.Fatalf("with: %s is not an input of action.yml", name)
		}
		c.inputs[name] = v
	}
	var log strings.Builder
	for _, st := range spec.Runs.Steps {
		if st.Uses != "" || st.If != "" || st.Shell != "bash" {
			r.t.Fatalf("action step %q: uses %q, if %q, shell %q: the emulator runs bash run: steps only", st.Name, st.Uses, st.If, st.Shell)
		}
		env := map[string]string{}
		for k, v := range st.Env {
			env[k] = r.expand(v, c)
		}
		res := r.run(st.Name, r.expand(st.Run, c), env)
		log.WriteString(res.stdout + res.stderr)
		if res.err != nil {
			return actionRun{log: log.String(), err: fmt.Errorf("step %q: %w", st.Name, res.err)}
		}
		if st.ID != "" {
			c.steps[st.ID] = res.outputs
		}
	}
	out := map[string]string{}
	for name, o := range spec.Outputs {
		out[name] = r.expand(o.Value, c)
	}
	return actionRun{log: log.String(), outputs: out}
}

// releaseServer serves a fake keyward release on 127.0.0.1 the way GitHub
// releases lay it out: /releases/download/VERSION/FILE.
type releaseServer struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte // "VERSION/FILE" -> content
	got   []string
}

func newReleaseServer(t *testing.T) *releaseServer {
	s := &releaseServer{files: map[string][]byte{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.got = append(s.got, req.URL.Path)
		b, ok := s.files[strings.TrimPrefix(req.URL.Path, "/releases/download/")]
		if !ok {
			http.NotFound(w, req)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(s.Close)
	return s
}

// publish puts binary as the release version's binary for this machine's
// platform, with a SHA256SUMS that lists it (and a file for another
// platform), unless sums overrides SHA256SUMS.
func (s *releaseServer) publish(version string, binary []byte, sums string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := "keyward-linux-" + runtime.GOARCH
	sum := sha256.Sum256(binary)
	if sums == "" {
		sums = fmt.Sprintf("%s  %s\n%x  keyward-linux-other\n", hex.EncodeToString(sum[:]), name, sha256.Sum256([]byte("other")))
	}
	s.files[version+"/"+name] = binary
	s.files[version+"/SHA256SUMS"] = []byte(sums)
}

func (s *releaseServer) baseURL() string { return s.URL + "/releases/download" }

// TestAction runs action.yml against a fake release of the keyward built
// for these tests: it downloads, checks and installs the binary, puts it
// on PATH for later steps, and runs keyward ci, whose variables reach the
// next step and whose values are masked; a checksum that does not match,
// a pinned checksum the release does not have, a platform missing from
// SHA256SUMS and a version that is not a tag all fail before keyward runs.
func TestAction(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("skipped: the action installs linux release binaries")
	}
	bin, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	srv := newReleaseServer(t)
	srv.publish("v0.1.0", bin, "")
	tampered := append(slices.Clone(bin), 0)
	srv.publish("v0.1.1", tampered, fmt.Sprintf("%x  keyward-linux-%s\n", sha256.Sum256(bin), runtime.GOARCH))
	srv.publish("v0.1.2", bin, fmt.Sprintf("%x  keyward-linux-other\n", sha256.Sum256(bin)))

	setup := func(t *testing.T) *actionRunner {
		r := newActionRunner(t)
		testenv.WriteFile(t, filepath.Join(r.work, "dev.yaml"), fixtureSecrets)
		testenv.WriteFile(t, filepath.Join(r.work, "tls.crt"), fixtureValues[3])
		testenv.WriteFile(t, filepath.Join(r.work, "keyward.yaml"), "version: 1\nsecrets:\n  DB_PASSWORD: file:dev.yaml#db.password\n  STRIPE_KEY: file:dev.yaml#stripe.key\n")
		return r
	}

	t.Run("installs, verifies and runs keyward ci", func(t *testing.T) {
		t.Parallel()
		r := setup(t)
		res := r.runAction(root, "v0.1.0", map[string]string{"base-url": srv.baseURL() + "/"})
		if res.err != nil {
			t.Fatalf("action failed: %v\n%s", res.err, res.log)
		}
		// The runner hides values registered by ::add-mask:: lines, which
		// are not shown themselves; anything else must not hold a value.
		var shown []string
		for _, l := range strings.Split(res.log, "\n") {
			if !strings.HasPrefix(l, "::add-mask::") {
				shown = append(shown, l)
			}
		}
		assertNoValue(t, "the action's log", strings.Join(shown, "\n"), fixtureValues[:2])
		for _, v := range fixtureValues[:2] {
			if !strings.Contains(res.log, "::add-mask::"+v+"\n") {
				t.Errorf("a value (%d bytes) was not masked before use", len(v))
			}
		}
		if want := filepath.Join(r.temp, "keyward-v0.1.0", "keyward"); res.outputs["path"] != want {
			t.Errorf("output path = %q, want %q", res.outputs["path"], want)
		}
		if res.outputs["version"] == "" {
			t.Error("output version is empty")
		}
		next := r.run("a later step", `command -v keyward; echo "${#DB_PASSWORD} ${#STRIPE_KEY}"`, nil)
		if next.err != nil {
			t.Fatalf("later step: %v\n%s", next.err, next.stderr)
		}
		want := fmt.Sprintf("%s\n%d %d\n", res.outputs["path"], len(fixtureValues[0]), len(fixtureValues[1]))
		if next.stdout != want {
			t.Errorf("a later step sees %q, want keyward on PATH and both secrets: %q", next.stdout, want)
		}
	})

	t.Run("a pinned checksum that matches", func(t *testing.T) {
		t.Parallel()
		r := setup(t)
		sum := sha256.Sum256(bin)
		res := r.runAction(root, "", map[string]string{"version": "v0.1.0", "base-url": srv.baseURL(), "checksum": strings.ToUpper(hex.EncodeToString(sum[:])), "run": "false"})
		if res.err != nil || !strings.Contains(res.log, "keyward ci is not run") {
			t.Fatalf("action: %v\n%s", res.err, res.log)
		}
		if _, ok := r.env["DB_PASSWORD"]; ok {
			t.Error("run: false ran keyward ci")
		}
	})

	t.Run("a macOS runner installs the darwin binary", func(t *testing.T) {
		t.Parallel()
		// This machine cannot run a darwin binary: the release's darwin
		// file differs from its SHA256SUMS line, so the action stops at
		// the check of the file it chose, after downloading it.
		srv.mu.Lock()
		srv.files["v0.1.3/keyward-darwin-arm64"] = []byte("darwin")
		srv.files["v0.1.3/SHA256SUMS"] = fmt.Appendf(nil, "%x  keyward-darwin-arm64\n", sha256.Sum256([]byte("other")))
		srv.mu.Unlock()
		r := setup(t)
		r.extraEnv = append(r.extraEnv, "RUNNER_OS=macOS", "RUNNER_ARCH=ARM64")
		res := r.runAction(root, "v0.1.3", map[string]string{"base-url": srv.baseURL()})
		if want := "checksum mismatch for keyward-darwin-arm64 v0.1.3: SHA256SUMS says"; res.err == nil || !strings.Contains(res.log, want) {
			t.Errorf("action: %v, log %q, want an error with %q", res.err, res.log, want)
		}
	})

	for _, tt := range []struct {
		name, ref string
		with      map[string]string
		want      string
	}{
		{"a download that does not match SHA256SUMS", "v0.1.1", nil, "checksum mismatch for keyward-linux-" + runtime.GOARCH + " v0.1.1: SHA256SUMS says"},
		{"a release whose files were all replaced", "v0.1.0", map[string]string{"checksum": strings.Repeat("ab", 32)}, "the checksum input says " + strings.Repeat("ab", 32)},
		{"SHA256SUMS without this platform", "v0.1.2", nil, "SHA256SUMS lists no keyward-linux-" + runtime.GOARCH},
		{"a release that does not exist", "v9.9.9", nil, "cannot download"},
		{"an action pinned by commit without a version", "0123456789abcdef0123456789abcdef01234567", nil, "is not a release tag"},
		{"an unknown install method", "v0.1.0", map[string]string{"from": "brew"}, "from must be release or source"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := setup(t)
			with := map[string]string{"base-url": srv.baseURL()}
			maps.Copy(with, tt.with)
			res := r.runAction(root, tt.ref, with)
			if res.err == nil {
				t.Fatalf("the action succeeded; want it to fail with %q\n%s", tt.want, res.log)
			}
			if !strings.Contains(res.log, "::error title=keyward::") || !strings.Contains(res.log, tt.want) {
				t.Errorf("log %q, want an ::error:: with %q", res.log, tt.want)
			}
			if len(r.path) != 0 || len(r.env) != 0 {
				t.Errorf("a failed install changed the job: PATH %v, env %v", r.path, slices.Collect(maps.Keys(r.env)))
			}
			if _, err := os.Stat(filepath.Join(r.temp, "keyward-"+tt.ref, "keyward")); err == nil {
				t.Error("a binary that failed its check was installed")
			}
		})
	}
}

// workflow is the part of a GitHub Actions workflow the emulator runs.
type workflow struct {
	Jobs map[string]struct {
		Steps []struct {
			ID   string            `yaml:"id"`
			Name string            `yaml:"name"`
			Uses string            `yaml:"uses"`
			With map[string]string `yaml:"with"`
			Run  string            `yaml:"run"`
			Env  map[string]string `yaml:"env"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

// TestExampleGitHubActions runs examples/ci/github-actions.yml as a runner
// does (see runner): actions/checkout is the test's copy of the example;
// keyward/keyward@REF runs this repository's action.yml, its release
// served from 127.0.0.1 (the keyward built for these tests, published as
// REF); run: steps run in bash. Nothing puts keyward on PATH but the action.
func TestExampleGitHubActions(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("skipped: the action installs linux release binaries")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	srv := newReleaseServer(t)
	var wf workflow
	if err := yaml.Unmarshal([]byte(testenv.ReadFile(t, "../../examples/ci/github-actions.yml")), &wf); err != nil {
		t.Fatal(err)
	}
	r := newActionRunner(t)
	copyExample(t, r.work)
	c := exprContext{steps: map[string]map[string]string{}, github: map[string]string{"workspace": r.work}}
	logs := map[string]string{}
	usedAction := false
	for _, job := range wf.Jobs {
		for _, st := range job.Steps {
			action, ref, _ := strings.Cut(st.Uses, "@")
			switch {
			case action == "actions/checkout":
				continue
			case action == "keyward/keyward":
				usedAction = true
				srv.publish(ref, bin, "")
				with := map[string]string{"base-url": srv.baseURL()}
				maps.Copy(with, st.With)
				res := r.runAction(root, ref, with)
				if res.err != nil {
					t.Fatalf("step %q: %v\n%s", st.Name, res.err, res.log)
				}
				logs[st.Name] = res.log
				c.steps[st.ID] = res.outputs
				continue
			case st.Uses != "":
				t.Fatalf("step %q uses %s, which the emulator does not provide", st.Name, st.Uses)
			}
			env := map[string]string{}
			for k, v := range st.Env {
				env[k] = r.expand(v, c)
			}
			res := r.run(st.Name, st.Run, env)
			if res.err != nil {
				t.Fatalf("step %q failed: %v\nstderr: %s", st.Name, res.err, res.stderr)
			}
			logs[st.Name] = res.stdout
			assertNoValue(t, fmt.Sprintf("step %q's log", st.Name), res.stdout+res.stderr, exampleSecrets)
			if st.ID != "" {
				c.steps[st.ID] = res.outputs
			}
		}
	}
	if !usedAction || len(logs) < 4 {
		t.Fatalf("ran %d steps (the keyward action: %v), want the action and at least 3 run: steps", len(logs), usedAction)
	}
	want := map[string]string{
		"DB_PASSWORD": exampleSecrets[0],
		"API_TOKEN":   exampleSecrets[1],
		"SIGNING_KEY": "-----BEGIN DEMO KEY-----\n" + exampleSecrets[2] + "\n" + exampleSecrets[3] + "\n-----END DEMO KEY-----\n",
	}
	compareVars(t, "job environment", r.env, want)
	fetch := logs["Fetch secrets"]
	for _, v := range append([]string{want["SIGNING_KEY"]}, exampleSecrets...) {
		if !strings.Contains(fetch, "::add-mask::"+ci.EscapeCommandData(v)+"\n") {
			t.Errorf("Fetch secrets: a value (%d bytes) has no ::add-mask::", len(v))
		}
	}
	if deploy := logs["Deploy"]; !strings.Contains(deploy, "Bearer ***") || !strings.Contains(deploy, "database password") {
		t.Errorf("Deploy log not masked as expected:\n%s", deploy)
	}
	if got := logs["Use a secret in a later step"]; got != fmt.Sprintf("the token has %d bytes\n", len(exampleSecrets[1])) {
		t.Errorf("the later step got %q", got)
	}
}
