// Package oauth is keyward's OAuth2 client: one token request (RFC 6749
// §3.2) to an authorization server's token endpoint, authenticated as the
// configured client, and the sanitising of what the server answers, so that
// no credential the request carried can come back in an error. It keeps no
// state and starts no goroutines; rotate's token loop decides when to ask.
package oauth

import (
	"context"
	"crypto"
	"crypto/tls"
	"encoding/base64"
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
	"github.com/keyward/keyward/providers"
)

// Grant types (RFC 6749 §4.4 and §6).
const (
	GrantClientCredentials = "client_credentials"
	GrantRefreshToken      = "refresh_token"
)

// Client authentication methods, named as in the OAuth dynamic client
// registration metadata (RFC 7591 token_endpoint_auth_method).
const (
	// ClientSecretBasic sends the client id and secret in HTTP Basic
	// authentication (RFC 6749 §2.3.1), the default.
	ClientSecretBasic = "client_secret_basic"
	// ClientSecretPost sends them in the request body.
	ClientSecretPost = "client_secret_post"
	// PrivateKeyJWT sends a client assertion signed with the client's
	// private key (RFC 7523 §2.2), fresh for each request.
	PrivateKeyJWT = "private_key_jwt"
	// TLSClientAuth authenticates with a client certificate issued by a
	// CA the server trusts (RFC 8705 §2.1).
	TLSClientAuth = "tls_client_auth"
	// SelfSignedTLSClientAuth authenticates with a client certificate
	// registered at the server (RFC 8705 §2.2).
	SelfSignedTLSClientAuth = "self_signed_tls_client_auth"
	// None sends the client_id alone: a public client (RFC 6749 §2.1),
	// for the refresh_token grant.
	None = "none"
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
	// Key signs the client assertion of PrivateKeyJWT.
	Key crypto.Signer
	// KeyID is the assertion's kid header; "" for none.
	KeyID string
	// SigningAlg is the assertion's JWS algorithm; "" means the key's
	// default (see SigningAlg).
	SigningAlg string
	// Certificate is the TLS client certificate of the *TLSClientAuth
	// methods.
	Certificate *tls.Certificate
}

// Request is one token request.
type Request struct {
	// TokenURL is the token endpoint.
	TokenURL string
	// Client authenticates the request.
	Client Client
	// Grant is the grant_type; "" means GrantClientCredentials.
	Grant string
	// RefreshToken is the refresh_token of GrantRefreshToken.
	RefreshToken string
	// Scopes are sent space-separated in scope when there are any.
	Scopes []string
	// Params are further form parameters (audience, resource, …); they do
	// not override those set from the fields above.
	Params url.Values
	// Learn, when set, is called with each credential Exchange makes for
	// the request (the client assertion) before it is sent, naming it.
	Learn func(what, value string)
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
	// RefreshToken is the response's refresh_token, "" when it sent none.
	RefreshToken string
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
	// The credentials the request carries, which an answer may echo.
	var sent []string
	if form.Get("grant_type") == GrantRefreshToken {
		if r.RefreshToken == "" {
			return nil, errors.New("refresh_token grant without a refresh token")
		}
		form.Set("refresh_token", r.RefreshToken)
		sent = append(sent, r.RefreshToken)
	}
	switch method {
	case ClientSecretBasic:
		// RFC 6749 §2.3.1: both form-encoded before Basic encoding.
		pair := url.QueryEscape(r.Client.ID) + ":" + url.QueryEscape(r.Client.Secret)
		sent = append(sent, r.Client.Secret, pair, base64.StdEncoding.EncodeToString([]byte(pair)))
	case ClientSecretPost:
		form.Set("client_id", r.Client.ID)
		form.Set("client_secret", r.Client.Secret)
		sent = append(sent, r.Client.Secret)
	case PrivateKeyJWT:
		if r.Client.Key == nil {
			return nil, errors.New("private_key_jwt without a private key")
		}
		a, err := assertion(r.Client.Key, r.Client.SigningAlg, r.Client.KeyID, r.Client.ID, r.TokenURL, time.Now())
		if err != nil {
			return nil, err
		}
		if r.Learn != nil {
			r.Learn("client_assertion", a)
		}
		form.Set("client_id", r.Client.ID)
		form.Set("client_assertion_type", clientAssertionType)
		form.Set("client_assertion", a)
		sent = append(sent, a)
	case TLSClientAuth, SelfSignedTLSClientAuth:
		if r.Client.Certificate == nil {
			return nil, fmt.Errorf("%s without a client certificate", method)
		}
		form.Set("client_id", r.Client.ID)
	case None:
		form.Set("client_id", r.Client.ID)
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
		req.SetBasicAuth(url.QueryEscape(r.Client.ID), url.QueryEscape(r.Client.Secret))
	}
	scrub := providers.NewScrubber(sent...).Message
	c := noRedirects(hc)
	if r.Client.Certificate != nil {
		t, err := withCertificate(hc.Transport, r.Client.Certificate)
		if err != nil {
			return nil, err
		}
		// One connection for this request only: the next request may have
		// another certificate (a rotated one) and must not reuse this one.
		defer t.CloseIdleConnections()
		c.Transport = t
	}
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

// noRedirects returns a copy of hc that never follows a redirect: the 3xx
// is the answer. Every request to an authorization server goes through
// one (the token exchange, the key set of verify:), so that neither
// re-sends a request, or trusts an answer, from where nobody configured.
func noRedirects(hc *http.Client) http.Client {
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// parse reads a token response (JSON, or form-encoded as some servers
// send it) received at now.
func parse(resp *http.Response, body []byte, scrub func(string) string, now time.Time) (*Token, error) {
	var f struct {
		AccessToken  string          `json:"access_token"`
		TokenType    string          `json:"token_type"`
		RefreshToken string          `json:"refresh_token"`
		ExpiresIn    json.RawMessage `json:"expires_in"`
		Error        string          `json:"error"`
		Description  string          `json:"error_description"`
	}
	readable := true
	switch ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct {
	case "application/x-www-form-urlencoded", "text/plain":
		v, err := url.ParseQuery(string(body))
		readable = err == nil
		f.AccessToken, f.TokenType, f.RefreshToken = v.Get("access_token"), v.Get("token_type"), v.Get("refresh_token")
		f.Error, f.Description = v.Get("error"), v.Get("error_description")
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
	tok := &Token{AccessToken: f.AccessToken, TokenType: f.TokenType, RefreshToken: f.RefreshToken}
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

// withCertificate returns a transport like base (nil: the default one)
// that presents cert to servers asking for a client certificate and keeps
// no connection alive.
func withCertificate(base http.RoundTripper, cert *tls.Certificate) (*http.Transport, error) {
	if base == nil {
		base = http.DefaultTransport
	}
	bt, ok := base.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("TLS client authentication needs an *http.Transport, not %T", base)
	}
	t := bt.Clone()
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{}
	}
	// Always the configured certificate: crypto/tls would send none when
	// the server lists CAs that did not issue it (a self-signed one).
	t.TLSClientConfig.Certificates = nil
	t.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	t.DisableKeepAlives = true
	return t, nil
}
