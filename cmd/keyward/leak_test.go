package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/mask"
	"github.com/keyward/keyward/internal/testenv"
)

// leakAS is an OAuth2 token endpoint on loopback that echoes what keyward
// holds into its errors. Client "first" gets an access token until refuse
// is set, then errors; client "second" waits for first's token and is
// always refused. Every error's error_description echoes first's access
// token, both client secrets, and the Authorization header of the request,
// raw and percent-encoded.
type leakAS struct {
	srv      *httptest.Server
	cs1, cs2 string
	token    string // first's access token
	issued   chan struct{}
	once     sync.Once
	mu       sync.Mutex
	refuse   bool // refuse first too
}

func newLeakAS(t *testing.T, r *rand.Rand, cs1, cs2 string) *leakAS {
	a := &leakAS{cs1: cs1, cs2: cs2, issued: make(chan struct{})}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	a.token = "at-" + string(randFrom(r, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~", 40))
	return a
}

func (a *leakAS) serve(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	id, _, ok := r.BasicAuth()
	if !ok {
		id = r.PostForm.Get("client_id")
	}
	a.mu.Lock()
	tok, refuse := a.token, a.refuse
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if id == "first" && !refuse {
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
		a.once.Do(func() { close(a.issued) })
		return
	}
	select {
	case <-a.issued:
	case <-time.After(10 * time.Second):
	}
	echo := fmt.Sprintf("token %s was revoked; secrets %s and %s (%s, %s); header %q",
		tok, a.cs1, a.cs2, url.QueryEscape(a.cs1), url.QueryEscape(a.cs2), r.Header.Get("Authorization"))
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_request", "error_description": echo})
}

func randFrom(r *rand.Rand, alphabet string, n int) []byte {
	runes := []rune(alphabet)
	var b strings.Builder
	for range n {
		b.WriteRune(runes[r.IntN(len(runes))])
	}
	return []byte(b.String())
}

// leakFixture is a work directory with secrets of random values in
// values.json and configs that drive every command into its error paths.
type leakFixture struct {
	t      *testing.T
	dir    string
	as     *leakAS
	values map[string]string // name -> value keyward holds
	inputs map[string]bool   // files the test wrote (relative paths)
}

const hostile = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 &<>\"'\\/%+=:;?#!*()[]{}~`^|äöüé€ßñ中文😀🔑"

func newLeakFixture(t *testing.T, seed uint64) *leakFixture {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 99))
	f := &leakFixture{t: t, dir: t.TempDir(), values: map[string]string{}, inputs: map[string]bool{}}
	pem := "-----BEGIN PRIVATE KEY-----\n"
	for range 4 {
		pem += string(randFrom(r, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 64)) + "\n"
	}
	pem += "-----END PRIVATE KEY-----\n"
	f.values = map[string]string{
		"db":  string(randFrom(r, hostile, 18+r.IntN(12))) + "\n" + string(randFrom(r, hostile, 10)),
		"api": "k" + string(randFrom(r, "abcdefghijklmnopqrstuvwxyz0123456789-_", 24)), // safe in a path
		"pem": pem,
		"cs1": string(randFrom(r, hostile, 20+r.IntN(10))),
		"cs2": string(randFrom(r, hostile, 20+r.IntN(10))),
	}
	vals, _ := json.Marshal(f.values)
	f.write("values.json", string(vals))
	f.as = newLeakAS(t, r, f.values["cs1"], f.values["cs2"])
	f.values["access token"] = f.as.token
	f.write("app.tmpl", `db={{ secret "DB" | json }} api={{ secret "API" }}`+"\n")
	const secrets = `secrets:
  DB: file:values.json#db
  API: file:values.json#api
  PEM: file:values.json#pem
`
	// A reference whose path holds the value of API: its error quotes it.
	bad := fmt.Sprintf("  BAD: file:missing/%s.json#x\n", f.values["api"])
	files := "files:\n  - path: out/app.conf\n    template_file: app.tmpl\n  - path: out/key.pem\n    secret: PEM\n"
	env := "env:\n  DB_VALUE: DB\n  API_VALUE: API\n  PEM_VALUE: PEM\n"
	tokens := func(names ...string) string {
		s := "tokens:\n"
		for _, n := range names {
			cs := map[string]string{"first": "cs1", "second": "cs2"}[n]
			s += fmt.Sprintf("  %s:\n    token_url: %s/token\n    client_id: file:ids.yaml#%s\n    client_secret: file:values.json#%s\n    file: out/%s.token\n", n, f.as.srv.URL, n, cs, n)
		}
		return s
	}
	f.write("ids.yaml", "first: first\nsecond: second\n")
	f.write("bad.yaml", "version: 1\n"+secrets+bad+files)
	f.write("good.yaml", "version: 1\n"+secrets+files+env)
	f.write("tokens.yaml", "version: 1\n"+secrets+files+env+tokens("first", "second"))
	f.write("exec-token.yaml", "version: 1\n"+secrets+files+env+tokens("first"))
	f.write("scanme/leaky.txt", "raw "+f.values["api"]+"\nb64 "+base64.StdEncoding.EncodeToString([]byte(f.values["db"]))+"\n")
	return f
}

