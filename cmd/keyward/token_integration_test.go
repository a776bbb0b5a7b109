//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testenv"
)

// The OAuth server (oidc-provider) is started once for the package, on
// first use (this package's TestMain builds the binary), and dies with the
// test binary (testenv.Start sets a parent-death signal).
var (
	oauthOnce sync.Once
	oauthSrv  *testenv.OAuth
	oauthErr  error
)

const oauthSecret = "kw-oauth-client-secret-9f1"

func realOAuth(t *testing.T) *testenv.OAuth {
	t.Helper()
	oauthOnce.Do(func() {
		oauthSrv, oauthErr = testenv.StartOAuth(context.Background(), []testenv.OAuthClient{
			{ID: "kw-app", Secret: oauthSecret},
			{ID: "kw-post", Secret: oauthSecret, Auth: "client_secret_post"},
			{ID: "keyward-demo", Secret: "demo-client-secret-not-for-production"},
		})
	})
	if oauthErr != nil {
		t.Fatalf("oidc-provider (test/servers/oauth.sh) is required under the integration tag: %v", oauthErr)
	}
	return oauthSrv
}

// tokenFixture writes a config with one JSON-file token ("api", basic
// auth, opaque 10 s tokens) and one raw-file token ("jwt", post auth, JWT
// 20 s tokens), and returns the directory.
func tokenFixture(t *testing.T, o *testenv.OAuth, server string) string {
	dir := t.TempDir()
	testenv.WriteFile(t, filepath.Join(dir, "creds.yaml"), "id: kw-app\npost_id: kw-post\nsecret: "+oauthSecret+"\n")
	cfg := fmt.Sprintf(`version: 1
tokens:
  api:
    token_url: %s
    client_id: file:creds.yaml#id
    client_secret: file:creds.yaml#secret
    scopes: [read]
    resource: urn:kw:opaque:10
    file: out/api.json
    file_format: json
  jwt:
    token_url: %s
    client_id: file:creds.yaml#post_id
    client_secret: file:creds.yaml#secret
    auth: post
    resource: "urn:kw:jwt:20"
    file: out/jwt
%s`, o.TokenURL, o.TokenURL, server)
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), cfg)
	return dir
}

func checkNoSecret(t *testing.T, out string, tokens ...string) {
	t.Helper()
	for _, v := range append(tokens, oauthSecret) {
		if v != "" && strings.Contains(out, v) {
			t.Fatalf("a secret or token (%d bytes) appears in keyward's output", len(v))
		}
	}
}

