package oauth

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// roundTrip answers every request with fn, recording the last request.
type roundTrip func(r *http.Request, form url.Values) (status int, header http.Header, body string)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) {
	b, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(b))
	status, h, body := f(r, form)
	if h == nil {
		h = http.Header{"Content-Type": {"application/json"}}
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
}

func TestExchangeRequest(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		method string
		check  func(t *testing.T, r *http.Request, form url.Values)
	}{
		{"basic", ClientSecretBasic, func(t *testing.T, r *http.Request, form url.Values) {
			id, secret, ok := r.BasicAuth()
			// RFC 6749 §2.3.1: form-encoded, then Basic.
			if !ok || id != "my+app%3A" || secret != "s%26cr%C3%A9" {
				t.Errorf("basic credentials %q %q %v", id, secret, ok)
			}
			if form.Has("client_secret") || form.Has("client_id") {
				t.Error("basic auth also put the credentials in the body")
			}
		}},
		{"default is basic", "", func(t *testing.T, r *http.Request, form url.Values) {
			if _, _, ok := r.BasicAuth(); !ok {
				t.Error("no Basic authentication")
			}
		}},
		{"post", ClientSecretPost, func(t *testing.T, r *http.Request, form url.Values) {
			if _, _, ok := r.BasicAuth(); ok {
				t.Error("post auth sent Basic authentication")
			}
			if form.Get("client_id") != "my app:" || form.Get("client_secret") != "s&cré" {
				t.Error("post auth: client credentials not in the body")
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			hc := &http.Client{Transport: roundTrip(func(r *http.Request, form url.Values) (int, http.Header, string) {
				if r.Method != "POST" || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
					t.Errorf("%s %s", r.Method, r.Header.Get("Content-Type"))
				}
				if form.Get("grant_type") != "client_credentials" || form.Get("scope") != "read write" || form.Get("audience") != "api" {
					t.Errorf("form %v", form)
				}
				c.check(t, r, form)
				return 200, nil, `{"access_token":"at","token_type":"bearer","expires_in":60}`
			})}
			tok, err := Exchange(t.Context(), hc, Request{
				TokenURL: "http://127.0.0.1:1/token",
				Client:   Client{ID: "my app:", Secret: "s&cré", Method: c.method},
				Scopes:   []string{"read", "write"},
				Params:   url.Values{"audience": {"api"}, "grant_type": {"password"}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken != "at" || tok.TokenType != "Bearer" {
				t.Errorf("token %q type %q", tok.AccessToken, tok.TokenType)
			}
			if d := time.Until(tok.Expiry); d < 50*time.Second || d > 61*time.Second {
				t.Errorf("expires in %v, want about 60s", d)
			}
		})
	}
}

func TestExchangeResponses(t *testing.T) {
	t.Parallel()
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	jwt := "h." + enc(`{"exp":1700000000}`) + ".s"
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	cases := []struct {
		name     string
		status   int
		header   http.Header
		body     string
		wantErr  string
		wantType string
		wantExp  func(time.Time) bool
	}{
		{name: "string expires_in", status: 200, body: `{"access_token":"a","expires_in":"30"}`, wantType: "Bearer",
			wantExp: func(e time.Time) bool { d := time.Until(e); return d > 20*time.Second && d <= 30*time.Second }},
		{name: "form-encoded", status: 200, header: form, body: "access_token=a&token_type=mac&expires_in=30", wantType: "mac",
			wantExp: func(e time.Time) bool { return !e.IsZero() }},
		{name: "JWT exp", status: 200, body: `{"access_token":"` + jwt + `"}`, wantType: "Bearer",
			wantExp: func(e time.Time) bool { return e.Unix() == 1700000000 }},
		{name: "expires_in wins over exp", status: 200, body: `{"access_token":"` + jwt + `","expires_in":30}`, wantType: "Bearer",
			wantExp: func(e time.Time) bool { return e.After(time.Now()) }},
		{name: "no lifetime", status: 200, body: `{"access_token":"a","expires_in":0}`, wantType: "Bearer",
			wantExp: func(e time.Time) bool { return e.IsZero() }},
		{name: "refused", status: 400, body: `{"error":"invalid_scope","error_description":"no such scope"}`, wantErr: "status 400: invalid_scope: no such scope"},
		{name: "error in a 200", status: 200, body: `{"error":"invalid_grant"}`, wantErr: "status 200: invalid_grant"},
		{name: "no access_token", status: 200, body: `{"token_type":"Bearer"}`, wantErr: "status 200: invalid_response: the token response could not be read"},
		{name: "not JSON", status: 200, body: `<html>`, wantErr: "status 200: invalid_response: the token response could not be read"},
		{name: "HTML error page", status: 502, body: `<html>bad gateway</html>`, wantErr: "status 502"},
		{name: "long description", status: 400, body: `{"error":"x","error_description":"` + strings.Repeat("d", 300) + `"}`,
			wantErr: "status 400: x: " + strings.Repeat("d", 200) + "…"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			hc := &http.Client{Transport: roundTrip(func(*http.Request, url.Values) (int, http.Header, string) { return c.status, c.header, c.body })}
			tok, err := Exchange(t.Context(), hc, Request{TokenURL: "http://127.0.0.1:1/token", Client: Client{ID: "app", Secret: "secret-value-1"}})
			if c.wantErr != "" {
				var e *Error
				if err == nil || err.Error() != c.wantErr || !asError(err, &e) {
					t.Fatalf("err %v, want *Error %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tok.TokenType != c.wantType || !c.wantExp(tok.Expiry) {
				t.Errorf("type %q expiry %v", tok.TokenType, tok.Expiry)
			}
		})
	}
}

func asError(err error, e **Error) bool {
	v, ok := err.(*Error)
	*e = v
	return ok
}

func TestExchangeRetryAfter(t *testing.T) {
	t.Parallel()
	hc := &http.Client{Transport: roundTrip(func(*http.Request, url.Values) (int, http.Header, string) {
		return 429, http.Header{"Retry-After": {"7"}}, `{"error":"slow_down"}`
	})}
	_, err := Exchange(t.Context(), hc, Request{TokenURL: "http://127.0.0.1:1/token", Client: Client{ID: "a", Secret: "long-enough-secret"}})
	e, ok := err.(*Error)
	if !ok || e.RetryAfter() != 7*time.Second || !IsCode(err, "slow_down") {
		t.Fatalf("err %#v", err)
	}
}

// TestExchangeRefusesRedirects: even with an http.Client that follows
// redirects, the credentials are not re-sent to a redirect's target.
func TestExchangeRefusesRedirects(t *testing.T) {
	t.Parallel()
	var followed atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed.Store(true) }))
	defer target.Close()
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/token", http.StatusTemporaryRedirect)
	}))
	defer as.Close()
	_, err := Exchange(context.Background(), http.DefaultClient, Request{TokenURL: as.URL, Client: Client{ID: "a", Secret: "redirect-secret", Method: ClientSecretPost}})
	if followed.Load() {
		t.Fatal("the redirect was followed: the client secret went to another endpoint")
	}
	if !IsCode(err, "") || err.Error() != "status 307" {
		t.Fatalf("err %v, want status 307", err)
	}
}

