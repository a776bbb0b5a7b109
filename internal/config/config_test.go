package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/tlsclient"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/render"
)

// problemsOf returns the problems of an *Error, failing the test for any
// other error.
func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	if err == nil {
		return nil
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	return ce.Problems
}

// want is an expected problem: its line and a substring of its message.
type want struct {
	line int
	msg  string
}

func checkProblems(t *testing.T, err error, wants []want) {
	t.Helper()
	got := problemsOf(t, err)
	if len(got) != len(wants) {
		t.Fatalf("got %d problems, want %d:\n%s", len(got), len(wants), dump(got))
	}
	for i, w := range wants {
		if got[i].Line != w.line || !strings.Contains(got[i].Msg, w.msg) {
			t.Errorf("problem %d = line %d %q, want line %d containing %q\nall:\n%s", i, got[i].Line, got[i].Msg, w.line, w.msg, dump(got))
		}
	}
}

func dump(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "  line %d: %s\n", p.Line, p.Msg)
	}
	return b.String()
}

func TestParseValid(t *testing.T) {
	t.Parallel()
	src := `version: 1
providers:
  vault-eu: {kind: vault, address: https://vault.eu:8200}
secrets:
  DB: vault-eu://secret/db#password
  KEY: file:dev.yaml#api.key
  TLS: k8s://ns/tls#tls.crt
env:
  DATABASE_PASSWORD: DB
keep_env: [VAULT_TOKEN]
files:
  - path: out/app.env
    secrets: [DB, KEY]
  - path: /run/app.json
    secrets: [DB]
  - path: out/tls.crt
    secret: TLS
    mode: "0440"
    owner: 1000
    group: 0
    atomic_dir: true
  - path: conf.ini
    template_file: tmpl/conf.tmpl
  - path: inline.ini
    template: |
      key = {{ secret "KEY" }}
      {{ if true }}{{ "DB" | secret }}{{ end }}
tokens:
  api:
    token_url: http://127.0.0.1:9000/token
    client_id: file:dev.yaml#partner.client_id
    client_secret: vault://secret/partner#secret
    file: out/token
  other:
    token_url: https://auth.example/token
    client_id: vault://secret/x#id
    client_secret: vault://secret/x#secret
    auth: post
    refresh_before: 2m
    default_lifetime: 1h
    scopes: [read, write]
    params: {tenant: t1}
    file: /run/token.json
    file_format: json
watch: {jitter: 0.2}
on_change: {signal: SIGHUP}
server: {listen: "unix:run/kw.sock"}
`
	dir := t.TempDir()
	c, err := Parse([]byte(src), filepath.Join(dir, "keyward.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Dir != dir {
		t.Errorf("Dir = %q, want %q", c.Dir, dir)
	}
	if got := c.Providers["vault-eu"]; got.Kind != "vault" || got.Name != "vault-eu" || got.Line != 3 {
		t.Errorf("provider = %+v", got)
	}
	if s := c.Secrets["KEY"]; s.Ref.Scheme != "file" || s.Ref.Path != "dev.yaml" || s.Ref.Field != "api.key" || s.Line != 6 {
		t.Errorf("secret KEY = %+v", s)
	}
	wantFiles := []struct {
		path, format string
		mode         os.FileMode
	}{
		{filepath.Join(dir, "out/app.env"), FormatDotenv, 0o600},
		{"/run/app.json", FormatJSON, 0o600},
		{filepath.Join(dir, "out/tls.crt"), FormatRaw, 0o440},
		{filepath.Join(dir, "conf.ini"), FormatTemplate, 0o600},
		{filepath.Join(dir, "inline.ini"), FormatTemplate, 0o600},
	}
	if len(c.Files) != len(wantFiles) {
		t.Fatalf("got %d files", len(c.Files))
	}
	for i, w := range wantFiles {
		f := c.Files[i]
		if f.Path != w.path || f.Format != w.format || f.Mode != w.mode {
			t.Errorf("files[%d] = %s %s %04o, want %s %s %04o", i, f.Path, f.Format, f.Mode, w.path, w.format, w.mode)
		}
	}
	if f := c.Files[2]; f.Owner == nil || *f.Owner != 1000 || f.Group == nil || *f.Group != 0 || !f.AtomicDir || f.AllowSymlink || f.Line != 16 {
		t.Errorf("files[2] = %+v", f)
	}
	if got, want := c.Files[3].TemplateFile, filepath.Join(dir, "tmpl/conf.tmpl"); got != want {
		t.Errorf("template_file = %q, want %q", got, want)
	}
	api := c.Tokens["api"]
	if api.AuthStyle != AuthBasic || api.RefreshBefore != DefaultRefreshBefore || api.FileFormat != TokenFileRaw ||
		api.File != filepath.Join(dir, "out/token") || api.ClientID.Field != "partner.client_id" || api.DefaultLifetime != 0 {
		t.Errorf("token api = %+v", api)
	}
	other := c.Tokens["other"]
	if other.AuthStyle != AuthPost || other.RefreshBefore != 2*time.Minute || other.DefaultLifetime != time.Hour ||
		other.FileFormat != TokenFileJSON || !reflect.DeepEqual(other.Scopes, []string{"read", "write"}) || other.Params["tenant"] != "t1" {
		t.Errorf("token other = %+v", other)
	}
	if c.Watch == nil || c.Watch.Interval != DefaultWatchInterval || c.Watch.Jitter != 0.2 {
		t.Errorf("watch = %+v", c.Watch)
	}
	if c.OnChange == nil || c.OnChange.Signal != "HUP" {
		t.Errorf("on_change = %+v, want signal normalised to HUP", c.OnChange)
	}
	if c.Server == nil || c.Server.Listen != "unix:"+filepath.Join(dir, "run/kw.sock") {
		t.Errorf("server = %+v", c.Server)
	}
	if !reflect.DeepEqual(c.KeepEnv, []string{"VAULT_TOKEN"}) || c.Env["DATABASE_PASSWORD"] != "DB" {
		t.Errorf("env = %v keep_env = %v", c.Env, c.KeepEnv)
	}
}

func TestParseMinimal(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte("version: 1\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if c.Dir != wd {
		t.Errorf("Dir = %q, want the working directory %q", c.Dir, wd)
	}
	if c.Watch != nil || c.OnChange != nil || c.Server != nil || c.Files != nil {
		t.Errorf("optional sections set: %+v", c)
	}
	c, err = Parse([]byte("version: 1\nwatch: {}\non_change: none\nsecrets:\nfiles:\n"), "k.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Watch == nil || c.Watch.Interval != 5*time.Minute || c.Watch.Jitter != 0.1 {
		t.Errorf("watch defaults = %+v", c.Watch)
	}
	if c.OnChange == nil || !c.OnChange.None {
		t.Errorf("on_change = %+v", c.OnChange)
	}
}

func TestParseProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		src   string
		wants []want
	}{
		{"empty", "", []want{{1, "empty config"}}},
		{"syntax", "version: 1\nsecrets:\n  A: [\n", []want{{3, "invalid YAML"}}},
		{"not a mapping", "- a\n", []want{{1, "must be a mapping"}}},
		{"two documents", "version: 1\n---\nversion: 1\n", []want{{2, "more than one YAML document"}}},
		{"no version", "secrets: {}\n", []want{{1, "version: 1 is required"}}},
		{"wrong version", "version: 2\n", []want{{1, "version: unsupported version 2"}}},
		{"version string", "version: \"1\"\n", []want{{1, "version: must be an integer"}}},
		{"unknown top key", "version: 1\nsecrts: {}\n", []want{{2, `unknown key "secrts" (did you mean "secrets"?)`}}},
		{"duplicate key", "version: 1\nsecrets:\n  A: vault://a#b\n  A: vault://c#d\n", []want{{4, `secrets: duplicate key "A" (first at line 3)`}}},
		{"bad reference", "version: 1\nsecrets:\n  DB: vault://\n", []want{{3, `secrets.DB: invalid reference "vault://" at position 9: empty path`}}},
		{"pasted value is not echoed", "version: 1\nsecrets:\n  DB: hunter2\n", []want{{3, "secrets.DB: invalid reference at position 1: missing scheme"}}},
		{"unknown scheme", "version: 1\nsecrets:\n  DB: nope://x\n", []want{{3, `secrets.DB: unknown provider "nope"`}}},
		{"reference not a string", "version: 1\nsecrets:\n  DB: [a]\n", []want{{3, "secrets.DB: must be a string"}}},
		{"missing reference", "version: 1\nsecrets:\n  DB:\n", []want{{3, "secrets.DB: missing reference"}}},
		{"bad secret name", "version: 1\nsecrets:\n  db-pass: vault://a#b\n", []want{{3, "secrets.db-pass: invalid secret name"}}},
		{"env unknown secret", "version: 1\nenv:\n  X: NOPE\n", []want{{3, `env.X: unknown secret "NOPE"`}}},
		{"env bad name", "version: 1\nsecrets: {A: vault://a#b}\nenv:\n  1X: A\n", []want{{4, "env.1X: invalid environment variable name"}}},
		{"keep_env", "version: 1\nkeep_env: [VAULT_TOKEN, VAULT_TOKEN, 'a b']\n", []want{{2, "keep_env[1]: VAULT_TOKEN listed twice"}, {2, "keep_env[2]: invalid environment variable name"}}},
		{"provider bad name", "version: 1\nproviders:\n  Vault_EU: {kind: vault}\n", []want{{3, "providers.Vault_EU: invalid instance name"}}},
		{"provider reserved name", "version: 1\nproviders:\n  sm: {kind: gcpsm}\n", []want{{3, `instance name "sm" is reserved`}}},
		{"provider no kind", "version: 1\nproviders:\n  v2: {address: x}\n", []want{{3, "providers.v2: kind is required"}}},
		{"provider null", "version: 1\nproviders:\n  v2:\n", []want{{3, "providers.v2: kind is required"}}},
		{"provider unknown kind", "version: 1\nproviders:\n  v2:\n    kind: consul\n", []want{{4, `providers.v2.kind: unknown provider kind "consul"`}}},
		{"provider shadows builtin", "version: 1\nproviders:\n  vault: {kind: awssm}\n", []want{{3, `must have kind "vault"`}}},
		{"file unknown key", "version: 1\nsecrets: {A: vault://a#b}\nfiles:\n  - path: /x\n    secret: A\n    fromat: raw\n", []want{{6, `files[0]: unknown key "fromat" (did you mean "format"?)`}}},
		{"file bad format", "version: 1\nsecrets: {A: vault://a#b}\nfiles:\n  - path: /x\n    format: xml\n    secret: A\n", []want{{5, `files[0].format: unknown format "xml"`}}},
		{"file no content", "version: 1\nfiles:\n  - path: /x\n", []want{{3, "files[0]: needs secret (raw)"}}},
		{"file no path", "version: 1\nsecrets: {A: vault://a#b}\nfiles:\n  - secret: A\n", []want{{4, "files[0].path: path is required"}}},
		{"file directory path", "version: 1\nsecrets: {A: vault://a#b}\nfiles:\n  - path: out/\n    secret: A\n", []want{{4, "files[0].path: must name a file"}}},
		{"raw needs secret", "version: 1\nsecrets: {A: vault://a#b}\nfiles:\n  - path: /x\n    format: raw\n    secrets: [A]\n", []want{{4, "files[0]: format raw needs secret"}, {6, "files[0].secrets: format raw does not take secrets"}}},
		{"dotenv needs secrets", "version: 1\nsecrets: {A: vault://a#b}\nfiles:\n  - path: /x\n    format: dotenv\n    secrets: []\n", []want{{6, "files[0].secrets: must list at least one secret"}}},
		{"dotenv unknown secret", "version: 1\nsecrets: {A: vault://a#b}\nfiles:\n  - path: /x\n    secrets:\n      - A\n      - B\n      - A\n", []want{{7, `files[0].secrets[1]: unknown secret "B"`}, {8, `files[0].secrets[2]: secret "A" listed twice`}}},
		{"raw unknown secret", "version: 1\nfiles:\n  - path: /x\n    secret: B\n", []want{{4, `files[0].secret: unknown secret "B"`}}},
		{"template both", "version: 1\nfiles:\n  - path: /x\n    format: template\n    template: a\n    template_file: b\n", []want{{6, "give template or template_file, not both"}}},
		{"template neither", "version: 1\nfiles:\n  - path: /x\n    format: template\n", []want{{3, "format template needs template or template_file"}}},
		{"template syntax", "version: 1\nfiles:\n  - path: /x\n    template: |\n      line one\n      {{ secret \"A\" \n", []want{{6, "files[0].template: invalid template"}}},
		{"template unknown func", "version: 1\nfiles:\n  - path: /x\n    template: |\n      ok\n      {{ secrte \"A\" }}\n", []want{{6, `function "secrte" not defined`}}},
		{"template unknown secret", "version: 1\nsecrets: {A: vault://a#b}\nfiles:\n  - path: /x\n    template: |\n      {{ secret \"A\" }}\n      {{ if true }}{{ \"B\" | secret }}{{ end }}\n", []want{{7, `files[0].template: unknown secret "B"`}}},
		{"mode unquoted", "version: 1\nsecrets: {A: vault://a#b}\nfiles:\n  - path: /x\n    secret: A\n    mode: 0400\n", []want{{6, "files[0].mode: must be a quoted octal string"}}},
		{"mode world-writable", "version: 1\nsecrets: {A: vault://a#b}\nfiles:\n  - path: /x\n    secret: A\n    mode: \"0606\"\n", []want{{6, "files[0].mode: mode 0606: a secret file must not be writable by group or others"}}},
		{"mode executable", "version: 1\nsecrets: {A: vault://a#b}\nfiles:\n  - path: /x\n    secret: A\n    mode: \"0700\"\n", []want{{6, "must not be executable"}}},
		{"mode setuid", "version: 1\nsecrets: {A: vault://a#b}\nfiles:\n  - path: /x\n    secret: A\n    mode: \"4600\"\n", []want{{6, "setuid"}}},
		{"owner negative", "version: 1\nsecrets: {A: vault://a#b}\nfiles:\n  - path: /x\n    secret: A\n    owner: -1\n", []want{{6, "files[0].owner: must be a uid"}}},
		{"duplicate paths", "version: 1\nsecrets: {A: vault://a#b}\nfiles:\n  - path: /x/a\n    secret: A\n  - path: /x/../x/a\n    secret: A\n", []want{{6, "files[1].path: /x/a is also written by files[0].path"}}},
		{"token file clashes", "version: 1\nsecrets: {A: vault://a#b}\nfiles:\n  - path: /x/a\n    secret: A\ntokens:\n  t:\n    token_url: https://a/t\n    client_id: vault://a#id\n    client_secret: vault://a#s\n    file: /x/a\n", []want{{11, "tokens.t.file: /x/a is also written by files[0].path"}}},
		{"token unknown key", "version: 1\ntokens:\n  t:\n    token_url: https://a/t\n    client_id: vault://a#id\n    client_secret: vault://a#s\n    file: /t\n    scope: [x]\n", []want{{8, `tokens.t: unknown key "scope" (did you mean "scopes"?)`}}},
		{"token required", "version: 1\ntokens:\n  t: {file: /t}\n", []want{{3, "token_url is required"}, {3, "client_id is required"}, {3, "client_secret is required"}}},
		{"token http", "version: 1\ntokens:\n  t:\n    token_url: http://auth.example/t\n    client_id: vault://a#id\n    client_secret: vault://a#s\n    file: /t\n", []want{{4, "tokens.t.token_url: must use https"}}},
		{"token credentials in url", "version: 1\ntokens:\n  t:\n    token_url: https://u:secretpw@auth.example/t\n    client_id: vault://a#id\n    client_secret: vault://a#s\n    file: /t\n", []want{{4, "must not contain credentials"}}},
		{"token bad refs", "version: 1\ntokens:\n  t:\n    token_url: https://a/t\n    client_id: vault://\n    client_secret: nope://a#s\n    file: /t\n", []want{{5, "tokens.t.client_id: invalid reference"}, {6, `tokens.t.client_secret: unknown provider "nope"`}}},
		{"token enums", "version: 1\ntokens:\n  t:\n    token_url: https://a/t\n    client_id: vault://a#id\n    client_secret: vault://a#s\n    auth: header\n    file: /t\n    file_format: xml\n", []want{{7, `tokens.t.auth: unknown auth "header"`}, {9, `unknown file_format "xml"`}}},
		{"token durations", "version: 1\ntokens:\n  t:\n    token_url: https://a/t\n    client_id: vault://a#id\n    client_secret: vault://a#s\n    refresh_before: 5 minutes\n    default_lifetime: 30s\n    file: /t\n", []want{{7, `tokens.t.refresh_before: invalid duration "5 minutes"`}}},
		{"token lifetime", "version: 1\ntokens:\n  t:\n    token_url: https://a/t\n    client_id: vault://a#id\n    client_secret: vault://a#s\n    default_lifetime: 30s\n    file: /t\n", []want{{7, "must be longer than refresh_before"}}},
		{"token params", "version: 1\ntokens:\n  t:\n    token_url: https://a/t\n    client_id: vault://a#id\n    client_secret: vault://a#s\n    params:\n      grant_type: password\n    file: /t\n", []want{{8, `tokens.t.params.grant_type: parameter "grant_type" is set by keyward`}}},
		{"token no sink", "version: 1\ntokens:\n  t:\n    token_url: https://a/t\n    client_id: vault://a#id\n    client_secret: vault://a#s\n", []want{{3, "token goes nowhere"}}},
		{"token bad name", "version: 1\nserver: {listen: \"127.0.0.1:1\"}\ntokens:\n  a/b:\n    token_url: https://a/t\n    client_id: vault://a#id\n    client_secret: vault://a#s\n", []want{{4, "tokens.a/b: invalid token name"}}},
		{"watch", "version: 1\nwatch:\n  interval: 0s\n  jitter: 2\n  splay: 1\n", []want{{3, "watch.interval: must be positive"}, {4, "watch.jitter: must be between 0 and 1"}, {5, `watch: unknown key "splay"`}}},
		{"watch bad duration", "version: 1\nwatch: {interval: 300}\n", []want{{2, "watch.interval: must be a duration string"}}},
		{"on_change two actions", "version: 1\non_change:\n  signal: HUP\n  restart: true\n", []want{{2, "on_change: set exactly one of"}}},
		{"on_change bad signal", "version: 1\non_change: {signal: KILL}\n", []want{{2, `on_change.signal: unknown signal "KILL"`}}},
		{"on_change restart false", "version: 1\non_change: {restart: false}\n", []want{{2, "on_change: set exactly one of"}}},
		{"on_change unknown", "version: 1\non_change: {reload: true}\n", []want{{2, `on_change: unknown key "reload"`}}},
		{"on_change scalar", "version: 1\non_change: restart\n", []want{{2, "on_change: must be none or one of"}}},
		{"on_change empty command", "version: 1\non_change: {command: []}\n", []want{{2, "on_change.command: must name a program"}}},
		{"server remote", "version: 1\nserver:\n  listen: \"0.0.0.0:8099\"\n", []want{{3, "server.listen: listening on a non-loopback address"}}},
		{"server empty host", "version: 1\nserver: {listen: \":8099\"}\n", []want{{2, "non-loopback"}}},
		{"server bad", "version: 1\nserver: {listen: localhost}\n", []want{{2, "server.listen: must be HOST:PORT"}}},
		{"server unknown key", "version: 1\nserver: {listen: \"127.0.0.1:1\", tls: true}\n", []want{{2, `server: unknown key "tls"`}}},
		{"bool type", "version: 1\nsecrets: {A: vault://a#b}\nfiles:\n  - path: /x\n    secret: A\n    atomic_dir: \"yes\"\n", []want{{6, "files[0].atomic_dir: must be true or false"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte(tt.src), "keyward.yaml")
			if err == nil {
				t.Fatalf("no error; config %+v", c)
			}
			if c != nil {
				t.Errorf("config returned with an error")
			}
			checkProblems(t, err, tt.wants)
		})
	}
}

