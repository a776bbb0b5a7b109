package gcp_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"gopkg.in/yaml.v3"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/providers/gcp"
	"github.com/keyward/keyward/providers/gcp/gcpfake"
	"github.com/keyward/keyward/providers/providertest"
)

// The keyward binary, built once for the tests that run it.
var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// keywardBinary builds cmd/keyward (with this package registered through
// cmd/keyward/provider_gcp.go) the first time it is called.
func keywardBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "keyward-gcp-test-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "keyward")
		cmd := exec.Command("go", "build", "-trimpath", "-o", binPath, "github.com/keyward/keyward/cmd/keyward")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building keyward: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// removeBinary is called by TestMain after the tests.
func removeBinary() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

type result struct {
	code           int
	stdout, stderr string
}

// keyward runs the binary in dir with only PATH and env in its
// environment, and with the client library's own debug logging switched
// on, so that a payload it logged would show in stderr.
func keyward(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(keywardBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "GOOGLE_SDK_GO_LOGGING_LEVEL=debug"}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running keyward %v: %v", args, err)
		}
		r.code = ee.ExitCode()
	}
	return r
}

// pointAtFake rewrites a config so that its gcpsm instances reach e's fake
// and its absolute file paths land under dir, and writes it to
// dir/keyward.yaml.
func pointAtFake(t *testing.T, e *env, src []byte, dir string) {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	provs, _ := doc["providers"].(map[string]any)
	if provs == nil {
		provs = map[string]any{}
		doc["providers"] = provs
	}
	if _, ok := provs["gcpsm"]; !ok {
		provs["gcpsm"] = map[string]any{"kind": "gcpsm"}
	}
	for _, p := range provs {
		if m, ok := p.(map[string]any); ok && m["kind"] == "gcpsm" {
			m["endpoint"], m["insecure"] = e.fake.Addr(), true
		}
	}
	files, _ := doc["files"].([]any)
	for _, f := range files {
		if m, ok := f.(map[string]any); ok {
			if p, _ := m["path"].(string); filepath.IsAbs(p) {
				m["path"] = filepath.Join(dir, "root", p)
			}
		}
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keyward.yaml"), out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// seed stores, for every secret the config names, enough versions that
// each reference has its own value (one more than the highest pinned
// version, so that latest differs from every pin), JSON objects where
// fields are asked for. It returns the value each secret name must get.
func seed(t *testing.T, e *env, cfg *config.Config, defaultProject string) map[string]string {
	t.Helper()
	type stored struct {
		fields   map[string]bool
		versions int64
	}
	secrets := map[[2]string]*stored{}
	type want struct {
		key     [2]string
		version string
		field   string
	}
	wants := map[string]want{}
	for name, s := range cfg.Secrets {
		project, secret, version, err := gcp.ResolveTarget(s.Ref, defaultProject)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		key := [2]string{project, secret}
		st := secrets[key]
		if st == nil {
			st = &stored{fields: map[string]bool{}, versions: 1}
			secrets[key] = st
		}
		if s.Ref.Field != "" {
			st.fields[s.Ref.Field] = true
		}
		if version != "latest" {
			n, err := strconv.ParseInt(version, 10, 64)
			if err != nil {
				t.Fatalf("%s: the example pins version %q; seed knows numbers only", name, version)
			}
			st.versions = max(st.versions, n+1)
		}
		wants[name] = want{key, version, s.Ref.Field}
	}
	// Values are random: they must not share 12 bytes with a name that
	// keyward may print (the leak checks would then fire).
	memo := map[string]string{}
	value := func(parts ...any) string {
		k := fmt.Sprint(parts...)
		if v, ok := memo[k]; ok {
			return v
		}
		b := make([]byte, 12)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		memo[k] = "v-" + hex.EncodeToString(b)
		return memo[k]
	}
	payload := func(key [2]string, st *stored, n int64) (raw []byte, fields map[string]string) {
		if len(st.fields) == 0 {
			return []byte(value(key, n)), nil
		}
		fields = map[string]string{}
		for f := range st.fields {
			fields[f] = value(key, f, n)
		}
		raw, err := json.Marshal(fields)
		if err != nil {
			t.Fatal(err)
		}
		return raw, fields
	}
	for key, st := range secrets {
		for n := int64(1); n <= st.versions; n++ {
			raw, _ := payload(key, st, n)
			e.addVersion(t, key[0], key[1], raw)
		}
	}
	out := map[string]string{}
	for name, w := range wants {
		st := secrets[w.key]
		n := st.versions
		if w.version != "latest" {
			n, _ = strconv.ParseInt(w.version, 10, 64)
		}
		raw, fields := payload(w.key, st, n)
		if w.field != "" {
			out[name] = fields[w.field]
		} else {
			out[name] = string(raw)
		}
	}
	return out
}

// parseEnv reads `env` output.
func parseEnv(s string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = v
		}
	}
	return out
}

