package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/keyward/keyward/internal/testenv"
)

// Demo secret values. No test output may ever contain one.
var fixtureValues = []string{
	"hunter2-db-password",
	"sk_live_4eC39HqLyjWDarjtT1zdp7dc",
	"partner-client-7f3a9c",
	"-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n",
}

const fixtureSecrets = `db:
  user: app
  password: hunter2-db-password
stripe.key: sk_live_4eC39HqLyjWDarjtT1zdp7dc
partner:
  client_id: partner-client-7f3a9c
`

const fixtureConfig = `version: 1
secrets:
  DB_USER: file:dev.yaml#db.user
  DB_PASSWORD: file:dev.yaml#db.password
  STRIPE_KEY: file:dev.yaml#stripe.key
  PARTNER_ID: file:dev.yaml#partner.client_id
  TLS_CERT: file:tls.crt
env:
  DATABASE_PASSWORD: DB_PASSWORD
files:
  - path: out/app.env
    format: dotenv
    secrets: [DB_USER, DB_PASSWORD, STRIPE_KEY]
  - path: out/tls.crt
    format: raw
    secret: TLS_CERT
    mode: "0400"
  - path: out/partner.ini
    format: template
    template: |
      client_id = {{ secret "PARTNER_ID" }}
`

// fixture lays out a config, its secrets and a certificate in a fresh
// directory and renders it once, returning the directory and a snapshot of
// the rendered files.
func fixture(t *testing.T) (string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	testenv.WriteFile(t, filepath.Join(dir, "dev.yaml"), fixtureSecrets)
	testenv.WriteFile(t, filepath.Join(dir, "tls.crt"), fixtureValues[3])
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), fixtureConfig)
	r := keyward(t, dir, nil, "render", "--once", "-c", "keyward.yaml")
	if r.code != 0 {
		t.Fatalf("initial render: exit %d: %s", r.code, r.stderr)
	}
	return dir, snapshot(t, filepath.Join(dir, "out"))
}

func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		out[e.Name()] = testenv.ReadFile(t, filepath.Join(dir, e.Name()))
	}
	return out
}

// assertClean checks that no fixture value appears in the run's output.
func assertClean(t *testing.T, r result) {
	t.Helper()
	for _, v := range fixtureValues {
		for _, line := range strings.Split(strings.TrimSpace(v), "\n") {
			if len(line) < 6 {
				continue
			}
			if strings.Contains(r.stderr, line) || strings.Contains(r.stdout, line) {
				t.Fatalf("a secret value leaked into keyward's output (stderr %d bytes)", len(r.stderr))
			}
		}
	}
}

