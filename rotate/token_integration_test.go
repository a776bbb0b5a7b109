//go:build integration

package rotate

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers"
	_ "github.com/keyward/keyward/providers/file"
)

// The OAuth server is started once for the package, on first use (this
// package's TestMain belongs to the supervisor tests), and dies with the
// test binary (testenv.Start sets a parent-death signal).
var (
	oauthOnce sync.Once
	oauthSrv  *testenv.OAuth
	oauthErr  error
	// oauthMu serializes tests that stop the server or change its
	// client list.
	oauthMu      sync.Mutex
	oauthClients = map[string]testenv.OAuthClient{}
)

func realOAuth(t testing.TB) *testenv.OAuth {
	t.Helper()
	oauthOnce.Do(func() {
		oauthSrv, oauthErr = testenv.StartOAuth(context.Background(), nil)
	})
	if oauthErr != nil {
		t.Fatalf("oidc-provider (test/servers/oauth.sh) is required under the integration tag: %v", oauthErr)
	}
	return oauthSrv
}

// registerClient adds (or replaces) a client at the server.
func registerClient(t testing.TB, o *testenv.OAuth, c testenv.OAuthClient) {
	t.Helper()
	oauthMu.Lock()
	defer oauthMu.Unlock()
	oauthClients[c.ID] = c
	list := make([]testenv.OAuthClient, 0, len(oauthClients))
	for _, c := range oauthClients {
		list = append(list, c)
	}
	if err := o.SetClients(list); err != nil {
		t.Fatal(err)
	}
}

// realSetup registers a client, writes its credentials to a file the file
// provider reads, and returns a spec for it.
func realSetup(t testing.TB, o *testenv.OAuth, id, secret, resource string) (TokenSpec, string) {
	t.Helper()
	registerClient(t, o, testenv.OAuthClient{ID: id, Secret: secret})
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds.json")
	writeCreds(t, creds, id, secret)
	return TokenSpec{
		Name:          id,
		TokenURL:      o.TokenURL,
		ClientID:      mustParse(t, "file://"+creds+"#id"),
		ClientSecret:  mustParse(t, "file://"+creds+"#secret"),
		Scopes:        []string{"read"},
		Resource:      resource,
		RefreshBefore: time.Minute, // larger than the lifetimes here: the 2/3 rule applies
		File:          filepath.Join(dir, "out", "token"),
		FileFormat:    TokenFileJSON,
	}, creds
}

