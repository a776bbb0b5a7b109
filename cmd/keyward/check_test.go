package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testenv"
)

// TestCheckFingerprints checks that keyward check prints no function of a
// value that can be computed without the operator's key: without a key
// only length and version, with one (from a file or the environment) an
// HMAC-SHA256 under it. An unkeyed SHA-256 of a 4-digit PIN gave the PIN
// away in 1,235 tries.
func TestCheckFingerprints(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const pin = "4711"
	testenv.WriteFile(t, filepath.Join(dir, "dev.yaml"), "pin: \""+pin+"\"\n")
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), "version: 1\nsecrets:\n  PIN: file:dev.yaml#pin\n")
	const key = "k3y-0f-the-operat0r-32-bytes-lng"
	testenv.WriteFile(t, filepath.Join(dir, "fp.key"), key+"\n")
	testenv.WriteFile(t, filepath.Join(dir, "short.key"), "short\n")
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(pin))
	keyed := hex.EncodeToString(mac.Sum(nil))
	plain := sha256.Sum256([]byte(pin))

	// unkeyed reports whether out holds any 8 hex digits of the PIN's
	// plain SHA-256 (at any offset).
	unkeyed := func(out string) bool {
		h := hex.EncodeToString(plain[:])
		for i := 0; i+8 <= len(h); i += 2 {
			if strings.Contains(out, h[i:i+8]) {
				return true
			}
		}
		return false
	}
	tests := []struct {
		name string
		env  []string
		args []string
		code int
		fp   bool
	}{
		{name: "no key"},
		{name: "key file", args: []string{"--fingerprint-key-file", "fp.key"}, fp: true},
		{name: "key in the environment", env: []string{"KEYWARD_FINGERPRINT_KEY=" + key}, fp: true},
		{name: "file wins over the environment", env: []string{"KEYWARD_FINGERPRINT_KEY=another-key-of-enough-length"}, args: []string{"--fingerprint-key-file", "fp.key"}, fp: true},
		{name: "short key", args: []string{"--fingerprint-key-file", "short.key"}, code: 2},
		{name: "short key in the environment", env: []string{"KEYWARD_FINGERPRINT_KEY=short"}, code: 2},
		{name: "missing key file", args: []string{"--fingerprint-key-file", "nope.key"}, code: 2},
		{name: "key file is a directory", args: []string{"--fingerprint-key-file", "."}, code: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := keyward(t, dir, tt.env, append([]string{"check", "-c", "keyward.yaml"}, tt.args...)...)
			out := r.stdout + r.stderr
			if unkeyed(out) {
				t.Errorf("output holds the value's unkeyed SHA-256")
			}
			if strings.Contains(out, key) || strings.Contains(out, "short\n") || strings.Contains(out, "another-key") {
				t.Errorf("output quotes the fingerprint key")
			}
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d: %s", r.code, tt.code, r.stderr)
			}
			if tt.code != 0 {
				if !strings.Contains(r.stderr, "fingerprint") {
					t.Errorf("error does not say what is wrong: %s", r.stderr)
				}
				return
			}
			hasFP := strings.Contains(r.stdout, "FINGERPRINT")
			if hasFP != tt.fp {
				t.Errorf("FINGERPRINT column present %v, want %v:\n%s", hasFP, tt.fp, r.stdout)
			}
			if tt.fp && !strings.Contains(r.stdout, "hmac-sha256:"+keyed[:16]) {
				t.Errorf("no HMAC-SHA256 fingerprint under the key:\n%s", r.stdout)
			}
			if !tt.fp && strings.Contains(r.stdout, "hmac-sha256:") {
				t.Errorf("a fingerprint without a key:\n%s", r.stdout)
			}
			if !regexp.MustCompile(`(?m)^PIN +file +\S+ +4\b`).MatchString(r.stdout) {
				t.Errorf("no name and length:\n%s", r.stdout)
			}
		})
	}
}

