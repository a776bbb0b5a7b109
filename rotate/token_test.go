package rotate

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/internal/server"
	"github.com/keyward/keyward/providers"
)

// fakeAS is an in-memory OAuth2 token endpoint (an http.RoundTripper, so
// that it runs inside a synctest bubble without network goroutines).
type fakeAS struct {
	mu       sync.Mutex
	secret   string
	expires  int // expires_in; 0 leaves it out
	jwtLife  time.Duration
	requests []time.Time
	// fail, when set, answers request n (0-based) instead of the default.
	fail func(n int) (status int, header http.Header, body string)
	// gate, when set, is received from before answering.
	gate chan struct{}
}

func (a *fakeAS) RoundTrip(r *http.Request) (*http.Response, error) {
	a.mu.Lock()
	n := len(a.requests)
	a.requests = append(a.requests, time.Now())
	fail, gate, secret, expires, jwtLife := a.fail, a.gate, a.secret, a.expires, a.jwtLife
	a.mu.Unlock()
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	resp := func(status int, h http.Header, body string) (*http.Response, error) {
		if h == nil {
			h = http.Header{}
		}
		h.Set("Content-Type", "application/json")
		return &http.Response{StatusCode: status, Status: http.StatusText(status), Header: h,
			Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
	}
	if fail != nil {
		if status, h, body := fail(n); status != 0 {
			return resp(status, h, body)
		}
	}
	if id, s, ok := r.BasicAuth(); !ok || id != "app" || s != secret {
		return resp(401, nil, `{"error":"invalid_client","error_description":"client authentication failed"}`)
	}
	tok := fmt.Sprintf("tok-%d", n)
	if jwtLife > 0 {
		claims, _ := json.Marshal(map[string]any{"exp": time.Now().Add(jwtLife).Unix(), "sub": "app"})
		tok = "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString(claims) + ".sig"
	}
	body := map[string]any{"access_token": tok, "token_type": "Bearer"}
	if expires > 0 {
		body["expires_in"] = expires
	}
	b, _ := json.Marshal(body)
	return resp(200, nil, string(b))
}

func (a *fakeAS) times() []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.requests...)
}

type tokenRig struct {
	t     *testing.T
	as    *fakeAS
	store *store
	tk    *Tokens
	m     *TokenMetrics
	logs  *bytes.Buffer
	logMu *sync.Mutex
	file  string
}