func writeCreds(t testing.TB, path, id, secret string) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"id": id, "secret": secret})
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func mustParse(t testing.TB, s string) providers.Ref {
	t.Helper()
	r, err := providers.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func realTokens(t testing.TB, specs ...TokenSpec) (*Tokens, *TokenMetrics, *logBuffer) {
	t.Helper()
	set := providers.NewSet(providers.Instance{BaseDir: t.TempDir(), Getenv: func(string) string { return "" }}, nil)
	t.Cleanup(func() { set.Close() })
	m := NewTokenMetrics(prometheus.NewRegistry())
	lb := &logBuffer{}
	tk, err := NewTokens(TokenOptions{Providers: set, Tokens: specs, Metrics: m, Logger: slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	return tk, m, lb
}

// logBuffer collects log output for checks that no secret appears in it.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func runTokens(t *testing.T, tk *Tokens) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = tk.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return cancel
}

// waitFor polls cond every 50 ms (the server and the loop run in real
// time) until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRealTokenLoop keeps a 5 s opaque token fresh for 12 s: the server's
// introspection must call every token handed out active, the JSON file must
// hold the current one, and the exchange count must fit the 2/3 rule.
func TestRealTokenLoop(t *testing.T) {
	o := realOAuth(t)
	spec, _ := realSetup(t, o, "loop", "loop-secret-1", "urn:kw:opaque:5")
	client := testenv.OAuthClient{ID: "loop", Secret: "loop-secret-1"}
	tk, m, logs := realTokens(t, spec)
	ctx := context.Background()
	if err := tk.Init(ctx); err != nil {
		t.Fatal(err)
	}
	runTokens(t, tk)
	end := time.Now().Add(12 * time.Second)
	seen := map[string]bool{}
	for time.Now().Before(end) {
		tok, ok := tk.Get("loop")
		if !ok {
			t.Fatal("no valid token while the server is up")
		}
		if time.Until(tok.ExpiresAt) <= 0 {
			t.Fatal("served an expired token")
		}
		v := tok.AccessToken.Reveal()
		if !seen[v] {
			seen[v] = true
			active, err := o.Active(ctx, client, v)
			if err != nil || !active {
				t.Fatalf("introspection: active=%v err=%v", active, err)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	// 12 s of 5 s tokens refreshed at 2/3±5% of the lifetime: the
	// initial one plus 3 or 4 refreshes.
	ok := refreshCount(m, "loop", "ok")
	if ok < 4 || ok > 5 || len(seen) < 4 {
		t.Fatalf("%v exchanges, %d distinct tokens in 12 s of 5 s tokens; want 4-5", ok, len(seen))
	}
	var f tokenFileJSON
	b, err := os.ReadFile(spec.File)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	cur, _ := tk.Get("loop")
	if f.AccessToken != cur.AccessToken.Reveal() || f.TokenType != "Bearer" || !f.ExpiresAt.Equal(cur.ExpiresAt.UTC()) {
		t.Fatalf("token file does not hold the current token (type %q, expires %v)", f.TokenType, f.ExpiresAt)
	}
	if fi, _ := os.Stat(spec.File); fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	for v := range seen {
		if strings.Contains(logs.String(), v) {
			t.Fatal("a token appears in the log")
		}
	}
}

// TestRealEndpointRevocation serves the token on the endpoint, revokes it
// at the server, and has the "workload" ask for a refresh: the new token is
// active, concurrent refresh requests share one exchange, and the guard
// header is required.
func TestRealEndpointRevocation(t *testing.T) {
	o := realOAuth(t)
	spec, _ := realSetup(t, o, "revoke", "revoke-secret-1", "urn:kw:opaque:20")
	client := testenv.OAuthClient{ID: "revoke", Secret: "revoke-secret-1"}
	tk, m, _ := realTokens(t, spec)
	ctx := context.Background()
	if err := tk.Init(ctx); err != nil {
		t.Fatal(err)
	}
	runTokens(t, tk)
	mux := http.NewServeMux()
	tk.Register(mux, "guard-123")
	hs := httptest.NewServer(mux)
	defer hs.Close()

	get := func(method, path, guard string) (int, tokenJSON) {
		req, _ := http.NewRequest(method, hs.URL+path, nil)
		if guard != "" {
			req.Header.Set(TokenGuardHeader, guard)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tj tokenJSON
		b, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(b, &tj)
		return resp.StatusCode, tj
	}
	if code, _ := get("GET", "/v1/tokens/revoke", ""); code != http.StatusUnauthorized {
		t.Fatalf("without the guard header: %d, want 401", code)
	}
	if code, _ := get("GET", "/v1/tokens/revoke", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("with a wrong guard header: %d, want 401", code)
	}
	if code, _ := get("GET", "/v1/tokens/nope", "guard-123"); code != http.StatusNotFound {
		t.Fatalf("unknown token: %d, want 404", code)
	}
	code, first := get("GET", "/v1/tokens/revoke", "guard-123")
	if code != 200 || first.AccessToken == "" || first.TokenType != "Bearer" || first.ExpiresIn < 15 || first.ExpiresIn > 20 {
		t.Fatalf("GET: %d, type %q, expires_in %d", code, first.TokenType, first.ExpiresIn)
	}
	if err := o.Revoke(ctx, client, first.AccessToken); err != nil {
		t.Fatal(err)
	}
	if active, err := o.Active(ctx, client, first.AccessToken); err != nil || active {
		t.Fatalf("after revocation: active=%v err=%v", active, err)
	}
	before := refreshCount(m, "revoke", "ok")
	var wg sync.WaitGroup
	results := make([]tokenJSON, 8)
	for i := range results {
		wg.Go(func() {
			code, tj := get("POST", "/v1/tokens/revoke/refresh", "guard-123")
			if code != 200 {
				t.Errorf("refresh: %d", code)
			}
			results[i] = tj
		})
	}
	wg.Wait()
	for _, r := range results {
		if r.AccessToken != results[0].AccessToken || r.AccessToken == first.AccessToken {
			t.Fatal("concurrent refreshes did not all get the one new token")
		}
	}
	if n := refreshCount(m, "revoke", "ok") - before; n != 1 {
		t.Fatalf("8 concurrent refresh requests made %v exchanges, want 1", n)
	}
	if active, err := o.Active(ctx, client, results[0].AccessToken); err != nil || !active {
		t.Fatalf("refreshed token: active=%v err=%v", active, err)
	}
	if _, now := get("GET", "/v1/tokens/revoke", "guard-123"); now.AccessToken != results[0].AccessToken {
		t.Fatal("GET does not serve the refreshed token")
	}
	// Within the refresh window a further request gets the same token.
	if _, again := get("POST", "/v1/tokens/revoke/refresh", "guard-123"); again.AccessToken != results[0].AccessToken {
		t.Fatal("a refresh within the rate-limit window made a new exchange")
	}
	if n := refreshCount(m, "revoke", "rate_limited"); n != 1 {
		t.Fatalf("rate_limited = %v, want 1", n)
	}
}

// TestRealWrongSecret: Init fails with an error naming the token and the
// OAuth error code, never the secret.
func TestRealWrongSecret(t *testing.T) {
	o := realOAuth(t)
	spec, creds := realSetup(t, o, "wrong", "right-secret", "")
	writeCreds(t, creds, "wrong", "not-the-secret-xyz")
	tk, m, logs := realTokens(t, spec)
	err := tk.Init(context.Background())
	if err == nil {
		t.Fatal("Init succeeded with a wrong client secret")
	}
	msg := err.Error()
	if !strings.Contains(msg, "token wrong") || !strings.Contains(msg, "invalid_client") || !strings.Contains(msg, "401") {
		t.Fatalf("error %q does not name the token, the status and the OAuth error", msg)
	}
	if strings.Contains(msg, "not-the-secret-xyz") || strings.Contains(logs.String(), "not-the-secret-xyz") {
		t.Fatal("the client secret appears in the error or the log")
	}
	// The first invalid_client made keyward fetch the secret again once.
	if n := refreshCount(m, "wrong", "invalid_client"); n != 2 {
		t.Fatalf("invalid_client results = %v, want 2 (the attempt and its one retry)", n)
	}
	if _, ok := tk.Get("wrong"); ok || tk.Ready() == nil {
		t.Fatal("a token that was never obtained is served or ready")
	}
}

// TestRealSecretRotation rotates the client secret at the server, then in
// the provider: the loop serves the last good token meanwhile and picks up
// the new secret at its next exchange, without a restart.
func TestRealSecretRotation(t *testing.T) {
	o := realOAuth(t)
	spec, creds := realSetup(t, o, "rotating", "old-secret-1", "urn:kw:opaque:6")
	tk, m, logs := realTokens(t, spec)
	if err := tk.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	runTokens(t, tk)
	registerClient(t, o, testenv.OAuthClient{ID: "rotating", Secret: "new-secret-2"})
	waitFor(t, 10*time.Second, "an invalid_client result", func() bool {
		return refreshCount(m, "rotating", "invalid_client") > 0
	})
	if _, ok := tk.Get("rotating"); !ok {
		t.Fatal("the last good token is not served during the failure")
	}
	writeCreds(t, creds, "rotating", "new-secret-2")
	okBefore := refreshCount(m, "rotating", "ok")
	waitFor(t, 10*time.Second, "an exchange with the rotated secret", func() bool {
		return refreshCount(m, "rotating", "ok") > okBefore
	})
	if err := tk.Ready(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"old-secret-1", "new-secret-2"} {
		if strings.Contains(logs.String(), s) {
			t.Fatal("a client secret appears in the log")
		}
	}
}

// TestRealServerOutage stops the server for longer than a token's
// lifetime: /readyz's check turns red once the token actually expired (not
// before), and the loop recovers when the server is back.
func TestRealServerOutage(t *testing.T) {
	o := realOAuth(t)
	spec, _ := realSetup(t, o, "outage", "outage-secret", "urn:kw:opaque:5")
	tk, _, _ := realTokens(t, spec)
	if err := tk.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	runTokens(t, tk)
	oauthMu.Lock()
	defer oauthMu.Unlock()
	first, _ := tk.Get("outage")
	o.Stop()
	restarted := false
	defer func() {
		if !restarted {
			_ = o.Start(context.Background())
		}
	}()
	for time.Now().Before(first.ExpiresAt.Add(-300 * time.Millisecond)) {
		if err := tk.Ready(); err != nil && time.Now().Before(first.ExpiresAt) {
			// A later token may have been fetched before the stop; only
			// the last good one's expiry counts.
			if cur, ok := tk.Get("outage"); ok && time.Now().Before(cur.ExpiresAt) {
				t.Fatalf("not ready while a valid token is held: %v", err)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitFor(t, 8*time.Second, "readiness to fail after expiry", func() bool { return tk.Ready() != nil })
	if _, ok := tk.Get("outage"); ok {
		t.Fatal("an expired token is still served")
	}
	if err := tk.Ready(); !strings.Contains(err.Error(), "outage expired") {
		t.Fatalf("Ready() = %v", err)
	}
	time.Sleep(time.Second) // the outage lasts longer than one lifetime
	if err := o.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	restarted = true
	waitFor(t, 10*time.Second, "recovery after the restart", func() bool { return tk.Ready() == nil })
}

// TestRealThrottled puts a proxy answering 429 with Retry-After: 2 in front
// of the server for the first two token requests: Init waits out each
// Retry-After (no request in between) and then succeeds.
func TestRealThrottled(t *testing.T) {
	o := realOAuth(t)
	spec, _ := realSetup(t, o, "throttled", "throttled-secret", "")
	target, _ := url.Parse(o.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	var (
		mu    sync.Mutex
		times []time.Time
	)
	var n atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if n.Add(1) <= 2 {
			w.Header().Set("Retry-After", "2")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"error":"slow_down","error_description":"too many requests"}`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	spec.TokenURL = proxy.URL + "/token"
	tk, m, _ := realTokens(t, spec)
	start := time.Now()
	if err := tk.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 4*time.Second {
		t.Fatalf("Init took %v, want at least the two Retry-After waits (4 s)", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(times) != 3 {
		t.Fatalf("%d requests, want 3 (two throttled, one through)", len(times))
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < 2*time.Second {
			t.Fatalf("request %d came %v after the previous one despite Retry-After: 2", i, gap)
		}
	}
	if got := refreshCount(m, "throttled", "throttled"); got != 2 {
		t.Fatalf("throttled = %v, want 2", got)
	}
}
