package rotate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/internal/oauth"
	"github.com/keyward/keyward/providers"
)

// rotatingAS is a token endpoint for the refresh_token grant that rotates
// refresh tokens: each accepted one is consumed and a new one issued.
type rotatingAS struct {
	mu       sync.Mutex
	valid    map[string]bool
	n        int
	requests []string // the refresh tokens sent
	// onAnswer, when set, runs before a successful answer is sent.
	onAnswer func()
}

func newRotatingAS(first string) *rotatingAS {
	return &rotatingAS{valid: map[string]bool{first: true}}
}

func (a *rotatingAS) RoundTrip(r *http.Request) (*http.Response, error) {
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	form, _ := url.ParseQuery(string(b))
	a.mu.Lock()
	rt := form.Get("refresh_token")
	a.requests = append(a.requests, rt)
	resp := func(status int, body any) (*http.Response, error) {
		j, _ := json.Marshal(body)
		return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(bytes.NewReader(j)), Request: r}, nil
	}
	if form.Get("grant_type") != "refresh_token" || form.Get("client_id") != "app" {
		a.mu.Unlock()
		return resp(400, map[string]string{"error": "invalid_request"})
	}
	if !a.valid[rt] {
		a.mu.Unlock()
		return resp(400, map[string]string{"error": "invalid_grant", "error_description": "grant request is invalid"})
	}
	delete(a.valid, rt)
	a.n++
	next := fmt.Sprintf("rt-secret-%d", a.n)
	a.valid[next] = true
	hook := a.onAnswer
	n := a.n
	a.mu.Unlock()
	if hook != nil {
		hook()
	}
	return resp(200, map[string]any{"access_token": fmt.Sprintf("at-%d", n), "token_type": "Bearer", "expires_in": 60, "refresh_token": next})
}

func (a *rotatingAS) sent() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.requests...)
}

// writableProvider is the fake store with a compare-and-set Write.
type writableProvider struct {
	plainProvider
	mu     *sync.Mutex
	fail   *error // while *fail is set, Write fails with it
	writes *[]string
	// stale, when set, makes Fetch return the value before the last write.
	stale *bool
	prev  *string
	// onWrite, when set, runs at each successful Write.
	onWrite *func(value string)
}

func newWritable(st *store) writableProvider {
	var err error
	var stale bool
	var prev string
	var hook func(string)
	return writableProvider{plainProvider: plainProvider{st}, mu: &sync.Mutex{}, fail: &err, writes: &[]string{}, stale: &stale, prev: &prev, onWrite: &hook}
}

func (w writableProvider) Fetch(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
	w.mu.Lock()
	stale, prev := *w.stale, *w.prev
	w.mu.Unlock()
	if stale && ref.Path == "rt" {
		return providers.Secret{Value: providers.StringValue(prev), Version: "old"}, nil
	}
	return w.plainProvider.Fetch(ctx, ref)
}

func (w writableProvider) Write(_ context.Context, ref providers.Ref, value []byte, from string) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if *w.fail != nil {
		return "", *w.fail
	}
	st := w.s
	st.mu.Lock()
	e := st.entries[ref.Path]
	cur, ver := e.value, fmt.Sprint(e.version)
	st.mu.Unlock()
	if ver != from {
		if cur == string(value) {
			return ver, nil
		}
		return "", fmt.Errorf("write %s: %w", ref.Path, providers.ErrConflict)
	}
	*w.prev = cur
	*w.writes = append(*w.writes, string(value))
	if *w.onWrite != nil {
		(*w.onWrite)(string(value))
	}
	st.set(ref.Path, string(value))
	return fmt.Sprint(e.version), nil
}

func (w writableProvider) setFail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	*w.fail = err
}

type refreshRig struct {
	as     *rotatingAS
	st     *store
	w      writableProvider
	tk     *Tokens
	m      *TokenMetrics
	logs   *bytes.Buffer
	logMu  *sync.Mutex
	learnt map[string]int
}