// newTokenRig builds a Tokens for one token "api" against fakeAS, with
// the client credentials in the fake store at "client".
func newTokenRig(t *testing.T, as *fakeAS, mod func(*TokenSpec)) *tokenRig {
	t.Helper()
	st := newStore()
	st.set("client", `{"id":"app","secret":"sv-secret-1"}`)
	if as.secret == "" {
		as.secret = "sv-secret-1"
	}
	spec := TokenSpec{
		Name:          "api",
		TokenURL:      "http://127.0.0.1:1/token",
		ClientID:      providers.Ref{Scheme: scheme, Path: "client", Field: "id"},
		ClientSecret:  providers.Ref{Scheme: scheme, Path: "client", Field: "secret"},
		RefreshBefore: time.Minute,
		File:          filepath.Join(t.TempDir(), "token"),
	}
	if mod != nil {
		mod(&spec)
	}
	r := &tokenRig{t: t, as: as, store: st, logs: &bytes.Buffer{}, logMu: &sync.Mutex{}, file: spec.File}
	r.m = NewTokenMetrics(prometheus.NewRegistry())
	tk, err := NewTokens(TokenOptions{
		Providers:  oneSet(t, plainProvider{st}),
		Tokens:     []TokenSpec{spec},
		HTTPClient: &http.Client{Transport: as},
		Metrics:    r.m,
		Logger:     slog.New(slog.NewTextHandler(lockedWriter{r.logMu, r.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Rand:       func() float64 { return 0.5 },
	})
	if err != nil {
		t.Fatal(err)
	}
	r.tk = tk
	return r
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (r *tokenRig) log() string {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	return r.logs.String()
}

// run starts Run and stops it at the end of the test (inside the bubble).
func (r *tokenRig) run() func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.tk.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// gaps returns the time between successive token requests.
func gaps(ts []time.Time) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(ts); i++ {
		out = append(out, ts[i].Sub(ts[i-1]))
	}
	return out
}

// TestTokenSchedule checks when tokens are refreshed: at 2/3 of the
// lifetime (the middle of the jitter range here), brought forward to
// refresh_before when that leaves at least half the lifetime, and never at
// x/oauth2's 10 s margin for short lifetimes.
func TestTokenSchedule(t *testing.T) {
	cases := []struct {
		name          string
		expiresIn     int
		refreshBefore time.Duration
		want          time.Duration
	}{
		{"2/3 of 30 s", 30, 5 * time.Second, 20 * time.Second},
		{"refresh_before wins", 30, 12 * time.Second, 18 * time.Second},
		{"refresh_before larger than half the lifetime is ignored", 30, 20 * time.Second, 20 * time.Second},
		{"short lifetime, default refresh_before", 6, time.Minute, 4 * time.Second},
		{"one hour", 3600, time.Minute, 40 * time.Minute},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				as := &fakeAS{expires: c.expiresIn}
				r := newTokenRig(t, as, func(s *TokenSpec) { s.RefreshBefore = c.refreshBefore })
				if err := r.tk.Init(t.Context()); err != nil {
					t.Fatal(err)
				}
				stop := r.run()
				time.Sleep(5*c.want + c.want/2)
				synctest.Wait()
				stop()
				g := gaps(as.times())
				if len(g) != 5 {
					t.Fatalf("%d refreshes in 5.5 periods, want 5 (gaps %v)", len(g), g)
				}
				for _, d := range g {
					if d != c.want {
						t.Fatalf("refresh gaps %v, want each %v", g, c.want)
					}
				}
				if _, ok := r.tk.Get("api"); !ok || r.tk.Ready() != nil {
					t.Fatal("token not valid throughout")
				}
			})
		})
	}
}

// TestTokenJitter checks the jitter: the refresh comes at 2/3 of the
// lifetime moved by up to ±5% of the lifetime (README), earlier for the
// lowest random number and later for the highest. The bounds are the
// documented numbers, not the code's constants, so a jitter of 0 (or any
// other than ±5%) fails: each extreme must land within 100 ms of its end of
// the range, away from the middle.
func TestTokenJitter(t *testing.T) {
	const life = 60 * time.Second
	middle := life * 2 / 3
	spread := life * 5 / 100
	for _, c := range []struct {
		rnd  float64
		want time.Duration
	}{
		{0, middle - spread},
		{0.999999, middle + spread},
	} {
		synctest.Test(t, func(t *testing.T) {
			as := &fakeAS{expires: int(life / time.Second)}
			r := newTokenRig(t, as, func(s *TokenSpec) { s.RefreshBefore = 0 })
			r.tk.rand = func() float64 { return c.rnd }
			if err := r.tk.Init(t.Context()); err != nil {
				t.Fatal(err)
			}
			stop := r.run()
			time.Sleep(50 * time.Second)
			synctest.Wait()
			stop()
			g := gaps(as.times())
			if len(g) != 1 || g[0] < c.want-100*time.Millisecond || g[0] > c.want+100*time.Millisecond {
				t.Fatalf("rand %v: gaps %v, want one of %v (2/3 of %v moved by 5%% of it)", c.rnd, g, c.want, life)
			}
		})
	}
}

