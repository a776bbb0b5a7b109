// Package oauth is keyward's OAuth2 client: one token request (RFC 6749
// §3.2) to an authorization server's token endpoint, authenticated as the
// configured client, and the sanitising of what the server answers, so that
// no credential the request carried can come back in an error. It keeps no
// state and starts no goroutines; rotate's token loop decides when to ask.
package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/backoff"
)

// Grant types (RFC 6749 §4.4 and §6).
const (
	GrantClientCredentials = "client_credentials"
)

// Client authentication methods, named as in the OAuth dynamic client
// registration metadata (RFC 7591 token_endpoint_auth_method).
const (
	// ClientSecretBasic sends the client id and secret in HTTP Basic
	// authentication (RFC 6749 §2.3.1), the default.
	ClientSecretBasic = "client_secret_basic"
	// ClientSecretPost sends them in the request body.
	ClientSecretPost = "client_secret_post"
)

// maxResponse caps the token response read.
const maxResponse = 1 << 20

// Client is the client a token request authenticates as.
type Client struct {
	// ID is the client_id.
	ID string
	// Secret is the client_secret of the client_secret_* methods.
	Secret string
	// Method is the authentication method; "" means ClientSecretBasic.
	Method string
}

// Request is one token request.
type Request struct {
	// TokenURL is the token endpoint.
	TokenURL string
	// Client authenticates the request.
	Client Client
	// Grant is the grant_type; "" means GrantClientCredentials.
	Grant string
	// Scopes are sent space-separated in scope when there are any.
	Scopes []string
	// Params are further form parameters (audience, resource, …); they do
	// not override those set from the fields above.
	Params url.Values
}

// Token is a successful token response.
type Token struct {
	// AccessToken is the access token.
	AccessToken string
	// TokenType is the response's token_type, "Bearer" when absent (and
	// for any spelling of bearer).
	TokenType string
	// Expiry is when the token expires: now plus expires_in, else the exp
	// claim when the token is a JWT; zero when neither says.
	Expiry time.Time
}

// Error is the authorization server's refusal of a token request, or a
// response that could not be read. Its fields never hold a credential the
// request carried.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Code and Description are the OAuth error and error_description,
	// with every credential of the request hidden and cut to length.
	Code, Description string
	// Wait is the server's Retry-After, 0 when none.
	Wait time.Duration
}

// Error returns "status N[: CODE[: DESCRIPTION]]".
func (e *Error) Error() string {
	s := fmt.Sprintf("status %d", e.Status)
	if e.Code != "" {
		s += ": " + e.Code
	}
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// RetryAfter is the server's Retry-After (backoff.RetryAfterError).
func (e *Error) RetryAfter() time.Duration { return e.Wait }

// IsCode reports whether err is an *Error with the OAuth error code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// Exchange makes the token request r with hc (never following a redirect,
// which would re-send the client's credentials where nobody checked). A
// refusal or an unreadable answer is an *Error; a transport failure is
// returned as hc reports it. Errors carry no credential of r.
func Exchange(ctx context.Context, hc *http.Client, r Request) (*Token, error) {
	form := url.Values{}
	for k, v := range r.Params {
		form[k] = v
	}
	form.Set("grant_type", r.Grant)
	if r.Grant == "" {
		form.Set("grant_type", GrantClientCredentials)
	}
	if len(r.Scopes) > 0 {
		form.Set("scope", strings.Join(r.Scopes, " "))
	}
	method := r.Client.Method
	if method == "" {
		method = ClientSecretBasic
	}
	switch method {
	case ClientSecretBasic:
	case ClientSecretPost:
		form.Set("client_id", r.Client.ID)
		form.Set("client_secret", r.Client.Secret)
	default:
		return nil, fmt.Errorf("unknown client authentication method %q", method)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if method == ClientSecretBasic {
		// RFC 6749 §2.3.1: both form-encoded before Basic encoding.
		req.SetBasicAuth(url.QueryEscape(r.Client.ID), url.QueryEscape(r.Client.Secret))
	}
	scrub := credentialScrubber(r.Client.ID, r.Client.Secret)
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("read token response: %w", err)
	}
	return parse(resp, body, scrub, time.Now())
}

// parse reads a token response (JSON, or form-encoded as some servers
// send it) received at now.
func parse(resp *http.Response, body []byte, scrub func(string) string, now time.Time) (*Token, error) {
	var f struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
		Error       string          `json:"error"`
		Description string          `json:"error_description"`
	}
	readable := true
	switch ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct {
	case "application/x-www-form-urlencoded", "text/plain":
		v, err := url.ParseQuery(string(body))
		readable = err == nil
		f.AccessToken, f.TokenType, f.Error, f.Description = v.Get("access_token"), v.Get("token_type"), v.Get("error"), v.Get("error_description")
		if e := v.Get("expires_in"); e != "" {
			f.ExpiresIn = json.RawMessage(strconv.Quote(e))
		}
	default:
		readable = json.Unmarshal(body, &f) == nil
	}
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if !ok || f.Error != "" {
		e := &Error{Status: resp.StatusCode, Code: limit(scrub(f.Error), 64), Description: limit(scrub(f.Description), 200)}
		if ra, has := backoff.ParseRetryAfter(resp.Header.Get("Retry-After"), now); has {
			e.Wait = ra
		}
		return nil, e
	}
	if !readable || f.AccessToken == "" {
		return nil, &Error{Status: resp.StatusCode, Code: "invalid_response", Description: "the token response could not be read"}
	}
	tok := &Token{AccessToken: f.AccessToken, TokenType: f.TokenType}
	if tok.TokenType == "" || strings.EqualFold(tok.TokenType, "bearer") {
		tok.TokenType = "Bearer"
	}
	if secs, ok := expiresIn(f.ExpiresIn); ok {
		tok.Expiry = now.Add(time.Duration(secs) * time.Second)
	} else if exp, ok := jwtExpiry(f.AccessToken); ok {
		tok.Expiry = exp
	}
	return tok, nil
}

// expiresIn reads expires_in, a number or (from some servers) a string;
// zero or less counts as absent.
func expiresIn(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	var n json.Number
	if s, err := strconv.Unquote(string(raw)); err == nil {
		n = json.Number(s)
	} else {
		n = json.Number(raw)
	}
	f, err := n.Float64()
	if err != nil || f <= 0 || f > 1<<40 {
		return 0, false
	}
	return int64(f), true
}

func limit(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