func newRefreshRig(t *testing.T, p func(writableProvider) providers.Provider) *refreshRig {
	t.Helper()
	st := newStore()
	st.set("client", `{"id":"app"}`)
	st.set("rt", "rt-secret-0")
	r := &refreshRig{as: newRotatingAS("rt-secret-0"), st: st, w: newWritable(st), logs: &bytes.Buffer{}, logMu: &sync.Mutex{}, learnt: map[string]int{}}
	var prov providers.Provider = r.w
	if p != nil {
		prov = p(r.w)
	}
	r.m = NewTokenMetrics(prometheus.NewRegistry())
	var learnMu sync.Mutex
	tk, err := NewTokens(TokenOptions{
		Providers: oneSet(t, prov),
		Tokens: []TokenSpec{{Name: "api", TokenURL: "http://127.0.0.1:1/token", Grant: oauth.GrantRefreshToken, Auth: oauth.None,
			ClientID: providers.Ref{Scheme: scheme, Path: "client", Field: "id"}, RefreshToken: providers.Ref{Scheme: scheme, Path: "rt"},
			RefreshBefore: time.Minute}},
		HTTPClient: &http.Client{Transport: r.as},
		Metrics:    r.m,
		Logger:     slog.New(slog.NewTextHandler(lockedWriter{r.logMu, r.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Rand:       func() float64 { return 0.5 },
		OnCredential: func(_, what string, v providers.Value) {
			learnMu.Lock()
			defer learnMu.Unlock()
			r.learnt[what+":"+v.Reveal()]++
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.tk = tk
	return r
}

func (r *refreshRig) stored() string {
	r.st.mu.Lock()
	defer r.st.mu.Unlock()
	return r.st.entries["rt"].value
}

func (r *refreshRig) log() string {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	return r.logs.String()
}

func (r *refreshRig) run() func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.tk.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// TestRefreshRotationWrittenBack: each rotated refresh token is written
// back to the store, compare-and-set on the version read, before the
// access token that came with it is served; the masker learns both; the
// log holds neither.
func TestRefreshRotationWrittenBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRefreshRig(t, nil)
		var servedAtWrite []string
		*r.w.onWrite = func(string) {
			// The refresh token is being stored: the access token that
			// came with it must not be served yet.
			tok, _ := r.tk.Get("api")
			servedAtWrite = append(servedAtWrite, tok.AccessToken.Reveal())
		}
		if err := r.tk.Init(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := r.stored(); got != "rt-secret-1" {
			t.Fatalf("store holds %q after the first rotation, want rt-secret-1", got)
		}
		stop := r.run()
		time.Sleep(90 * time.Second) // 60 s tokens refreshed at 40 s: two more rotations
		synctest.Wait()
		stop()
		if got, want := r.as.sent(), []string{"rt-secret-0", "rt-secret-1", "rt-secret-2"}; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("refresh tokens sent %v, want %v", got, want)
		}
		if got := r.stored(); got != "rt-secret-3" {
			t.Fatalf("store holds %q, want rt-secret-3", got)
		}
		if tok, _ := r.tk.Get("api"); tok.AccessToken.Reveal() != "at-3" {
			t.Fatalf("serving %q, want at-3", tok.AccessToken.Reveal())
		}
		if fmt.Sprint(servedAtWrite) != "[ at-1 at-2]" {
			t.Fatalf("served while its refresh token was being stored: %v, want [ at-1 at-2]", servedAtWrite)
		}
		for _, v := range []string{"rt-secret-0", "rt-secret-1", "rt-secret-3"} {
			if r.learnt["refresh_token:"+v] == 0 {
				t.Errorf("the masker never learnt refresh token %s", v)
			}
		}
		if strings.Contains(r.log(), "rt-secret") || strings.Contains(r.log(), "at-") {
			t.Fatal("leaked value of a refresh or access token into the log")
		}
	})
}

// TestRefreshRefused: invalid_grant fails Init at once with an error that
// names the token and where to store a new refresh token, turns Ready red,
// and the refused refresh token is never sent again; once the store holds
// another, the loop uses it.
func TestRefreshRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRefreshRig(t, nil)
		r.st.set("rt", "rt-secret-revoked")
		err := r.tk.Init(t.Context())
		want := "token api: refresh: the authorization server refused the refresh token (status 400: invalid_grant: grant request is invalid); store a new one at fake://rt"
		if err == nil || err.Error() != want || !errors.Is(err, ErrRefreshTokenRefused) {
			t.Fatalf("err = %v, want %q", err, want)
		}
		if err := r.tk.Ready(); err == nil || err.Error() != "api refresh token refused" {
			t.Fatalf("Ready() = %v", err)
		}
		stop := r.run()
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if n := len(r.as.sent()); n != 1 {
			t.Fatalf("the refused refresh token was sent %d times", n)
		}
		if refreshCount(r.m, "api", "refresh_token_refused") < 2 {
			t.Fatal("the loop did not look at the store again")
		}
		r.st.set("rt", "rt-secret-0")
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		stop()
		if err := r.tk.Ready(); err != nil {
			t.Fatalf("not ready with a new refresh token in the store: %v", err)
		}
		if got := r.as.sent(); len(got) < 2 || got[1] != "rt-secret-0" {
			t.Fatalf("sent %v", got)
		}
	})
}