// TestTokenLifetimeSources: expires_in, else the JWT exp claim, else the
// configured default lifetime, else DefaultTokenLifetime, with a warning.
func TestTokenLifetimeSources(t *testing.T) {
	cases := []struct {
		name     string
		as       *fakeAS
		def      time.Duration
		want     time.Duration
		warning  bool
		fileJSON bool
	}{
		{"expires_in", &fakeAS{expires: 90}, 0, 90 * time.Second, false, false},
		{"jwt exp", &fakeAS{jwtLife: 45 * time.Second}, time.Hour, 45 * time.Second, false, true},
		{"default lifetime", &fakeAS{}, 2 * time.Minute, 2 * time.Minute, true, true},
		{"built-in default", &fakeAS{}, 0, DefaultTokenLifetime, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newTokenRig(t, c.as, func(s *TokenSpec) {
					s.DefaultLifetime = c.def
					if c.fileJSON {
						s.FileFormat = TokenFileJSON
					}
				})
				if err := r.tk.Init(t.Context()); err != nil {
					t.Fatal(err)
				}
				tok, ok := r.tk.Get("api")
				if !ok || tok.ExpiresAt.Sub(tok.Issued) != c.want {
					t.Fatalf("lifetime %v, want %v", tok.ExpiresAt.Sub(tok.Issued), c.want)
				}
				if got := strings.Contains(r.log(), "no expires_in"); got != c.warning {
					t.Fatalf("warning logged = %v, want %v", got, c.warning)
				}
				if strings.Contains(r.log(), tok.AccessToken.Reveal()) {
					t.Fatal("the token appears in the log")
				}
				b, err := os.ReadFile(r.file)
				if err != nil {
					t.Fatal(err)
				}
				if !c.fileJSON {
					if string(b) != tok.AccessToken.Reveal() {
						t.Fatal("raw file does not hold the token")
					}
					return
				}
				var f tokenFileJSON
				if err := json.Unmarshal(b, &f); err != nil || f.AccessToken != tok.AccessToken.Reveal() ||
					f.TokenType != "Bearer" || !f.ExpiresAt.Equal(tok.ExpiresAt) {
					t.Fatalf("json file %+v, err %v", f.TokenType, err)
				}
			})
		})
	}
}

// TestTokenOutage: 503 with Retry-After while the server is down. The
// last good token is served until it expires, the retries follow
// Retry-After, readiness turns red only at expiry, and the first success
// afterwards restores it.
func TestTokenOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		as := &fakeAS{expires: 30}
		r := newTokenRig(t, as, nil)
		if err := r.tk.Init(t.Context()); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var down sync.Mutex
		downUntil := start.Add(50 * time.Second)
		as.fail = func(int) (int, http.Header, string) {
			down.Lock()
			defer down.Unlock()
			if time.Now().Before(downUntil) {
				return 503, http.Header{"Retry-After": {"3"}}, `{"error":"temporarily_unavailable"}`
			}
			return 0, nil, ""
		}
		stop := r.run()
		defer stop()
		time.Sleep(29 * time.Second)
		synctest.Wait()
		if tok, ok := r.tk.Get("api"); !ok || tok.AccessToken.Reveal() != "tok-0" || r.tk.Ready() != nil {
			t.Fatal("the last good token is not served before it expires")
		}
		time.Sleep(2 * time.Second) // past expiry at 30 s
		synctest.Wait()
		if _, ok := r.tk.Get("api"); ok {
			t.Fatal("an expired token is served")
		}
		if err := r.tk.Ready(); err == nil || !strings.Contains(err.Error(), "api expired") {
			t.Fatalf("Ready() = %v, want api expired", err)
		}
		for _, g := range gaps(as.times()[1:]) {
			if g < 3*time.Second {
				t.Fatalf("retry %v after the previous one despite Retry-After: 3", g)
			}
		}
		time.Sleep(25 * time.Second)
		synctest.Wait()
		if err := r.tk.Ready(); err != nil {
			t.Fatalf("not recovered after the outage: %v", err)
		}
		if n := refreshCount(r.m, "api", "server_error"); n < 5 {
			t.Fatalf("server_error count %v", n)
		}
	})
}