// TestTokensAgentSocket runs keyward agent with tokens on a unix socket:
// the files are written, the endpoint serves the token the server calls
// active, POST refresh gives a new one, and metrics and /readyz report.
func TestTokensAgentSocket(t *testing.T) {
	t.Parallel()
	o := realOAuth(t)
	dir := tokenFixture(t, o, `server: {listen: "unix:kw.sock"}`)
	a := startAgent(t, dir, nil, "agent", "-c", "keyward.yaml")
	a.waitFor("readyz", a.ready)

	var f struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresAt   string `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(testenv.ReadFile(t, filepath.Join(dir, "out", "api.json"))), &f); err != nil || f.AccessToken == "" || f.TokenType != "Bearer" || f.ExpiresAt == "" {
		t.Fatalf("api.json: %v (type %q)", err, f.TokenType)
	}
	jwt := testenv.ReadFile(t, filepath.Join(dir, "out", "jwt"))
	if strings.Count(jwt, ".") != 2 {
		t.Fatal("the jwt token file does not hold a JWT")
	}
	for _, p := range []string{"out/api.json", "out/jwt"} {
		if fi, err := os.Stat(filepath.Join(dir, p)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want mode 0600", p, err, fi.Mode())
		}
	}
	code, body, err := a.get("/v1/tokens/api")
	if err != nil || code != 200 {
		t.Fatalf("GET /v1/tokens/api: %d %v", code, err)
	}
	var got struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || got.AccessToken == "" || got.ExpiresIn > 10 {
		t.Fatalf("GET body: %v, expires_in %d", err, got.ExpiresIn)
	}
	client := testenv.OAuthClient{ID: "kw-app", Secret: oauthSecret}
	if ok, err := o.Active(context.Background(), client, got.AccessToken); err != nil || !ok {
		t.Fatalf("served token: active=%v err=%v", ok, err)
	}
	must(t, o.Revoke(context.Background(), client, got.AccessToken))
	resp, err := a.http.Post("http://keyward/v1/tokens/api/refresh", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var fresh struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &fresh) != nil || fresh.AccessToken == got.AccessToken {
		t.Fatalf("POST refresh: %d, new token: %v", resp.StatusCode, fresh.AccessToken != got.AccessToken)
	}
	if ok, err := o.Active(context.Background(), client, fresh.AccessToken); err != nil || !ok {
		t.Fatalf("refreshed token: active=%v err=%v", ok, err)
	}
	// The 10 s token is refreshed by the loop (at ~6.7 s).
	a.waitFor("a scheduled refresh", func() bool {
		return a.metric(`keyward_token_refreshes_total{result="ok",token="api"}`) >= 3
	})
	if a.metric(`keyward_token_expiry_timestamp_seconds{token="jwt"}`) <= 0 {
		t.Fatal("no expiry metric")
	}
	if code := a.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	checkNoSecret(t, a.stderr.String(), got.AccessToken, fresh.AccessToken, f.AccessToken, jwt)
}

// TestTokensAgentTCPChild runs keyward agent -- sh on a loopback TCP
// listener: the child finds the endpoint and the guard file in its
// environment, and a request without the guard header is refused.
func TestTokensAgentTCPChild(t *testing.T) {
	t.Parallel()
	o := realOAuth(t)
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := tokenFixture(t, o, fmt.Sprintf(`server: {listen: "127.0.0.1:%d"}`, port))
	guardFile := filepath.Join(dir, "run", "guard")
	a := startAgent(t, dir, []string{"KEYWARD_TOKEN_GUARD_FILE=" + guardFile}, "agent", "-c", "keyward.yaml", "--",
		"sh", "-c", `echo "$KEYWARD_TOKEN_ENDPOINT $KEYWARD_TOKEN_GUARD_FILE ${#KEYWARD_TOKEN_API}"; exec sleep 60`)
	line := a.nextLine()
	want := fmt.Sprintf("http://127.0.0.1:%d %s ", port, guardFile)
	if !strings.HasPrefix(line, want) || strings.HasSuffix(line, " 0") {
		t.Fatalf("child saw %q, want %q and a non-empty KEYWARD_TOKEN_API", line, want+"N")
	}
	fi, err := os.Stat(guardFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("guard file: %v %v", err, fi)
	}
	guard := strings.TrimSpace(testenv.ReadFile(t, guardFile))
	get := func(guard string) int {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/v1/tokens/jwt", port), nil)
		if guard != "" {
			req.Header.Set("X-Keyward-Token", guard)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get(""); c != 401 {
		t.Fatalf("without the guard header: %d", c)
	}
	if c := get(guard); c != 200 {
		t.Fatalf("with the guard header: %d", c)
	}
	if err := a.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	<-a.exited
	if a.code != 128+2 {
		t.Errorf("exit code %d, want 130: the child was interrupted and keyward mirrors it", a.code)
	}
	if _, err := os.Stat(guardFile); !os.IsNotExist(err) {
		t.Fatalf("guard file left behind: %v", err)
	}
	checkNoSecret(t, a.stderr.String(), guard)
}

// TestTokensTwoAgentsOneHost runs two agents with a token endpoint on one
// host, each with the default guard file: each must own its own, so that
// the second neither changes the first one's guard (its clients got 401)
// nor removes it at exit; and two agents given one guard file explicitly
// must not share it silently.
func TestTokensTwoAgentsOneHost(t *testing.T) {
	t.Parallel()
	o := realOAuth(t)
	runtimeDir := t.TempDir() // the default location when not root
	type agent struct {
		a         *agentProc
		port      int
		guardFile string
	}
	start := func(env ...string) agent {
		port, err := testenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		dir := tokenFixture(t, o, fmt.Sprintf(`server: {listen: "127.0.0.1:%d"}`, port))
		a := startAgent(t, dir, append([]string{"XDG_RUNTIME_DIR=" + runtimeDir}, env...), "agent", "-c", "keyward.yaml", "--",
			"sh", "-c", `echo "$KEYWARD_TOKEN_GUARD_FILE"; exec sleep 60`)
		return agent{a: a, port: port, guardFile: a.nextLine()}
	}
	// get asks ag's endpoint for a token with the guard its file holds now,
	// as a client of the agent does.
	get := func(ag agent) int {
		t.Helper()
		guard, err := os.ReadFile(ag.guardFile)
		if err != nil {
			t.Fatalf("reading the guard file of the agent on port %d: %v", ag.port, err)
		}
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/v1/tokens/jwt", ag.port), nil)
		req.Header.Set("X-Keyward-Token", strings.TrimSpace(string(guard)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	first := start()
	second := start()
	if first.guardFile == second.guardFile {
		t.Fatalf("both agents use the guard file %s", first.guardFile)
	}
	for i, ag := range []agent{first, second} {
		if c := get(ag); c != 200 {
			t.Fatalf("agent %d with the guard from its file: %d", i+1, c)
		}
	}
	if err := second.a.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	<-second.a.exited
	if _, err := os.Stat(second.guardFile); !os.IsNotExist(err) {
		t.Errorf("the second agent left its guard file: %v", err)
	}
	if c := get(first); c != 200 {
		t.Fatalf("after the second agent's exit, the first one answers %d with the guard from its file", c)
	}

	// The same file given to two agents: the second refuses to start.
	shared := filepath.Join(t.TempDir(), "guard")
	third := start("KEYWARD_TOKEN_GUARD_FILE=" + shared)
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := tokenFixture(t, o, fmt.Sprintf(`server: {listen: "127.0.0.1:%d"}`, port))
	r := keywardTimeout(t, dir, []string{"KEYWARD_TOKEN_GUARD_FILE=" + shared}, time.Minute, "agent", "-c", "keyward.yaml", "--", "true")
	if r.code == 0 || !strings.Contains(r.stderr, "another running keyward agent") {
		t.Errorf("a second agent on the same guard file: exit %d, stderr %q", r.code, r.stderr)
	}
	if c := get(third); c != 200 {
		t.Fatalf("the agent holding the shared guard file answers %d after the refused one", c)
	}
	for _, ag := range []agent{first, third} {
		if err := ag.a.cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		<-ag.a.exited
		if _, err := os.Stat(ag.guardFile); !os.IsNotExist(err) {
			t.Errorf("guard file %s left behind: %v", ag.guardFile, err)
		}
	}
}

// TestTokensRenderExecCI: render --once writes the token files; exec gives
// the child the token in its environment; ci refuses tokens; a wrong
// secret fails with the OAuth error and no secret in the output.
func TestTokensRenderExecCI(t *testing.T) {
	t.Parallel()
	o := realOAuth(t)
	dir := tokenFixture(t, o, "")
	r := keyward(t, dir, nil, "render", "--once", "-c", "keyward.yaml")
	if r.code != 0 {
		t.Fatalf("render: %d %s", r.code, r.stderr)
	}
	tok := testenv.ReadFile(t, filepath.Join(dir, "out", "jwt"))
	r = keyward(t, dir, nil, "exec", "-c", "keyward.yaml", "--", "sh", "-c", `test -n "$KEYWARD_TOKEN_API" && test -n "$KEYWARD_TOKEN_JWT" && echo ok`)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "ok" {
		t.Fatalf("exec: %d %q %s", r.code, r.stdout, r.stderr)
	}
	checkNoSecret(t, r.stderr, tok)
	// Under CI (--mask by default) the child printing its tokens shows ***.
	r = keyward(t, dir, []string{"CI=true"}, "exec", "-c", "keyward.yaml", "--", "sh", "-c", `echo "api=$KEYWARD_TOKEN_API"; echo "jwt=$KEYWARD_TOKEN_JWT"`)
	if r.code != 0 || r.stdout != "api=***\njwt=***\n" {
		t.Fatalf("exec under CI printed its tokens as %d bytes with %d masks (want both masked); exit %d %s", len(r.stdout), strings.Count(r.stdout, "***"), r.code, r.stderr)
	}
	r = keyward(t, dir, []string{"GITHUB_ACTIONS=true"}, "ci", "-c", "keyward.yaml")
	if r.code != 78 || !strings.Contains(r.stderr, "tokens") {
		t.Fatalf("ci with tokens: %d %s", r.code, r.stderr)
	}
	testenv.WriteFile(t, filepath.Join(dir, "creds.yaml"), "id: kw-app\npost_id: kw-post\nsecret: wrong-"+oauthSecret+"\n")
	r = keyward(t, dir, nil, "render", "--once", "-c", "keyward.yaml")
	if r.code != 1 || !strings.Contains(r.stderr, "token api: exchange: status 401: invalid_client") {
		t.Fatalf("wrong secret: %d %s", r.code, r.stderr)
	}
	checkNoSecret(t, r.stderr+r.stdout, "wrong-"+oauthSecret)
}

// TestTokensExample runs examples/tokens (workload.sh under keyward agent)
// against the real server.
func TestTokensExample(t *testing.T) {
	t.Parallel()
	o := realOAuth(t)
	dir := t.TempDir()
	for _, f := range []string{"keyward.yaml", "dev-client.yaml", "workload.sh"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", "tokens", f))
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "http://127.0.0.1:9400", o.URL)
		must(t, os.WriteFile(filepath.Join(dir, f), []byte(s), 0o700))
	}
	r := keyward(t, dir, []string{"ROUNDS=2", "PAUSE=0"}, "agent", "-c", "keyward.yaml", "--", "./workload.sh")
	if r.code != 0 {
		t.Fatalf("example: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"round 0: file token 43 bytes, endpoint token expires in 1", "same=yes", "round 1:", "refreshed on demand"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("example output lacks %q:\n%s", want, r.stdout)
		}
	}
	checkNoSecret(t, r.stdout+r.stderr, "demo-client-secret-not-for-production")
}
