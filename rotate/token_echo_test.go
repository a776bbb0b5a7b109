package rotate

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/internal/oauth"
	"github.com/keyward/keyward/providers"
)

// echoAS is an authorization server that refuses every request and echoes
// what the client sent into its error: the client secret, the
// Authorization header, its base64 credentials, the decoded id:secret
// pair, the form body, each raw or escaped as echo says.
type echoAS struct {
	echo func(secret, header, b64, pair, body string) (code, description string)
}

func (a echoAS) RoundTrip(r *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	header := r.Header.Get("Authorization")
	b64 := strings.TrimPrefix(header, "Basic ")
	pair, _ := base64.StdEncoding.DecodeString(b64)
	form, _ := url.ParseQuery(string(body))
	secret := form.Get("client_secret")
	if secret == "" {
		if _, s, ok := strings.Cut(string(pair), ":"); ok {
			secret, _ = url.QueryUnescape(s)
		}
	}
	code, desc := a.echo(secret, header, b64, string(pair), string(body))
	b, _ := json.Marshal(map[string]string{"error": code, "error_description": desc})
	return &http.Response{StatusCode: 401, Status: "401 Unauthorized", Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(b)), Request: r}, nil
}

// TestTokenServerEchoesCredentials: whatever an authorization server puts
// into its error and error_description (the client secret, the Basic
// Authorization header or its base64, the id:secret pair, the form body,
// raw, percent-encoded or cut short), none of it reaches the error, the
// log, or the body of POST /v1/tokens/NAME/refresh.
func TestTokenServerEchoesCredentials(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(2, 12))
	alphabet := []rune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 &<>\"'\\/%+=:?#äé😀")
	echoes := map[string]func(secret, header, b64, pair, body string) (string, string){
		"secret":          func(s, _, _, _, _ string) (string, string) { return "invalid_client", "wrong secret " + s + " given" },
		"header":          func(_, h, _, _, _ string) (string, string) { return "invalid_client", "bad Authorization: " + h },
		"base64":          func(_, _, b, _, _ string) (string, string) { return "invalid_client", "credentials " + b + " unknown" },
		"pair":            func(_, _, _, p, _ string) (string, string) { return "invalid_client", "client " + p },
		"body":            func(_, _, _, _, b string) (string, string) { return "invalid_request", "cannot parse " + b },
		"percent-encoded": func(s, _, _, _, _ string) (string, string) { return "invalid_client", url.PathEscape(s) },
		"in the code":     func(s, _, _, _, _ string) (string, string) { return s, "" },
		"cut short":       func(s, _, _, _, _ string) (string, string) { return "invalid_client", "secret " + s[:len(s)-2] },
		"cut short, then more": func(s, _, _, _, _ string) (string, string) {
			return "invalid_client", "secret " + s[:len(s)-2] + " is not valid"
		},
		"cut mid-character": func(s, _, _, _, _ string) (string, string) {
			return "invalid_client", "secret " + s[:len(s)-1] + "\u00e4 x"
		},
		"after 300 bytes": func(s, _, _, _, _ string) (string, string) {
			return "invalid_client", strings.Repeat("x", 190) + s
		},
	}
	for name, echo := range echoes {
		for _, post := range []bool{false, true} {
			var sb strings.Builder
			for range 12 + r.IntN(20) {
				sb.WriteRune(alphabet[r.IntN(len(alphabet))])
			}
			secret := sb.String()
			t.Run(fmt.Sprintf("%s/auth_post=%v", name, post), func(t *testing.T) {
				t.Parallel()
				st := newStore()
				creds, _ := json.Marshal(map[string]string{"id": "app-client", "secret": secret})
				st.set("client", string(creds))
				var logs bytes.Buffer
				var logMu sync.Mutex
				tk, err := NewTokens(TokenOptions{
					Providers: oneSet(t, plainProvider{st}),
					Tokens: []TokenSpec{{
						Name: "api", TokenURL: "http://127.0.0.1:1/token", Auth: map[bool]string{false: oauth.ClientSecretBasic, true: oauth.ClientSecretPost}[post],
						ClientID:     providers.Ref{Scheme: scheme, Path: "client", Field: "id"},
						ClientSecret: providers.Ref{Scheme: scheme, Path: "client", Field: "secret"},
					}},
					HTTPClient: &http.Client{Transport: echoAS{echo: echo}},
					Metrics:    NewTokenMetrics(prometheus.NewRegistry()),
					Logger:     slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
				})
				if err != nil {
					t.Fatal(err)
				}
				initErr := tk.Init(t.Context())
				if initErr == nil {
					t.Fatal("Init succeeded against a server that refuses everything")
				}
				mux := http.NewServeMux()
				tk.Register(mux, "")
				w := httptest.NewRecorder()
				mux.ServeHTTP(w, httptest.NewRequest("POST", "/v1/tokens/api/refresh", nil))
				if w.Code != http.StatusServiceUnavailable {
					t.Fatalf("refresh: status %d, want 503", w.Code)
				}
				pair := url.QueryEscape("app-client") + ":" + url.QueryEscape(secret)
				forms := map[string]string{
					"client secret":                       secret,
					"percent-encoded client secret":       url.QueryEscape(secret),
					"Authorization header credentials":    base64.StdEncoding.EncodeToString([]byte(pair)),
					"id:secret pair":                      pair,
					"client secret's first 10 characters": secret[:10],
				}
				logMu.Lock()
				outputs := map[string]string{"error": initErr.Error(), "log": logs.String(), "refresh body": w.Body.String()}
				logMu.Unlock()
				for where, out := range outputs {
					for what, form := range forms {
						if strings.Contains(out, form) {
							t.Errorf("%s: leaked value of the %s", where, what)
						}
						if j, _ := json.Marshal(form); strings.Contains(out, string(j[1:len(j)-1])) {
							t.Errorf("%s: leaked value of the %s (JSON-escaped)", where, what)
						}
					}
				}
				if !strings.Contains(initErr.Error(), "token api: exchange: status 401") {
					t.Errorf("the error no longer says what failed: %v", initErr)
				}
			})
		}
	}
}