// TestCheckRefusesWhatExecRefuses checks that keyward check validates the
// child's environment as exec and agent build it: a value with a NUL byte
// in env: passed check and then stopped exec.
func TestCheckRefusesWhatExecRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	testenv.WriteFile(t, filepath.Join(dir, "nul.json"), `{"v": "ab\u0000cd-long-value", "ok": "fine-long-value"}`)
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), "version: 1\nsecrets:\n  NUL: file:nul.json#v\n  OK: file:nul.json#ok\nenv:\n  BAD_VAR: NUL\n  GOOD_VAR: OK\n")
	// env: {}: the child gets no secret (without env: it would get NUL).
	testenv.WriteFile(t, filepath.Join(dir, "raw.yaml"), "version: 1\nsecrets:\n  NUL: file:nul.json#v\nenv: {}\nfiles:\n  - path: out/raw\n    secret: NUL\n")
	testenv.WriteFile(t, filepath.Join(dir, "noenv.yaml"), "version: 1\nsecrets:\n  NUL: file:nul.json#v\n")
	// Without env: but with files:, the files carry the secrets: the child gets none.
	testenv.WriteFile(t, filepath.Join(dir, "files.yaml"), "version: 1\nsecrets:\n  NUL: file:nul.json#v\nfiles:\n  - path: out/raw\n    secret: NUL\n")
	const want = "env BAD_VAR: value contains a NUL byte"
	for _, args := range [][]string{
		{"check", "-c", "keyward.yaml"},
		{"exec", "-c", "keyward.yaml", "--", "true"},
		{"agent", "-c", "keyward.yaml", "--", "true"},
	} {
		r := keywardTimeout(t, dir, nil, 30*time.Second, args...)
		if r.code != exitRuntime || !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, "GOOD_VAR") {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", args, r.code, r.stderr, exitRuntime, want)
		}
		if strings.Contains(r.stderr, "cd-long-value") {
			t.Errorf("%v: leaked value of NUL", args)
		}
	}
	// A NUL byte is fine in a raw file, as render writes it.
	if r := keyward(t, dir, nil, "check", "-c", "raw.yaml"); r.code != 0 {
		t.Errorf("check of a raw file with a NUL byte: exit %d: %s", r.code, r.stderr)
	}
	for _, args := range [][]string{{"check", "-c", "files.yaml"}, {"exec", "-c", "files.yaml", "--", "true"}} {
		if r := keyward(t, dir, nil, args...); r.code != 0 {
			t.Errorf("%v: exit %d, stderr %q; a config with files: and no env: hands the child nothing", args, r.code, r.stderr)
		}
	}
	// Without env: and files:, every secret goes to the child's
	// environment, so the value is refused there, and the error says how
	// to choose.
	for _, args := range [][]string{{"check", "-c", "noenv.yaml"}, {"exec", "-c", "noenv.yaml", "--", "true"}} {
		r := keyward(t, dir, nil, args...)
		if r.code != exitRuntime || !strings.Contains(r.stderr, "env NUL: value contains a NUL byte") || !strings.Contains(r.stderr, "env: {}") {
			t.Errorf("%v: exit %d, stderr %q; want the NUL byte refused with a hint about env:", args, r.code, r.stderr)
		}
	}
}

// TestCheckWarnsWholeStructuredSecret: a structured secret referenced
// without #field where one value is expected (env:, a raw file) would hand
// on the JSON of all its fields; check warns, naming the secret and where
// it is used, and nothing for the uses that take fields apart.
func TestCheckWarnsWholeStructuredSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	testenv.WriteFile(t, filepath.Join(dir, "db.yaml"), "user: app-user-long\npassword: pw-struct-value\n")
	testenv.WriteFile(t, filepath.Join(dir, "plain.txt"), "plain-secret-value")
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), `version: 1
secrets:
  DB: file:db.yaml
  DB_PASSWORD: file:db.yaml#password
  PLAIN: file:plain.txt
env:
  DATABASE: DB
  DATABASE_PASSWORD: DB_PASSWORD
  PLAIN_VAR: PLAIN
files:
  - path: out/db.json
    format: raw
    secret: DB
  - path: out/db.env
    format: dotenv
    secrets: [DB]
  - path: out/plain
    format: raw
    secret: PLAIN
`)
	r := keyward(t, dir, nil, "check", "-c", "keyward.yaml")
	if r.code != 0 {
		t.Fatalf("check: exit %d: %s", r.code, r.stderr)
	}
	for _, v := range []string{"app-user-long", "pw-struct-value", "plain-secret-value"} {
		if strings.Contains(r.stdout+r.stderr, v) {
			t.Errorf("leaked value of a secret in check's output")
		}
	}
	var warnings []string
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.Contains(l, "structured secret used whole") {
			warnings = append(warnings, l)
		}
	}
	if len(warnings) != 1 {
		t.Fatalf("%d warnings about whole structured secrets, want 1 (for DB):\n%s", len(warnings), r.stderr)
	}
	out := filepath.Join(dir, "out", "db.json")
	for _, want := range []string{"secret=DB ", "env DATABASE,", "raw file " + out, "fields=2"} {
		if !strings.Contains(warnings[0], want) {
			t.Errorf("warning %q lacks %q", warnings[0], want)
		}
	}
}