// TestRefreshWriteBackFails: while the store refuses the write-back, the
// rotated refresh token and its access token stay in memory, the access
// token is not served, and no new exchange is made (it would consume the
// only valid refresh token); once the store works, the pending one is
// written first and its access token served.
func TestRefreshWriteBackFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRefreshRig(t, nil)
		r.w.setFail(errors.New("store unavailable"))
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := r.tk.Init(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "token api: write back refresh_token: store unavailable") {
			t.Fatalf("err = %v", err)
		}
		if _, ok := r.tk.Get("api"); ok {
			t.Fatal("an access token is served before its refresh token is stored")
		}
		if n := len(r.as.sent()); n != 1 {
			t.Fatalf("%d exchanges while the write-back failed, want 1", n)
		}
		r.w.setFail(nil)
		stop := r.run()
		time.Sleep(time.Second)
		synctest.Wait()
		stop()
		if got := r.stored(); got != "rt-secret-1" {
			t.Fatalf("store holds %q, want the pending rt-secret-1", got)
		}
		if tok, ok := r.tk.Get("api"); !ok || tok.AccessToken.Reveal() != "at-1" {
			t.Fatal("the pending access token is not served once written back")
		}
		if n := len(r.as.sent()); n != 1 {
			t.Fatalf("%d exchanges, want 1", n)
		}
		if refreshCount(r.m, "api", "write_back_failed") == 0 {
			t.Fatal("no write_back_failed result counted")
		}
	})
}

// TestRefreshConflictAndStaleRead: a store that changed since it was read
// is not overwritten (its refresh token is used next); a store that still
// returns the replaced refresh token after a write (a stale read) does not
// make keyward send the consumed one.
func TestRefreshConflictAndStaleRead(t *testing.T) {
	t.Run("conflict", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRefreshRig(t, nil)
			r.as.onAnswer = func() {
				r.as.mu.Lock()
				r.as.valid["rt-secret-human"] = true
				r.as.mu.Unlock()
				r.st.set("rt", "rt-secret-human") // someone stores another one meanwhile
			}
			if err := r.tk.Init(t.Context()); err != nil {
				t.Fatal(err)
			}
			r.as.onAnswer = nil
			if got := r.stored(); got != "rt-secret-human" {
				t.Fatalf("store holds %q: a newer value was overwritten", got)
			}
			if !strings.Contains(r.log(), "changed in its store") {
				t.Fatal("the conflict is not logged")
			}
			time.Sleep(DefaultRefreshWindow)
			if _, err := r.tk.Refresh(t.Context(), "api"); err != nil {
				t.Fatal(err)
			}
			if got := r.as.sent(); got[len(got)-1] != "rt-secret-human" {
				t.Fatalf("sent %v, want the stored one last", got)
			}
		})
	})
	t.Run("stale read", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRefreshRig(t, nil)
			if err := r.tk.Init(t.Context()); err != nil {
				t.Fatal(err)
			}
			r.w.mu.Lock()
			*r.w.stale = true
			r.w.mu.Unlock()
			time.Sleep(DefaultRefreshWindow)
			if _, err := r.tk.Refresh(t.Context(), "api"); err != nil {
				t.Fatal(err)
			}
			if got := r.as.sent(); fmt.Sprint(got) != "[rt-secret-0 rt-secret-1]" {
				t.Fatalf("sent %v", got)
			}
		})
	})
}

// TestRefreshReadOnlyStore: a store that cannot be written keeps the
// rotated refresh token in memory (used by the next exchanges) and says
// loudly that a restart will use a refused one.
func TestRefreshReadOnlyStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRefreshRig(t, func(w writableProvider) providers.Provider { return w.plainProvider })
		if err := r.tk.Init(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(DefaultRefreshWindow)
		if _, err := r.tk.Refresh(t.Context(), "api"); err != nil {
			t.Fatal(err)
		}
		if got := r.as.sent(); fmt.Sprint(got) != "[rt-secret-0 rt-secret-1]" {
			t.Fatalf("sent %v", got)
		}
		if !strings.Contains(r.log(), "cannot be written") || !strings.Contains(r.log(), "level=ERROR") {
			t.Fatal("no error logged about the store that cannot be written")
		}
	})
}