func (f *leakFixture) write(rel, content string) {
	testenv.WriteFile(f.t, filepath.Join(f.dir, rel), content)
	f.inputs[rel] = true
}

// forms returns every form of every value keyward holds (valueForms).
func (f *leakFixture) forms() map[string]string { return valueForms(f.values) }

// valueForms returns every form of every value of values (name -> value),
// each mapped to the value's name and the form's kind, computed here
// with the standard library and by hand rather than by the masker, so that
// an encoding the masker forgets is not forgotten by the test too: base64
// (standard and URL alphabets, padded and raw), hex in either case,
// percent-encoding (net/url's, and the RFC 3986 and encodeURIComponent
// sets by hand, space as %20 and +, either hex case), JSON string escaping
// as Go (json.Marshal, an Encoder without HTML escaping, slog) and Python
// (json.dumps: \uXXXX for non-ASCII, surrogate pairs) write it, %q and
// %+q, and each line of a multi-line value at least
// mask.DefaultMinLength bytes long (shorter ones are documented as not
// masked). Each form is computed for the value and for the value without
// its trailing line breaks.
func valueForms(values map[string]string) map[string]string {
	out := map[string]string{}
	for name, value := range values {
		add := func(form, kind string) {
			if len(form) < mask.DefaultMinLength {
				return
			}
			if _, dup := out[form]; !dup {
				out[form] = name + " (" + kind + ")"
			}
		}
		for _, v := range []string{value, strings.TrimRight(value, "\r\n")} {
			add(v, "raw")
			for _, e := range []struct {
				kind string
				enc  *base64.Encoding
			}{
				{"base64", base64.StdEncoding}, {"base64 raw", base64.RawStdEncoding},
				{"base64url", base64.URLEncoding}, {"base64url raw", base64.RawURLEncoding},
			} {
				add(e.enc.EncodeToString([]byte(v)), e.kind)
			}
			add(hex.EncodeToString([]byte(v)), "hex")
			add(strings.ToUpper(hex.EncodeToString([]byte(v))), "HEX")
			add(url.QueryEscape(v), "url.QueryEscape")
			add(url.PathEscape(v), "url.PathEscape")
			add((&url.URL{Path: v}).EscapedPath(), "url.URL path")
			add(url.Values{"k": {v}}.Encode()[2:], "url.Values")
			for _, keep := range []string{"-._~", "-._~!*'()"} {
				for _, plus := range []bool{false, true} {
					for _, digits := range []string{"0123456789ABCDEF", "0123456789abcdef"} {
						add(percentEncode(v, keep, plus, digits), fmt.Sprintf("percent-encoded keeping %q, plus %v, hex %c", keep, plus, digits[10]))
					}
				}
			}
			j, _ := json.Marshal(v)
			add(string(j[1:len(j)-1]), "json.Marshal")
			var b strings.Builder
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			_ = enc.Encode(v)
			add(strings.TrimSuffix(strings.TrimPrefix(b.String(), `"`), "\"\n"), "json without HTML escaping")
			b.Reset()
			slog.New(slog.NewJSONHandler(&b, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey || a.Key == slog.LevelKey {
					return slog.Attr{}
				}
				return a
			}})).Info(v)
			if s, ok := strings.CutPrefix(b.String(), `{"msg":"`); ok {
				add(strings.TrimSuffix(s, "\"}\n"), "slog JSON")
			}
			for _, digits := range []string{"0123456789abcdef", "0123456789ABCDEF"} {
				add(pythonJSON(v, digits), "json.dumps, hex "+digits[10:11])
			}
			q := fmt.Sprintf("%q", v)
			add(q[1:len(q)-1], "%q")
			q = fmt.Sprintf("%+q", v)
			add(q[1:len(q)-1], "%+q")
		}
		if strings.ContainsAny(value, "\r\n") {
			for _, line := range strings.FieldsFunc(value, func(r rune) bool { return r == '\r' || r == '\n' }) {
				add(line, "line")
			}
		}
	}
	return out
}