func TestRenderOnce(t *testing.T) {
	t.Parallel()
	dir, files := fixture(t)
	want := map[string]string{
		"tls.crt":     fixtureValues[3],
		"partner.ini": "client_id = partner-client-7f3a9c\n",
	}
	for name, content := range want {
		if files[name] != content {
			t.Errorf("%s: got %d bytes, want %d", name, len(files[name]), len(content))
		}
	}
	env := files["app.env"]
	for _, line := range []string{"DB_USER=app", "DB_PASSWORD=hunter2-db-password", "STRIPE_KEY=sk_live_4eC39HqLyjWDarjtT1zdp7dc"} {
		if !strings.Contains(env, line+"\n") {
			t.Errorf("app.env lacks line %q", strings.SplitN(line, "=", 2)[0])
		}
	}
	modes := map[string]os.FileMode{"app.env": 0o600, "tls.crt": 0o400, "partner.ini": 0o600}
	for name, mode := range modes {
		st, err := os.Stat(filepath.Join(dir, "out", name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", name, st.Mode().Perm(), mode)
		}
	}
	st, err := os.Stat(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("out/: mode %v, want 0700", st.Mode().Perm())
	}
	// A second render changes nothing: same inode, content untouched.
	before := inode(t, filepath.Join(dir, "out", "app.env"))
	r := keyward(t, dir, nil, "render", "--once", "-c", "keyward.yaml")
	if r.code != 0 {
		t.Fatalf("second render: exit %d: %s", r.code, r.stderr)
	}
	if after := inode(t, filepath.Join(dir, "out", "app.env")); after != before {
		t.Errorf("unchanged file was rewritten (inode %d -> %d)", before, after)
	}
	assertClean(t, r)
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

// TestBadInput drives the binary through each kind of bad input: every case
// must exit with the documented code and a one-line error naming what and
// where, leak no value, and leave the previously rendered files intact.
func TestBadInput(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		break_ func(t *testing.T, dir string) // makes the input bad
		args   []string
		env    []string
		code   int
		want   []string // substrings of the error line
	}{
		{
			name: "malformed reference",
			break_: func(t *testing.T, dir string) {
				replaceIn(t, dir, "keyward.yaml", "file:dev.yaml#db.user", "file:dev.yaml#")
			},
			code: 78,
			want: []string{"keyward.yaml", "DB_USER", "position"},
		},
		{
			name:   "unknown config key",
			break_: func(t *testing.T, dir string) { replaceIn(t, dir, "keyward.yaml", "env:\n", "enviroment: {}\nenv:\n") },
			code:   78,
			want:   []string{"keyward.yaml", "enviroment"},
		},
		{
			name: "unknown reference option",
			break_: func(t *testing.T, dir string) {
				replaceIn(t, dir, "keyward.yaml", "file:tls.crt", "file:tls.crt?colour=blue")
			},
			code: 78,
			want: []string{"colour", "TLS_CERT"},
		},
		{
			name: "unknown provider",
			break_: func(t *testing.T, dir string) {
				replaceIn(t, dir, "keyward.yaml", "file:tls.crt", "vaultt://secret/tls#crt")
			},
			code: 78,
			want: []string{"TLS_CERT", "vaultt"},
		},
		{
			name: "bad provider option",
			break_: func(t *testing.T, dir string) {
				replaceIn(t, dir, "keyward.yaml", "secrets:\n", "providers:\n  dev: {kind: file, colour: blue}\nsecrets:\n")
			},
			code: 78,
			want: []string{"dev", "colour"},
		},
		{
			name:   "malformed secrets file",
			break_: func(t *testing.T, dir string) { replaceIn(t, dir, "dev.yaml", "  user: app\n", "  user: [app\n") },
			code:   1,
			want:   []string{"dev.yaml", "line"},
		},
		{
			name: "malformed template",
			break_: func(t *testing.T, dir string) {
				replaceIn(t, dir, "keyward.yaml", `{{ secret "PARTNER_ID" }}`, `{{ secret "PARTNER_ID" }`)
			},
			code: 78,
			want: []string{"keyward.yaml", "template"},
		},
		{
			name: "missing key",
			break_: func(t *testing.T, dir string) {
				replaceIn(t, dir, "keyward.yaml", "#partner.client_id", "#partner.client_secret")
			},
			code: 1,
			want: []string{"PARTNER_ID", "client_secret", "not found"},
		},
		{
			name:   "missing secrets file",
			break_: func(t *testing.T, dir string) { must(t, os.Remove(filepath.Join(dir, "tls.crt"))) },
			code:   1,
			want:   []string{"TLS_CERT", "tls.crt", "not found"},
		},
		{
			name: "symlinked target",
			break_: func(t *testing.T, dir string) {
				testenv.WriteFile(t, filepath.Join(dir, "elsewhere"), "do not touch")
				must(t, os.Remove(filepath.Join(dir, "out", "partner.ini")))
				must(t, os.Symlink(filepath.Join(dir, "elsewhere"), filepath.Join(dir, "out", "partner.ini")))
				replaceIn(t, dir, "dev.yaml", "partner-client-7f3a9c", "partner-client-rotated")
			},
			code: 1,
			want: []string{"partner.ini", "symlink"},
		},
		{
			name: "NUL byte for env",
			break_: func(t *testing.T, dir string) {
				testenv.WriteFile(t, filepath.Join(dir, "nul.json"), `{"v": "ab\u0000cd-long-value"}`)
			},
			args: []string{"exec", "--env-file-refs", "--", "true"},
			env:  []string{"NUL_VALUE=file:nul.json#v"},
			code: 1,
			want: []string{"NUL_VALUE", "NUL"},
		},
		{
			name:   "unknown flag",
			break_: func(*testing.T, string) {},
			args:   []string{"render", "--once", "--colour", "-c", "keyward.yaml"},
			code:   2,
			want:   []string{"unknown flag", "--colour"},
		},
		{
			name:   "missing config file",
			break_: func(*testing.T, string) {},
			args:   []string{"render", "--once", "-c", "nope.yaml"},
			code:   78,
			want:   []string{"nope.yaml"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir, before := fixture(t)
			c.break_(t, dir)
			args := c.args
			if args == nil {
				args = []string{"render", "--once", "-c", "keyward.yaml"}
			}
			r := keyward(t, dir, c.env, args...)
			checkFailure(t, r, c.code, c.want)
			if c.name == "symlinked target" {
				if got := testenv.ReadFile(t, filepath.Join(dir, "elsewhere")); got != "do not touch" {
					t.Errorf("the symlink's target was written through")
				}
				delete(before, "partner.ini")
			}
			after := snapshot(t, filepath.Join(dir, "out"))
			for name, content := range before {
				if after[name] != content {
					t.Errorf("%s changed after a failed run", name)
				}
			}
		})
	}
}

func checkFailure(t *testing.T, r result, code int, want []string) {
	t.Helper()
	assertClean(t, r)
	if r.code != code {
		t.Fatalf("exit code %d, want %d; stderr: %s", r.code, code, r.stderr)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "keyward: ") {
		t.Fatalf("want exactly one 'keyward: …' error line, got:\n%s", r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("error %q does not mention %q", strings.TrimSpace(r.stderr), w)
		}
	}
}

func replaceIn(t *testing.T, dir, name, old, new string) {
	t.Helper()
	p := filepath.Join(dir, name)
	s := testenv.ReadFile(t, p)
	if !strings.Contains(s, old) {
		t.Fatalf("%s does not contain %q", name, old)
	}
	testenv.WriteFile(t, p, strings.Replace(s, old, new, 1))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestUnwritableTargets covers a read-only target directory and a full disk,
// on small tmpfs mounts (root is not stopped by directory modes).
func TestUnwritableTargets(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; run make test as root (CI does)")
	}
	for _, c := range []struct {
		name, opts string
		fill       bool
		want       string
	}{
		{"read-only directory", "ro,size=64k", false, "read-only file system"},
		{"full disk", "size=64k", true, "no space left on device"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, _ := fixture(t)
			mnt := filepath.Join(dir, "mnt")
			must(t, os.Mkdir(mnt, 0o700))
			// Render once onto a writable mount, so there is something to lose.
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt).CombinedOutput(); err != nil {
				t.Skipf("cannot mount tmpfs here: %v: %s", err, out)
			}
			t.Cleanup(func() { _ = exec.Command("umount", mnt).Run() })
			replaceIn(t, dir, "keyward.yaml", "path: out/", "path: mnt/")
			if r := keyward(t, dir, nil, "render", "--once", "-c", "keyward.yaml"); r.code != 0 {
				t.Fatalf("render onto tmpfs: %s", r.stderr)
			}
			before := snapshot(t, mnt)
			replaceIn(t, dir, "dev.yaml", "hunter2-db-password", "hunter2-db-password-rotated-and-longer")
			if c.fill {
				f, err := os.Create(filepath.Join(mnt, "filler"))
				must(t, err)
				buf := make([]byte, 4096)
				for {
					if _, err := f.Write(buf); err != nil {
						break
					}
				}
				f.Close()
			} else {
				must(t, exec.Command("mount", "-o", "remount,ro", mnt).Run())
			}
			r := keyward(t, dir, nil, "render", "--once", "-c", "keyward.yaml")
			checkFailure(t, r, 1, []string{"app.env", c.want})
			after := snapshot(t, mnt)
			for name, content := range before {
				if after[name] != content {
					t.Errorf("%s changed after a failed render", name)
				}
			}
			for name := range after {
				if _, ok := before[name]; !ok && name != "filler" {
					t.Errorf("failed render left %s behind", name)
				}
			}
		})
	}
}