// TestCheckJSON parses keyward check -o json: every secret with its name,
// reference as written, provider, version, length and (with a key) keyed
// fingerprint, the warnings of each secret and of the config, no value;
// --offline lists the secrets unresolved.
func TestCheckJSON(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	values := map[string]string{"DB_PASSWORD": "check-json-db-pw-7Q2x", "PIN": "4711"}
	testenv.WriteFile(t, filepath.Join(dir, "dev.yaml"), "db:\n  password: "+values["DB_PASSWORD"]+"\npin: \""+values["PIN"]+"\"\n")
	testenv.WriteFile(t, filepath.Join(dir, "db.yaml"), "user: check-json-user\npassword: check-json-pw-2\n")
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), `version: 1
secrets:
  DB_PASSWORD: file:dev.yaml#db.password
  DB: file:db.yaml
  PIN: file:dev.yaml#pin
env:
  DATABASE: DB
  DATABASE_PASSWORD: DB_PASSWORD
files:
  - path: out/pin
    secret: PIN
    mode: "0640"
`)
	const key = "k3y-0f-the-operat0r-32-bytes-lng"
	fingerprint := func(v string) string {
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write([]byte(v))
		return "hmac-sha256:" + hex.EncodeToString(mac.Sum(nil))[:16]
	}
	type secret struct {
		Name        string   `json:"name"`
		Reference   *string  `json:"reference"`
		Provider    *string  `json:"provider"`
		Version     *string  `json:"version"`
		Length      *int     `json:"length"`
		Fingerprint *string  `json:"fingerprint"`
		Warnings    []string `json:"warnings"`
	}
	type report struct {
		Config   string `json:"config"`
		Resolved bool   `json:"resolved"`
		Files    int    `json:"files"`
		Warnings []struct {
			Line    int    `json:"line"`
			Message string `json:"message"`
		} `json:"warnings"`
		Secrets []secret `json:"secrets"`
	}
	parse := func(t *testing.T, out string) report {
		t.Helper()
		var rep report
		dec := json.NewDecoder(strings.NewReader(out))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rep); err != nil {
			t.Fatalf("check -o json is not the documented JSON: %v\n%s", err, out)
		}
		if dec.More() {
			t.Fatalf("more than one JSON document:\n%s", out)
		}
		return rep
	}

	r := keyward(t, dir, []string{"KEYWARD_FINGERPRINT_KEY=" + key}, "check", "-c", "keyward.yaml", "-o", "json")
	if r.code != 0 {
		t.Fatalf("check -o json: exit %d: %s", r.code, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, values["DB_PASSWORD"]) || strings.Contains(r.stdout+r.stderr, "check-json-user") {
		t.Fatal("leaked value of a secret in check -o json")
	}
	rep := parse(t, r.stdout)
	if rep.Config != "keyward.yaml" || !rep.Resolved || rep.Files != 1 {
		t.Errorf("config %q, resolved %v, files %d", rep.Config, rep.Resolved, rep.Files)
	}
	if len(rep.Warnings) != 1 || rep.Warnings[0].Line != 12 || !strings.Contains(rep.Warnings[0].Message, "0640") {
		t.Errorf("config warnings %+v: want the group-readable mode on line 12", rep.Warnings)
	}
	refs := map[string]string{"DB_PASSWORD": "file:dev.yaml#db.password", "DB": "file:db.yaml", "PIN": "file:dev.yaml#pin"}
	if len(rep.Secrets) != len(refs) {
		t.Fatalf("%d secrets, want %d", len(rep.Secrets), len(refs))
	}
	for _, s := range rep.Secrets {
		if s.Reference == nil || *s.Reference != refs[s.Name] || s.Provider == nil || *s.Provider != "file" {
			t.Errorf("%s: reference %v, provider %v", s.Name, s.Reference, s.Provider)
		}
		if s.Version == nil || *s.Version == "" || s.Length == nil || s.Fingerprint == nil || s.Warnings == nil {
			t.Errorf("%s: a field is missing: %+v", s.Name, s)
			continue
		}
		if v, ok := values[s.Name]; ok {
			if *s.Length != len(v) || *s.Fingerprint != fingerprint(v) {
				t.Errorf("%s: length %d, fingerprint %s; want %d and the HMAC under the key", s.Name, *s.Length, *s.Fingerprint, len(v))
			}
		}
		var want string
		switch s.Name {
		case "DB":
			want = "structured secret used whole"
		case "PIN":
			want = "shorter than the masking threshold"
		}
		if want == "" && len(s.Warnings) > 0 || want != "" && (len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], want)) {
			t.Errorf("%s: warnings %q, want one about %q", s.Name, s.Warnings, want)
		}
	}

	// Without a key: no fingerprint. --offline: nothing resolved.
	r = keyward(t, dir, nil, "check", "-c", "keyward.yaml", "-o", "json")
	for _, s := range parse(t, r.stdout).Secrets {
		if s.Fingerprint != nil {
			t.Errorf("%s: a fingerprint without a key", s.Name)
		}
	}
	r = keyward(t, dir, nil, "check", "--offline", "-c", "keyward.yaml", "-o", "json")
	rep = parse(t, r.stdout)
	if rep.Resolved || len(rep.Secrets) != 3 {
		t.Errorf("--offline: resolved %v, %d secrets", rep.Resolved, len(rep.Secrets))
	}
	for _, s := range rep.Secrets {
		if s.Version != nil || s.Length != nil || s.Reference == nil {
			t.Errorf("--offline: %s has a version or a length, or no reference: %+v", s.Name, s)
		}
	}
	if r := keyward(t, dir, nil, "check", "-c", "keyward.yaml", "-o", "yaml"); r.code != exitUsage {
		t.Errorf("-o yaml: exit %d, want %d", r.code, exitUsage)
	}
}