// percentEncode percent-encodes s as an encoder that keeps ASCII letters,
// digits and the bytes of keep, and writes space as + when plus is set.
func percentEncode(s, keep string, plus bool, digits string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte(keep, c) >= 0:
			b.WriteByte(c)
		case c == ' ' && plus:
			b.WriteByte('+')
		default:
			b.WriteByte('%')
			b.WriteByte(digits[c>>4])
			b.WriteByte(digits[c&15])
		}
	}
	return b.String()
}

// pythonJSON escapes s as Python's json.dumps does with its default
// ensure_ascii=True (without the quotes): " \\ \n \r \t \b \f by name, other
// controls and every non-ASCII character as \uXXXX, beyond the BMP as a
// surrogate pair; digits gives the hex case.
func pythonJSON(s, digits string) string {
	var b strings.Builder
	u := func(r rune) {
		b.WriteString(`\u`)
		for shift := 12; shift >= 0; shift -= 4 {
			b.WriteByte(digits[r>>shift&15])
		}
	}
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r > 0xffff:
			u(0xd800 + (r-0x10000)>>10)
			u(0xdc00 + (r-0x10000)&0x3ff)
		case r < 0x20 || r > 0x7e:
			u(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// check greps out (one output of a command) for every form of every value
// and reports each leak by the value's name and the form, never the value.
func (f *leakFixture) check(where, out string) {
	f.t.Helper()
	for form, what := range f.forms() {
		if strings.Contains(out, form) {
			f.t.Errorf("%s: leaked value of %s", where, what)
		}
	}
}

// checkLeftovers greps every file under the work directory that is
// neither an input of the test nor a target keyward writes on purpose.
func (f *leakFixture) checkLeftovers(where string, targets ...string) {
	f.t.Helper()
	_ = filepath.WalkDir(f.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&fs.ModeSocket != 0 {
			return nil
		}
		rel, _ := filepath.Rel(f.dir, path)
		if f.inputs[rel] || slices.Contains(targets, rel) || strings.HasPrefix(rel, "out/") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err == nil {
			f.check(where+": file "+rel, string(b))
		}
		return nil
	})
}

// run runs keyward at debug level in the fixture's directory and checks
// its stdout (unless the value is its point) and stderr.
func (f *leakFixture) run(name string, env []string, stdoutIsValue bool, args ...string) result {
	f.t.Helper()
	r := keyward(f.t, f.dir, env, append([]string{"--log-level", "debug"}, args...)...)
	if !stdoutIsValue {
		f.check(name+": stdout", withoutAddMask(r.stdout))
	}
	f.check(name+": stderr", r.stderr)
	f.checkLeftovers(name)
	return r
}

// withoutAddMask drops the ::add-mask:: commands of keyward ci, which
// carry the values to GitHub's runner by design.
func withoutAddMask(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "::add-mask::") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// TestNoValueLeavesKeyward is the defence-in-depth test: every command, at
// debug level and in text and JSON log formats, is driven through error
// paths that put values keyward holds into messages (a reference whose
// path holds a value, a command named after one, a token server that
// echoes an access token and both client secrets into its errors), and
// every output (stdout, stderr, HTTP bodies, files other than the targets)
// is searched for every form of every value: none may appear.
func TestNoValueLeavesKeyward(t *testing.T) {
	t.Parallel()
	f := newLeakFixture(t, 7)
	wantCode := func(name string, r result, code int) {
		t.Helper()
		if r.code != code {
			t.Errorf("%s: exit %d, want %d", name, r.code, code)
		}
	}
	for _, format := range []string{"text", "json"} {
		lf := []string{"--log-format", format}
		// A reference that quotes API's value fails after API resolved.
		for _, cmd := range [][]string{
			{"render", "--once", "-c", "bad.yaml"},
			{"check", "-c", "bad.yaml"},
			{"exec", "-c", "bad.yaml", "--", "true"},
			{"ci", "--system", "generic", "--dotenv", "ci.env", "-c", "bad.yaml"},
			{"scan", "-c", "bad.yaml", "scanme"},
			{"agent", "-c", "bad.yaml", "--init-timeout", "1s"},
		} {
			name := format + ": " + cmd[0] + " with a reference quoting a value"
			r := f.run(name, nil, false, append(lf, cmd...)...)
			if r.code == 0 {
				t.Errorf("%s: exit 0, want a failure", name)
			}
			if !strings.Contains(r.stderr, "missing/***") {
				t.Errorf("%s: the failing reference is not named with the value masked", name)
			}
		}
		// A token server that echoes the first token and both client
		// secrets into the second token's refusal.
		for _, cmd := range [][]string{
			{"render", "--once", "-c", "tokens.yaml"},
			{"exec", "-c", "tokens.yaml", "--", "true"},
		} {
			name := format + ": " + cmd[0] + " with an echoing token server"
			r := f.run(name, nil, false, append(lf, cmd...)...)
			wantCode(name, r, 1)
			if !strings.Contains(r.stderr, "token second: exchange: status 400") {
				t.Errorf("%s: the refusal is not reported", name)
			}
		}
	}

	// exec: a command named after a value; the child's output under
	// --mask, holding every value in several encodings.
	r := f.run("exec of a command named after a value", nil, false, "exec", "-c", "good.yaml", "--", "./run-"+f.values["api"])
	wantCode("exec of a missing command", r, 127)
	script := `for v in "$DB_VALUE" "$API_VALUE" "$PEM_VALUE" "$KEYWARD_TOKEN_FIRST"; do
  printf 'raw %s\n' "$v"; printf '%s' "$v" | base64 -w0; echo; printf '%s' "$v" | od -An -tx1 | tr -d ' \n'; echo
  printf 'err %s\n' "$v" >&2
done`
	r = f.run("exec --mask", nil, false, "exec", "--mask", "-c", "exec-token.yaml", "--", "sh", "-c", script)
	wantCode("exec --mask", r, 0)
	if strings.Count(r.stdout, "***") < 12 {
		t.Errorf("exec --mask: %d masks in the child's output, want every value in each of 3 forms", strings.Count(r.stdout, "***"))
	}
	// The same through Python's own encoders, when it is installed.
	if py, err := exec.LookPath("python3"); err != nil {
		t.Log("python3 not found: the masking of Python's encodings is not checked here")
	} else {
		script := `import base64, json, os, urllib.parse
for k in ("DB_VALUE", "API_VALUE", "PEM_VALUE", "KEYWARD_TOKEN_FIRST"):
    v = os.environ[k]
    for form in (json.dumps(v), json.dumps({"k": v}), urllib.parse.quote(v, safe=""), urllib.parse.quote_plus(v),
                 urllib.parse.urlencode({"k": v}), repr(v), base64.urlsafe_b64encode(v.encode()).decode()):
        print("py", form, flush=True)
`
		r = f.run("exec --mask of python3", nil, false, "exec", "--mask", "-c", "exec-token.yaml", "--", py, "-c", script)
		wantCode("exec --mask of python3", r, 0)
		if strings.Count(r.stdout, "***") < 28 {
			t.Errorf("exec --mask of python3: %d masks in the child's output, want every value in each of 7 forms", strings.Count(r.stdout, "***"))
		}
	}

	// get prints the value on stdout by design; nothing else may carry it.
	r = f.run("get", nil, true, "get", "-c", "good.yaml", "file:values.json#db")
	wantCode("get", r, 0)
	if r.stdout != f.values["db"] {
		t.Error("get: stdout is not the value")
	}

	// ci for GitHub: the ::add-mask:: commands carry the values by design.
	f.write("gh.env", "")
	f.write("gh.out", "")
	gh := []string{"GITHUB_ACTIONS=true", "GITHUB_ENV=" + filepath.Join(f.dir, "gh.env"), "GITHUB_OUTPUT=" + filepath.Join(f.dir, "gh.out")}
	r = f.run("ci github", gh, false, "ci", "-c", "good.yaml")
	wantCode("ci github", r, 0)
	r = f.run("ci github, bad reference", gh, false, "ci", "-c", "bad.yaml")
	if r.code == 0 {
		t.Error("ci github with a bad reference: exit 0")
	}

	// scan finds the values and names them.
	r = f.run("scan", nil, false, "scan", "-c", "good.yaml", "scanme")
	wantCode("scan", r, 1)
	if !strings.Contains(r.stdout, "API") || !strings.Contains(r.stdout, "DB") {
		t.Error("scan: the planted values are not reported")
	}

	// agent with the token endpoint on TCP: a forced refresh is refused
	// by the echoing server; the endpoint's error body, /readyz, /metrics
	// and the agent's log carry no value, nor the guard header's.
	t.Run("agent", func(t *testing.T) {
		port, err := testenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		cfg := strings.Replace(testenv.ReadFile(t, filepath.Join(f.dir, "exec-token.yaml")), "version: 1\n",
			fmt.Sprintf("version: 1\nserver: {listen: \"127.0.0.1:%d\"}\n", port), 1)
		f.write("agent.yaml", cfg)
		guardFile := filepath.Join(f.dir, "run", "guard")
		a := startAgent(t, f.dir, []string{"KEYWARD_TOKEN_GUARD_FILE=" + guardFile}, "agent", "--log-level", "debug", "--log-format", "json", "-c", "agent.yaml")
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		client := &http.Client{Timeout: 5 * time.Second}
		do := func(method, path string) (int, string) {
			req, _ := http.NewRequest(method, base+path, nil)
			if b, err := os.ReadFile(guardFile); err == nil {
				req.Header.Set("X-Keyward-Token", strings.TrimSpace(string(b)))
			}
			resp, err := client.Do(req)
			if err != nil {
				return 0, ""
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		a.waitFor("readyz", func() bool { c, _ := do("GET", "/readyz"); return c == 200 })
		f.as.mu.Lock()
		f.as.refuse = true
		f.as.mu.Unlock()
		f.values["token guard"] = strings.TrimSpace(testenv.ReadFile(t, guardFile))
		// The agent's config has only the first token: the second client's
		// secret, which the server echoes too, is not a value it holds.
		delete(f.values, "cs2")
		f.inputs["run/guard"] = true // a target: it holds the guard on purpose
		code, body := do("POST", "/v1/tokens/first/refresh")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "status 400") {
			t.Errorf("forced refresh against the refusing server: %d", code)
		}
		f.check("agent: POST /v1/tokens/first/refresh body", body)
		for _, p := range []string{"/readyz", "/metrics", "/healthz", "/v1/tokens/nope"} {
			_, body := do("GET", p)
			f.check("agent: GET "+p+" body", body)
		}
		if c := a.stop(); c != 0 {
			t.Errorf("agent exit %d after SIGTERM", c)
		}
		f.check("agent: stderr", a.stderr.String())
		f.checkLeftovers("agent")
	})
}