func TestParseValidEdgeCases(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"server remote allowed":  "version: 1\nserver: {listen: \"0.0.0.0:8099\", allow_remote: true}\n",
		"server localhost":       "version: 1\nserver: {listen: \"localhost:8099\"}\n",
		"server ipv6 loopback":   "version: 1\nserver: {listen: \"[::1]:8099\"}\n",
		"http token on loopback": "version: 1\nserver: {listen: \"127.0.0.1:1\"}\ntokens:\n  t: {token_url: \"http://localhost:8080/t\", client_id: \"vault://a#i\", client_secret: \"vault://a#s\"}\n",
		"anchors and merge":      "version: 1\nsecrets:\n  A: &r vault://a#b\n  B: *r\nfiles:\n  - &f {path: /a, secret: A, mode: \"0400\"}\n  - <<: *f\n    path: /b\n",
		"compat references":      "version: 1\nsecrets:\n  A: arn:aws:secretsmanager:eu-west-1:123:secret:db:password\n  B: sm://proj/sec#3\n  C: vault:secret/data/x#key\n",
		"mode 0o form":           "version: 1\nsecrets: {A: vault://a#b}\nfiles: [{path: /a, secret: A, mode: \"0o644\"}]\n",
		"on_change none key":     "version: 1\non_change: {none: true}\n",
		"on_change command":      "version: 1\non_change: {command: [/bin/reload, --all]}\n",
		"builtin override":       "version: 1\nproviders:\n  file: {kind: file}\n",
	}
	for name, src := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := Parse([]byte(src), "keyward.yaml"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	t.Parallel()
	src := `version: 1
secrets:
  DB: vault://
  OK: vault://secret/ok#v
env:
  X: MISSING
  Y: DB
files:
  - path: /a
    format: raw
    secret: OK
    colour: blue
  - path: /a
    secret: OK
tokens:
  t:
    token_url: http://auth.example/token
    client_id: vault://a#id
    client_secret: vault://a#s
    file: /t
`
	_, err := Parse([]byte(src), "keyward.yaml")
	// env.Y names DB, whose reference is broken: reported once, under secrets.
	checkProblems(t, err, []want{
		{3, "secrets.DB: invalid reference"},
		{6, `env.X: unknown secret "MISSING"`},
		{12, `files[0]: unknown key "colour"`},
		{13, "files[1].path: /a is also written by files[0].path"},
		{17, "tokens.t.token_url: must use https"},
	})
	msg := err.Error()
	if !strings.HasPrefix(msg, "keyward.yaml: 5 problems: line 3: secrets.DB: invalid reference \"vault://\" at position 9: empty path; line 6: ") {
		t.Errorf("Error() = %q", msg)
	}
	if strings.Contains(msg, "\n") || strings.Contains(msg, "blue") {
		t.Errorf("Error() must be one line and not echo values: %q", msg)
	}
}