func values(m map[string]string) [][]byte {
	var out [][]byte
	for _, v := range m {
		out = append(out, []byte(v))
	}
	return out
}

// TestExamples runs every examples/gcp/*/keyward.yaml through the real
// keyward binary against the fake: each secret of the example is stored,
// `keyward exec` runs `env`, and the child's environment and the files
// written must hold exactly the stored values.
func TestExamples(t *testing.T) {
	t.Parallel()
	paths, err := filepath.Glob("../../examples/gcp/*/keyward.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no examples/gcp/*/keyward.yaml (%v)", err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(filepath.Dir(path)), func(t *testing.T) {
			t.Parallel()
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Parse(src, path)
			if err != nil {
				t.Fatalf("example config: %v", err)
			}
			var opts gcp.Options
			if p, ok := cfg.Providers["gcpsm"]; ok {
				if err := p.Decode(&opts); err != nil {
					t.Fatalf("gcpsm options: %v", err)
				}
			}
			e := ownEnv(t)
			want := seed(t, e, cfg, opts.Project)
			dir := t.TempDir()
			pointAtFake(t, e, src, dir)

			r := keyward(t, dir, nil, "--log-level", "debug", "exec", "-c", "keyward.yaml", "--", "/usr/bin/env")
			if r.code != 0 {
				providertest.AssertRedacted(t, r.stderr, values(want)...)
				t.Fatalf("keyward exec: exit %d: %s", r.code, r.stderr)
			}
			providertest.AssertRedacted(t, r.stderr, values(want)...)
			got := parseEnv(r.stdout)
			if len(cfg.Env) == 0 {
				t.Error("the example sets no environment")
			}
			for variable, secret := range cfg.Env {
				if got[variable] != want[secret] {
					t.Errorf("child's %s (secret %s) is not the stored value (%d bytes)", variable, secret, len(got[variable]))
				}
			}
			written, err := config.Load(t.Context(), filepath.Join(dir, "keyward.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range written.Files {
				b, err := os.ReadFile(f.Path)
				if err != nil {
					t.Errorf("file %s: %v", f.Path, err)
					continue
				}
				names := f.Secrets
				if f.Secret != "" {
					names = []string{f.Secret}
				}
				for _, n := range names {
					if !bytes.Contains(b, []byte(want[n])) {
						t.Errorf("file %s lacks secret %s", f.Path, n)
					}
				}
				if f.Secret != "" && string(b) != want[f.Secret] {
					t.Errorf("raw file %s differs from secret %s", f.Path, f.Secret)
				}
			}

			r = keyward(t, dir, nil, "check", "-c", "keyward.yaml")
			if r.code != 0 {
				t.Fatalf("keyward check: exit %d: %s", r.code, r.stderr)
			}
			providertest.AssertRedacted(t, r.stdout+r.stderr, values(want)...)
			if !strings.Contains(r.stdout, fmt.Sprintf("projects/%d/secrets/", e.fake.ProjectNumber(opts.Project))) {
				t.Errorf("check does not show resolved versions:\n%s", r.stdout)
			}
		})
	}
}