// TestTokenInvalidClientRefetch: the client secret rotated in the store;
// the first exchange after that uses the new secret. When the server
// rotates first, invalid_client makes keyward fetch the secret again once.
func TestTokenInvalidClientRefetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		as := &fakeAS{expires: 30}
		r := newTokenRig(t, as, nil)
		// The store is updated between the two fetches of the first
		// exchange: the first grant sends the old secret, the re-fetch
		// after invalid_client gets the new one.
		as.mu.Lock()
		as.secret = "sv-secret-2"
		as.fail = func(n int) (int, http.Header, string) {
			if n == 0 {
				r.store.set("client", `{"id":"app","secret":"sv-secret-2"}`)
			}
			return 0, nil, ""
		}
		as.mu.Unlock()
		if err := r.tk.Init(t.Context()); err != nil {
			t.Fatal(err)
		}
		if len(as.times()) != 2 || refreshCount(r.m, "api", "invalid_client") != 1 || refreshCount(r.m, "api", "ok") != 1 {
			t.Fatalf("%d requests, invalid_client %v, ok %v", len(as.times()), refreshCount(r.m, "api", "invalid_client"), refreshCount(r.m, "api", "ok"))
		}
		if strings.Contains(r.log(), "sv-") {
			t.Fatal("a secret appears in the log")
		}
	})
}

// TestTokenRejected: a 4xx other than 429 fails Init at once with the
// token name and the OAuth error, without retrying and without the secret.
func TestTokenRejected(t *testing.T) {
	cases := []struct {
		name, body, want string
		status, requests int
	}{
		{"invalid_scope", `{"error":"invalid_scope","error_description":"scope x is not allowed"}`, "token api: exchange: status 400: invalid_scope: scope x is not allowed", 400, 1},
		{"wrong secret", "", "token api: exchange: status 401: invalid_client: client authentication failed", 0, 2},
		{"html error page", "<html>sv-secret-1 echoed</html>", "token api: exchange: status 403", 403, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				as := &fakeAS{expires: 30, secret: "other"}
				if c.status != 0 {
					as.fail = func(int) (int, http.Header, string) { return c.status, nil, c.body }
				}
				r := newTokenRig(t, as, nil)
				err := r.tk.Init(t.Context())
				if err == nil || err.Error() != c.want {
					t.Fatalf("err = %v, want %q", err, c.want)
				}
				if len(as.times()) != c.requests {
					t.Fatalf("%d requests, want %d", len(as.times()), c.requests)
				}
				if strings.Contains(err.Error(), "sv-") || strings.Contains(r.log(), "sv-") {
					t.Fatal("a secret appears in the error or the log")
				}
			})
		})
	}
}

// TestTokenForcedRefresh: concurrent refresh requests share one exchange,
// a request within the refresh window gets that token, one after it
// exchanges again, and the loop reschedules from the forced token.
func TestTokenForcedRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		as := &fakeAS{expires: 30}
		r := newTokenRig(t, as, nil)
		if err := r.tk.Init(t.Context()); err != nil {
			t.Fatal(err)
		}
		stop := r.run()
		defer stop()
		time.Sleep(10 * time.Second)
		gate := make(chan struct{})
		as.mu.Lock()
		as.gate = gate
		as.mu.Unlock()
		var wg sync.WaitGroup
		got := make([]string, 5)
		for i := range got {
			wg.Go(func() {
				tok, err := r.tk.Refresh(context.Background(), "api")
				if err != nil {
					t.Error(err)
				}
				got[i] = tok.AccessToken.Reveal()
			})
		}
		synctest.Wait()
		as.mu.Lock()
		as.gate = nil
		as.mu.Unlock()
		close(gate)
		wg.Wait()
		for _, g := range got {
			if g != "tok-1" {
				t.Fatalf("refresh results %v, want all tok-1", got)
			}
		}
		if tok, _ := r.tk.Refresh(t.Context(), "api"); tok.AccessToken.Reveal() != "tok-1" || len(as.times()) != 2 {
			t.Fatal("a refresh within the window exchanged again")
		}
		time.Sleep(DefaultRefreshWindow)
		if tok, _ := r.tk.Refresh(t.Context(), "api"); tok.AccessToken.Reveal() != "tok-2" {
			t.Fatal("a refresh after the window did not exchange")
		}
		// tok-2 was issued at 12 s: the next scheduled refresh is at 32 s,
		// not at 20 s (2/3 of tok-0's lifetime).
		time.Sleep(19 * time.Second) // now 31 s
		synctest.Wait()
		if n := len(as.times()); n != 3 {
			t.Fatalf("%d requests by 31 s, want 3", n)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := len(as.times()); n != 4 {
			t.Fatalf("%d requests by 33 s, want 4", n)
		}
		if _, err := r.tk.Refresh(t.Context(), "nope"); err == nil {
			t.Fatal("refresh of an unknown token succeeded")
		}
	})
}