func TestExecZeroConfig(t *testing.T) {
	t.Parallel()
	dir, _ := fixture(t)
	r := keyward(t, dir, []string{
		"DB_PASSWORD=file:dev.yaml#db.password",
		"PLAIN=not-a-reference",
		"VAULT_TOKEN=s.agent-token",
		"KEYWARD_LOG_LEVEL=info",
	}, "exec", "--env-file-refs", "--", "sh", "-c", `[ "$DB_PASSWORD" = hunter2-db-password ] && [ "$PLAIN" = not-a-reference ] && [ -z "${VAULT_TOKEN+x}" ] && [ -z "${KEYWARD_LOG_LEVEL+x}" ] && echo ok`)
	if r.code != 0 || r.stdout != "ok\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestExecWithConfig(t *testing.T) {
	t.Parallel()
	dir, _ := fixture(t)
	for _, mode := range [][]string{nil, {"--supervise"}} {
		args := append(append([]string{"exec", "-c", "keyward.yaml"}, mode...), "--", "sh", "-c", `[ "$DATABASE_PASSWORD" = hunter2-db-password ] && echo ok && exit 7`)
		r := keyward(t, dir, nil, args...)
		if r.code != 7 || r.stdout != "ok\n" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", mode, r.code, r.stdout, r.stderr)
		}
	}
}