func TestJWTExpiry(t *testing.T) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	cases := []struct {
		name, tok string
		want      int64
		ok        bool
	}{
		{"exp", "h." + enc(`{"exp":1700000000}`) + ".s", 1700000000, true},
		{"padded", "h." + base64.URLEncoding.EncodeToString([]byte(`{"exp":1700000000,"x":1}`)) + ".s", 1700000000, true},
		{"float exp", "h." + enc(`{"exp":1700000000.5}`) + ".s", 1700000000, true},
		{"no exp", "h." + enc(`{"sub":"a"}`) + ".s", 0, false},
		{"string exp", "h." + enc(`{"exp":"soon"}`) + ".s", 0, false},
		{"opaque", "abcdef", 0, false},
		{"two parts", "a.b", 0, false},
		{"bad base64", "a.!!!.c", 0, false},
		{"not json", "a." + enc("xyz") + ".c", 0, false},
	}
	for _, c := range cases {
		got, ok := jwtExpiry(c.tok)
		if ok != c.ok || (ok && got.Unix() != c.want) {
			t.Errorf("%s: %v %v, want %v %v", c.name, got.Unix(), ok, c.want, c.ok)
		}
	}
}

// TestRefreshTokenGrant: the refresh token goes in the body, a public
// client sends its id alone, the answer's new refresh token is returned,
// and a server that echoes the refresh token in its error cannot show it.
func TestRefreshTokenGrant(t *testing.T) {
	t.Parallel()
	const rt = "refresh-token-value-0001"
	hc := &http.Client{Transport: roundTrip(func(r *http.Request, form url.Values) (int, http.Header, string) {
		if _, _, ok := r.BasicAuth(); ok || form.Get("grant_type") != "refresh_token" || form.Get("refresh_token") != rt ||
			form.Get("client_id") != "cli" || form.Has("client_secret") {
			return 400, nil, `{"error":"invalid_request","error_description":"got ` + form.Encode() + `"}`
		}
		return 200, nil, `{"access_token":"at","refresh_token":"refresh-token-value-0002","expires_in":60}`
	})}
	tok, err := Exchange(t.Context(), hc, Request{TokenURL: "http://127.0.0.1:1/token", Grant: GrantRefreshToken, RefreshToken: rt, Client: Client{ID: "cli", Method: None}})
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken != "refresh-token-value-0002" {
		t.Fatalf("refresh token %q", tok.RefreshToken)
	}
	echo := &http.Client{Transport: roundTrip(func(r *http.Request, form url.Values) (int, http.Header, string) {
		return 400, nil, `{"error":"invalid_grant","error_description":"token ` + form.Get("refresh_token")[:20] + ` expired"}`
	})}
	_, err = Exchange(t.Context(), echo, Request{TokenURL: "http://127.0.0.1:1/token", Grant: GrantRefreshToken, RefreshToken: rt, Client: Client{ID: "cli", Method: None}})
	if err == nil || strings.Contains(err.Error(), rt[:20]) || !IsCode(err, "invalid_grant") {
		t.Fatal("leaked value of the refresh token into the error, or no invalid_grant")
	}
}