func TestErrorFormat(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte("version: 1\nsecrets:\n  DB: vault://\n"), "keyward.yaml")
	if got, want := err.Error(), `keyward.yaml:3: secrets.DB: invalid reference "vault://" at position 9: empty path`; got != want {
		t.Errorf("Error() = %q\nwant      %q", got, want)
	}
	e := &Error{Path: "k.yaml", Problems: []Problem{{0, "a"}, {7, "b\nc"}}}
	if got, want := e.Error(), "k.yaml: 2 problems: a; line 7: b c"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestErrorsDoNotEchoValues(t *testing.T) {
	t.Parallel()
	src := "version: 1\nsecrets:\n  A: s3cr3tvalue\nfiles:\n  - path: /x\n    bogus: s3cr3tvalue\n    secret: A\n    owner: s3cr3tvalue\ntokens:\n  t:\n    token_url: http://user:s3cr3tvalue@example.com/\n    client_id: s3cr3tvalue\n    client_secret: s3cr3tvalue\n    file: /t\n"
	_, err := Parse([]byte(src), "keyward.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), "s3cr3tvalue") {
		t.Errorf("error echoes a value: %v", err)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := Load(t.Context(), filepath.Join(dir, "missing.yaml"))
	var ce *Error
	if !errors.As(err, &ce) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing file = %v; want an *Error wrapping fs.ErrNotExist", err)
	}
	if strings.Count(err.Error(), "missing.yaml") != 1 {
		t.Errorf("path repeated: %v", err)
	}
	path := filepath.Join(dir, "keyward.yaml")
	if err := os.WriteFile(path, []byte("version: 1\nsecrets: {A: file:dev.yaml#a}\nfiles: [{path: out/a, secret: A}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != path || c.Dir != dir || c.Files[0].Path != filepath.Join(dir, "out", "a") {
		t.Errorf("Load = Path %q Dir %q file %q", c.Path, c.Dir, c.Files[0].Path)
	}
	if r := c.Secrets["A"].Ref; r.Path != "dev.yaml" || r.IsAbs() {
		t.Errorf("file reference rewritten: %+v", r)
	}
}

func TestDesignExample(t *testing.T) {
	t.Parallel()
	c, err := Load(t.Context(), "testdata/design.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if len(c.Providers) != 3 || c.Providers["vault-eu"].Kind != "vault" || c.Providers["aws"].Kind != "awssm" {
		t.Errorf("providers = %+v", c.Providers)
	}
	if len(c.Secrets) != 4 || len(c.Env) != 2 || len(c.Files) != 3 || len(c.Tokens) != 1 {
		t.Errorf("sections: %d secrets, %d env, %d files, %d tokens", len(c.Secrets), len(c.Env), len(c.Files), len(c.Tokens))
	}
	if f := c.Files[0]; f.Format != FormatDotenv || f.Mode != 0o400 || f.Owner == nil || *f.Owner != 1000 {
		t.Errorf("files[0] = %+v", f)
	}
	if c.OnChange.Signal != "HUP" || c.Server.Listen != "127.0.0.1:8099" || c.Watch.Interval != 5*time.Minute {
		t.Errorf("on_change %+v server %+v watch %+v", c.OnChange, c.Server, c.Watch)
	}
	tok := c.Tokens["partner-api"]
	if tok.ClientSecret.Scheme != "vault" || tok.AuthStyle != AuthBasic || tok.File != "/run/secrets/partner-token" {
		t.Errorf("token = %+v", tok)
	}
}

func TestValidateAfterChange(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte("version: 1\nsecrets: {A: vault://a#b}\nfiles: [{path: /a, secret: A}]\n"), "keyward.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Files[0].Mode = 0o666
	c.Env = map[string]string{"X": "B"}
	checkProblems(t, c.Validate(), []want{{0, `env.X: unknown secret "B"`}, {3, "files[0].mode: mode 0666"}})

	hand := &Config{Version: 1, Secrets: map[string]Secret{"A": {Ref: providers.Ref{Scheme: "vault", Path: "x"}, Line: 4}}}
	if err := hand.Validate(); err != nil {
		t.Errorf("Validate of a config built in code: %v", err)
	}
}

type vaultOptions struct {
	Address string `yaml:"address"`
	Auth    struct {
		Method string `yaml:"method"`
		Role   string `yaml:"role"`
	} `yaml:"auth"`
	Timeout time.Duration `yaml:"timeout"`
	Retries int           `yaml:"retries"`
}

func TestProviderDecode(t *testing.T) {
	t.Parallel()
	src := `version: 1
providers:
  vault:
    kind: vault
    address: https://vault:8200
    auth: {method: kubernetes, role: payments}
    timeout: 5s
  bad:
    kind: vault
    adress: https://x
    auth:
      methd: token
  typed:
    kind: vault
    retries: many
`
	c, err := Parse([]byte(src), "keyward.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var o vaultOptions
	if err := c.Providers["vault"].Decode(&o); err != nil {
		t.Fatal(err)
	}
	if o.Address != "https://vault:8200" || o.Auth.Method != "kubernetes" || o.Auth.Role != "payments" || o.Timeout != 5*time.Second {
		t.Errorf("decoded %+v", o)
	}
	checkProblems(t, c.Providers["bad"].Decode(&vaultOptions{}), []want{
		{10, `providers.bad: unknown key "adress" (did you mean "address"?)`},
		{12, `providers.bad.auth: unknown key "methd" (did you mean "method"?)`},
	})
	err = c.Providers["typed"].Decode(&vaultOptions{})
	checkProblems(t, err, []want{{15, "providers.typed.retries: cannot unmarshal !!str into int"}})
	if strings.Contains(err.Error(), "many") {
		t.Errorf("Decode error echoes the value: %v", err)
	}
	if err := (Provider{Name: "x", Kind: "vault"}).Decode(&o); err != nil {
		t.Errorf("Decode of a Provider built in code: %v", err)
	}
	var m map[string]any
	if err := c.Providers["vault"].Decode(&m); err != nil || m["address"] != "https://vault:8200" || m["kind"] != nil {
		t.Errorf("Decode into a map = %v, %v", m, err)
	}
}

func TestFileModeZeroAndUnreadable(t *testing.T) {
	t.Parallel()
	const base = "version: 1\nsecrets: {A: vault://a#b}\nfiles:\n  - path: /x\n    secret: A\n    mode: "
	tests := []struct{ mode, want string }{
		{`"0000"`, `files[0].mode: mode 0000: nobody could read the file (leave mode out for the default 0600)`},
		{`"0o000"`, `files[0].mode: mode 0000: nobody could read the file`},
		{`"0040"`, `files[0].mode: mode 0040: the file's owner could not read it`},
		{`"0200"`, `files[0].mode: mode 0200: the file's owner could not read it`},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(base+tt.mode+"\n"), "k.yaml")
		if err == nil || !strings.Contains(err.Error(), "k.yaml:6: "+tt.want) {
			t.Errorf("mode %s: err = %v, want %q", tt.mode, err, tt.want)
		}
	}
}

func TestWarningsReadableModes(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(`version: 1
secrets: {A: vault://a#b}
files:
  - {path: /private, secret: A, mode: "0400"}
  - {path: /default, secret: A}
  - path: /group
    secret: A
    mode: "0440"
  - {path: /world, secret: A, mode: "0644"}
`), "k.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := c.Warnings()
	want := []Problem{
		{Line: 8, Msg: "files[2].mode: mode 0440 lets the members of the file's group read /group"},
		{Line: 9, Msg: "files[3].mode: mode 0644 lets every user of the machine read /world"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Warnings() = %+v\nwant %+v", got, want)
	}
}

func TestFileDialect(t *testing.T) {
	t.Parallel()
	const base = "version: 1\nsecrets: {A: vault://a#b}\nfiles:\n"
	for _, d := range render.Dialects {
		c, err := Parse([]byte(base+"  - {path: /a.env, secrets: [A], dialect: "+string(d)+"}\n"), "k.yaml")
		if err != nil || c.Files[0].Dialect != string(d) || c.Files[0].Format != FormatDotenv {
			t.Errorf("dialect %s: %+v, %v", d, c, err)
		}
	}
	tests := []struct{ file, want string }{
		{"{path: /a.env, secrets: [A], dialect: ruby}", `k.yaml:4: files[0].dialect: unknown dotenv dialect "ruby" (want bash, docker, python-dotenv, node, godotenv)`},
		{"{path: /a.json, secrets: [A], dialect: node}", `k.yaml:4: files[0].dialect: dialect applies to format dotenv, not json`},
		{"{path: /a, secret: A, dialect: bash}", `k.yaml:4: files[0].dialect: dialect applies to format dotenv, not raw`},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(base+"  - "+tt.file+"\n"), "k.yaml")
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: err = %v\nwant %s", tt.file, err, tt.want)
		}
	}
}