// TestTokenEndpoint checks the HTTP routes: guard, 404, 503 before a token
// exists, the JSON body.
func TestTokenEndpoint(t *testing.T) {
	as := &fakeAS{expires: 300}
	r := newTokenRig(t, as, nil)
	mux := http.NewServeMux()
	r.tk.Register(mux, "g-1")
	do := func(method, path, guard string) (int, string) {
		req := httptest.NewRequest(method, path, nil)
		if guard != "" {
			req.Header.Set(TokenGuardHeader, guard)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: no Cache-Control: no-store", method, path)
		}
		return w.Code, w.Body.String()
	}
	if code, _ := do("GET", "/v1/tokens/api", "g-1"); code != 503 {
		t.Fatalf("before Init: %d, want 503", code)
	}
	if err := r.tk.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		method, path, guard string
		code                int
		body                string
	}{
		{"GET", "/v1/tokens/api", "", 401, "X-Keyward-Token"},
		{"GET", "/v1/tokens/api", "g-2", 401, "X-Keyward-Token"},
		{"GET", "/v1/tokens/other", "g-1", 404, "other"},
		{"GET", "/v1/tokens/api", "g-1", 200, `"access_token":"tok-0","token_type":"Bearer"`},
		{"POST", "/v1/tokens/api/refresh", "", 401, "X-Keyward-Token"},
		{"POST", "/v1/tokens/api/refresh", "g-1", 200, `"access_token":"tok-1"`},
		{"POST", "/v1/tokens/other/refresh", "g-1", 404, "other"},
	}
	for _, c := range cases {
		code, body := do(c.method, c.path, c.guard)
		if code != c.code || !strings.Contains(body, c.body) {
			t.Errorf("%s %s guard %q: %d %s, want %d with %s", c.method, c.path, c.guard, code, body, c.code, c.body)
		}
		if c.code != 200 && strings.Contains(body, "tok-") {
			t.Errorf("%s %s: a refused request got a token", c.method, c.path)
		}
	}
	var tj tokenJSON
	_, body := do("GET", "/v1/tokens/api", "g-1")
	if err := json.Unmarshal([]byte(body), &tj); err != nil || tj.ExpiresIn < 298 || tj.ExpiresIn > 300 {
		t.Fatalf("body %v err %v", tj.ExpiresIn, err)
	}
	// Without a guard (the unix socket) no header is needed.
	open := http.NewServeMux()
	r.tk.Register(open, "")
	w := httptest.NewRecorder()
	open.ServeHTTP(w, httptest.NewRequest("GET", "/v1/tokens/api", nil))
	if w.Code != 200 {
		t.Fatalf("unguarded: %d", w.Code)
	}
}