// TestBinaryEnvReferences resolves references written in the environment,
// in the compatibility spellings, through the binary.
func TestBinaryEnvReferences(t *testing.T) {
	t.Parallel()
	e := ownEnv(t)
	e.addVersion(t, "env-project", "api", []byte("api-value-v1-abcdef"))
	e.addVersion(t, "env-project", "api", []byte("api-value-v2-abcdef"))
	e.addVersion(t, "env-project", "db", []byte(`{"password":"db-password-abcdef"}`))
	dir := t.TempDir()
	pointAtFake(t, e, []byte("version: 1\n"), dir)
	r := keyward(t, dir, []string{
		"BERGLAS=sm://env-project/api#1",
		"SECRETS_INIT=gcp:secretmanager:projects/env-project/secrets/api",
		"FIELD=gcpsm://env-project/db#password",
		"PLAIN=not a reference",
	}, "exec", "-c", "keyward.yaml", "--", "/usr/bin/env")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	got := parseEnv(r.stdout)
	want := map[string]string{"BERGLAS": "api-value-v1-abcdef", "SECRETS_INIT": "api-value-v2-abcdef", "FIELD": "db-password-abcdef", "PLAIN": "not a reference"}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %d bytes, want the stored value", k, len(got[k]))
		}
	}
}

// TestBinaryFailures checks exit codes and messages of the binary when
// secrets cannot be read: every failure named, no value printed, nothing
// run.
func TestBinaryFailures(t *testing.T) {
	t.Parallel()
	e := ownEnv(t)
	stored := [][]byte{[]byte("disabled-value-abcdef"), []byte("denied-value-abcdef"), []byte("fine-value-abcdef")}
	e.addVersion(t, "fail-project", "disabled", stored[0])
	e.setState(t, "fail-project", "disabled", 1, secretmanagerpb.SecretVersion_DISABLED)
	e.addVersion(t, "fail-project", "denied", stored[1])
	e.fake.Deny(gcpfake.DenyRule{Project: "fail-project", Secret: "denied", Permissions: []string{gcpfake.PermVersionsAccess}})
	e.addVersion(t, "fail-project", "fine", stored[2])
	dir := t.TempDir()
	pointAtFake(t, e, []byte(`version: 1
secrets:
  A: gcpsm://fail-project/disabled
  B: gcpsm://fail-project/denied
  C: gcpsm://fail-project/missing
  D: gcpsm://fail-project/fine
env: {A: A, B: B, C: C, D: D}
`), dir)
	marker := filepath.Join(dir, "ran")
	r := keyward(t, dir, nil, "exec", "-c", "keyward.yaml", "--", "/usr/bin/touch", marker)
	if r.code != 1 {
		t.Errorf("exit %d, want 1: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran although secrets failed")
	}
	for _, want := range []string{
		"projects/fail-project/secrets/disabled/versions/latest", "versions/1 is DISABLED", "disabled",
		"projects/fail-project/secrets/denied/versions/latest", "PermissionDenied",
		"projects/fail-project/secrets/missing/versions/latest", "NotFound",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not mention %q:\n%s", want, r.stderr)
		}
	}
	providertest.AssertRedacted(t, r.stdout+r.stderr, stored...)

	// An instance option that does not exist is a configuration error.
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("version: 1\nproviders:\n  gcpsm: {kind: gcpsm, projcet: x}\nsecrets: {A: gcpsm://fail-project/fine}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = keyward(t, dir, nil, "check", "-c", "bad.yaml")
	if r.code == 0 || !strings.Contains(r.stderr, "projcet") {
		t.Errorf("check with an unknown option: exit %d: %s", r.code, r.stderr)
	}
}