// TestTokenAuthMethods reads each client authentication method's keys.
func TestTokenAuthMethods(t *testing.T) {
	t.Parallel()
	c, err := Load(t.Context(), "testdata/tokens.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Token{
		"basic":            {AuthStyle: AuthBasic, ClientSecret: providers.Ref{Scheme: "vault", Path: "secret/app", Field: "client_secret"}},
		"jwt":              {AuthStyle: AuthPrivateKeyJWT, PrivateKey: providers.Ref{Scheme: "vault", Path: "secret/app", Field: "key_pem"}, KeyID: "k1", SigningAlg: "PS256"},
		"jwt-default-alg":  {AuthStyle: AuthPrivateKeyJWT, PrivateKey: providers.Ref{Scheme: "file", Path: "/etc/kw/client.key"}},
		"mtls":             {AuthStyle: AuthTLSClient, Certificate: providers.Ref{Scheme: "vault", Path: "secret/app", Field: "cert_pem"}, PrivateKey: providers.Ref{Scheme: "vault", Path: "secret/app", Field: "key_pem"}},
		"refreshed":        {Grant: GrantRefreshToken, AuthStyle: AuthBasic, RefreshToken: providers.Ref{Scheme: "vault", Path: "secret/app", Field: "refresh_token"}, ClientSecret: providers.Ref{Scheme: "vault", Path: "secret/app", Field: "client_secret"}},
		"public-client":    {Grant: GrantRefreshToken, AuthStyle: AuthNone, RefreshToken: providers.Ref{Scheme: "file", Path: "/var/lib/app/refresh_token"}},
		"mtls-self-signed": {AuthStyle: AuthSelfSignedTLSClient, Certificate: providers.Ref{Scheme: "k8s", Path: "apps/client-tls", Field: "tls.crt"}, PrivateKey: providers.Ref{Scheme: "k8s", Path: "apps/client-tls", Field: "tls.key"}},
	}
	if v := c.Tokens["verified"].Verify; v == nil || *v != (TokenVerify{JWKSURL: "https://auth.example/.well-known/jwks.json", Issuer: "https://auth.example/", Audience: "https://api.example"}) {
		t.Errorf("verify = %+v", v)
	}
	if got, want := c.Tokens["verified"].TLS, (tlsclient.Options{CACert: filepath.Join(c.Dir, "ca", "issuer.pem"), ServerName: "auth.internal"}); got != want {
		t.Errorf("tls = %+v, want %+v (ca_cert relative to the config)", got, want)
	}
	sources := map[string]Token{
		"vault-token": {Source: TokenSourceVault, Provider: "vault"},
		"aws-role":    {Source: TokenSourceAWS, Provider: "awssm", RoleARN: "arn:aws:iam::123456789012:role/deployer", SessionName: "ci", Duration: time.Hour, Profile: "deploy", FileFormat: TokenFileCredentials},
		"aws-process": {Source: TokenSourceAWS, Provider: "awssm", FileFormat: TokenFileCredentialProcess},
		"gcp-access":  {Source: TokenSourceGCP, Provider: "gcpsm", Scopes: []string{"https://www.googleapis.com/auth/cloud-platform"}},
		"gcp-id":      {Source: TokenSourceGCP, Provider: "gcpsm", Audience: "https://api.example.run.app"},
	}
	for name, w := range sources {
		got := c.Tokens[name]
		if got.Source != w.Source || got.Provider != w.Provider || got.RoleARN != w.RoleARN || got.SessionName != w.SessionName ||
			got.Duration != w.Duration || got.Profile != w.Profile || got.Audience != w.Audience || !reflect.DeepEqual(got.Scopes, w.Scopes) ||
			(w.FileFormat != "" && got.FileFormat != w.FileFormat) {
			t.Errorf("token %s = %+v, want %+v", name, got, w)
		}
	}
	for name, w := range want {
		got := c.Tokens[name]
		if got.Source != TokenSourceOAuth2 {
			t.Errorf("token %s: source %q", name, got.Source)
		}
		if w.Grant == "" {
			w.Grant = GrantClientCredentials
		}
		if got.Grant != w.Grant || got.RefreshToken.String() != w.RefreshToken.String() || got.AuthStyle != w.AuthStyle || got.KeyID != w.KeyID || got.SigningAlg != w.SigningAlg ||
			got.ClientSecret.String() != w.ClientSecret.String() || got.PrivateKey.String() != w.PrivateKey.String() || got.Certificate.String() != w.Certificate.String() {
			t.Errorf("token %s = %+v, want %+v", name, got, w)
		}
	}
}