func TestNewTokensErrors(t *testing.T) {
	good := TokenSpec{Name: "a", TokenURL: "http://127.0.0.1/t",
		ClientID: providers.Ref{Scheme: scheme, Path: "c"}, ClientSecret: providers.Ref{Scheme: scheme, Path: "c"}}
	cases := []struct {
		name  string
		specs []TokenSpec
		want  string
	}{
		{"duplicate", []TokenSpec{good, good}, "duplicate"},
		{"no url", []TokenSpec{{Name: "a", ClientID: good.ClientID, ClientSecret: good.ClientSecret}}, "no token_url"},
		{"bad scheme", []TokenSpec{{Name: "a", TokenURL: "http://x", ClientID: providers.Ref{Scheme: "nope"}, ClientSecret: good.ClientSecret}}, "unknown provider"},
		{"bad format", []TokenSpec{{Name: "a", TokenURL: "http://x", ClientID: good.ClientID, ClientSecret: good.ClientSecret, File: "/x", FileFormat: "yaml"}}, "file format"},
	}
	for _, c := range cases {
		_, err := NewTokens(TokenOptions{Providers: oneSet(t, plainProvider{newStore()}), Tokens: c.specs})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.name, err, c.want)
		}
	}
}

// TestTokensReadyOnReadyz checks the line /readyz shows for tokens: the
// check's name once, then the reason ("tokens: tokens: api expired" was
// printed before).
func TestTokensReadyOnReadyz(t *testing.T) {
	t.Parallel()
	r := newTokenRig(t, &fakeAS{}, nil)
	srv := server.New(server.Options{Listen: "127.0.0.1:0"})
	srv.AddReadyCheck("tokens", r.tk.Ready)
	got := srv.Ready()
	if want := []string{"tokens: api not obtained yet"}; !slices.Equal(got, want) {
		t.Errorf("/readyz lines %q, want %q", got, want)
	}
}

// TestTokenLearntBeforeWritten: OnToken (the masker learning the token)
// runs before the token file holds the token, so a workload reading the
// file can never print a value the masker does not know yet.
func TestTokenLearntBeforeWritten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		as := &fakeAS{expires: 30, secret: "sv-secret-1"}
		st := newStore()
		st.set("client", `{"id":"app","secret":"sv-secret-1"}`)
		file := filepath.Join(t.TempDir(), "token")
		learnt, early := 0, false
		tk, err := NewTokens(TokenOptions{
			Providers: oneSet(t, plainProvider{st}),
			Tokens: []TokenSpec{{Name: "api", TokenURL: "http://127.0.0.1:1/token", File: file,
				ClientID:     providers.Ref{Scheme: scheme, Path: "client", Field: "id"},
				ClientSecret: providers.Ref{Scheme: scheme, Path: "client", Field: "secret"}}},
			HTTPClient: &http.Client{Transport: as},
			Logger:     slog.New(slog.DiscardHandler),
			OnToken: func(_ string, v providers.Value) {
				learnt++
				if b, err := os.ReadFile(file); err == nil && bytes.Contains(b, v.Bytes()) {
					early = true
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := tk.Init(t.Context()); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(file); err != nil || len(b) == 0 || learnt != 1 || early {
			t.Fatalf("file read err %v (%d bytes), OnToken called %d times, token in the file before OnToken: %v", err, len(b), learnt, early)
		}
	})
}

// untrustedAS refuses every request as a TLS client does a server whose
// certificate no trusted CA issued.
type untrustedAS struct{ n atomic.Int32 }

func (a *untrustedAS) RoundTrip(*http.Request) (*http.Response, error) {
	a.n.Add(1)
	return nil, &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}
}

// TestTokenUntrustedCertificate: a token endpoint whose certificate is not
// trusted (another CA than tls.ca_cert) fails Init at once, naming the
// unknown authority, instead of being retried as a network error until
// the deadline.
func TestTokenUntrustedCertificate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		as := &untrustedAS{}
		r := newTokenRig(t, &fakeAS{}, nil)
		r.tk.client = &http.Client{Transport: as}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		err := r.tk.Init(ctx)
		if err == nil || !strings.Contains(err.Error(), "token api: exchange:") || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Fatalf("err = %v, want the unknown authority named", err)
		}
		if n := as.n.Load(); n != 1 {
			t.Fatalf("%d attempts, want 1: an untrusted certificate is not retried", n)
		}
	})
}