func TestExecKeepEnv(t *testing.T) {
	t.Parallel()
	dir, _ := fixture(t)
	replaceIn(t, dir, "keyward.yaml", "env:\n", "keep_env: [VAULT_TOKEN]\nenv:\n")
	for _, mode := range [][]string{nil, {"--supervise"}} {
		args := append(append([]string{"exec", "-c", "keyward.yaml"}, mode...), "--", "sh", "-c", `[ "$VAULT_TOKEN" = s.passed-on ] && [ -z "${KEYWARD_LOG_FORMAT+x}" ] && echo ok`)
		r := keyward(t, dir, []string{"VAULT_TOKEN=s.passed-on", "KEYWARD_LOG_FORMAT=text"}, args...)
		if r.code != 0 || r.stdout != "ok\n" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", mode, r.code, r.stdout, r.stderr)
		}
	}
}

func TestExecNotExecutable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	testenv.WriteFile(t, filepath.Join(dir, "script.sh"), "#!/bin/sh\necho hi\n") // mode 0600: not executable
	for _, mode := range [][]string{nil, {"--supervise"}} {
		args := append(append([]string{"exec"}, mode...), "--", "./script.sh")
		r := keyward(t, dir, nil, args...)
		checkFailure(t, r, 126, []string{"script.sh"})
	}
}

func TestExecCommandNotFound(t *testing.T) {
	t.Parallel()
	for _, mode := range [][]string{nil, {"--supervise"}} {
		args := append(append([]string{"exec"}, mode...), "--", "no-such-command-kw")
		r := keyward(t, t.TempDir(), nil, args...)
		checkFailure(t, r, 127, []string{"no-such-command-kw"})
	}
}

func TestExecSupervisedSignalExit(t *testing.T) {
	t.Parallel()
	r := keyward(t, t.TempDir(), nil, "exec", "--supervise", "--", "sh", "-c", "kill -TERM $$")
	if r.code != 128+15 {
		t.Fatalf("child killed by SIGTERM: exit %d, want 143; stderr %s", r.code, r.stderr)
	}
}

func TestGet(t *testing.T) {
	t.Parallel()
	dir, _ := fixture(t)
	r := keyward(t, dir, nil, "get", "file:tls.crt")
	if r.code != 0 || r.stdout != fixtureValues[3] {
		t.Fatalf("get: exit %d, %d bytes; stderr %s", r.code, len(r.stdout), r.stderr)
	}
	r = keyward(t, dir, nil, "get", "-n", "file:dev.yaml#db.user")
	if r.code != 0 || r.stdout != "app\n" {
		t.Fatalf("get -n: exit %d, stdout %q; stderr %s", r.code, r.stdout, r.stderr)
	}
	r = keyward(t, dir, nil, "get", "file:dev.yaml#")
	checkFailure(t, r, 2, []string{"position"})
}

func TestCheck(t *testing.T) {
	t.Parallel()
	dir, _ := fixture(t)
	r := keyward(t, dir, nil, "check", "-c", "keyward.yaml")
	assertClean(t, r)
	if r.code != 0 {
		t.Fatalf("check: exit %d: %s", r.code, r.stderr)
	}
	for _, name := range []string{"DB_PASSWORD", "STRIPE_KEY", "TLS_CERT", "19"} {
		if !strings.Contains(r.stdout, name) {
			t.Errorf("check output lacks %q:\n%s", name, r.stdout)
		}
	}
	r = keyward(t, dir, nil, "check", "--offline", "-c", "keyward.yaml")
	if r.code != 0 {
		t.Fatalf("check --offline: exit %d: %s", r.code, r.stderr)
	}
}
