package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// OAuthClient is one client registered at the OAuth server.
type OAuthClient struct {
	ID     string `json:"client_id"`
	Secret string `json:"client_secret,omitempty"`
	// Auth is the token_endpoint_auth_method: client_secret_basic
	// (default), client_secret_post, private_key_jwt, tls_client_auth or
	// self_signed_tls_client_auth.
	Auth string `json:"auth,omitempty"`
	// JWKS holds the client's public keys (private_key_jwt, and the
	// certificate of self_signed_tls_client_auth); see JWKS.
	JWKS json.RawMessage `json:"jwks,omitempty"`
	// SigningAlg pins the alg of its client assertions.
	SigningAlg string `json:"token_endpoint_auth_signing_alg,omitempty"`
	// SANDNS is the DNS name the certificate of tls_client_auth must have.
	SANDNS string `json:"tls_client_auth_san_dns,omitempty"`
	// GrantTypes, ResponseTypes and RedirectURIs register a client for
	// the authorization-code grant (see AuthorizationCode); the default
	// is client_credentials only.
	GrantTypes    []string `json:"grant_types,omitempty"`
	ResponseTypes []string `json:"response_types,omitempty"`
	RedirectURIs  []string `json:"redirect_uris,omitempty"`
	// ReuseGrace lets a rotated (consumed) refresh token of the client be
	// used again for that many seconds, as Okta's and Auth0's rotation
	// settings allow; 0 is oidc-provider's own rule: reuse revokes the
	// grant.
	ReuseGrace int `json:"refresh_reuse_grace,omitempty"`
}

// CodeClient returns a client for the authorization-code grant with
// refresh tokens (see AuthorizationCode), authenticating with secret, or
// a public one (auth none) when secret is "".
func CodeClient(id, secret string) OAuthClient {
	c := OAuthClient{ID: id, Secret: secret, GrantTypes: []string{"authorization_code", "refresh_token"},
		ResponseTypes: []string{"code"}, RedirectURIs: []string{codeRedirect}}
	if secret == "" {
		c.Auth = "none"
	}
	return c
}

// codeRedirect is where the authorization server sends the code; nothing
// listens there: AuthorizationCode stops at the redirect.
const codeRedirect = "http://127.0.0.1:9/callback"

// OAuth is oidc-provider (test/servers/oauth.sh, oauth/server.mjs) started
// by StartOAuth on free 127.0.0.1 ports: HTTP, and HTTPS asking for a client
// certificate (for mutual-TLS client authentication). The resource
// indicator picks a token's format and lifetime: urn:kw:opaque:SECONDS or
// urn:kw:jwt:SECONDS (default urn:kw:opaque:10).
type OAuth struct {
	// URL is the issuer, http://127.0.0.1:PORT; TokenURL its token endpoint.
	URL, TokenURL string
	// TLSTokenURL is the token endpoint over HTTPS, whose certificate CA
	// issued; it trusts client certificates that CA issued.
	TLSTokenURL string
	// CA is the test CA (see TestCA).
	CA *TestCA

	entry, script, dir, clients string
	port, tlsPort               int
	proc                        *Process
}

// StartOAuth installs (when needed) and starts the server with clients.
// Stop it with Stop.
func StartOAuth(ctx context.Context, clients []OAuthClient) (*OAuth, error) {
	entry, err := Binary("oauth.sh")
	if err != nil {
		return nil, err
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "keyward-oauth-")
	if err != nil {
		return nil, err
	}
	o, err := startOAuth(ctx, entry, filepath.Join(root, "test", "servers", "oauth", "server.mjs"), dir, clients)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return o, nil
}

func startOAuth(ctx context.Context, entry, script, dir string, clients []OAuthClient) (*OAuth, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	tlsPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	ca, err := NewTestCA()
	if err != nil {
		return nil, err
	}
	cert, key, err := ca.Issue("127.0.0.1", true)
	if err != nil {
		return nil, err
	}
	for name, b := range map[string][]byte{"server.crt": cert, "server.key": key, "ca.crt": ca.PEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return nil, err
		}
	}
	o := &OAuth{entry: entry, script: script, dir: dir, clients: filepath.Join(dir, "clients.json"), port: port, tlsPort: tlsPort, CA: ca}
	o.URL = "http://127.0.0.1:" + strconv.Itoa(port)
	o.TokenURL = o.URL + "/token"
	o.TLSTokenURL = "https://127.0.0.1:" + strconv.Itoa(tlsPort) + "/token"
	if err := o.SetClients(clients); err != nil {
		return nil, err
	}
	if err := o.Start(ctx); err != nil {
		return nil, err
	}
	return o, nil
}

// Start (re)starts a stopped server on the same port. Tokens it issued
// before are forgotten (its store is in memory).
func (o *OAuth) Start(ctx context.Context) error {
	proc, err := Start("oidc-provider", o.dir, []string{"node", o.script, strconv.Itoa(o.port), o.clients, strconv.Itoa(o.tlsPort), o.dir},
		[]string{"OIDC_PROVIDER=" + o.entry})
	if err != nil {
		return err
	}
	o.proc = proc
	if err := WaitHTTP(ctx, proc, o.URL+"/.well-known/openid-configuration", 30*time.Second, func(r *http.Response) bool { return r.StatusCode == 200 }); err != nil {
		proc.Stop()
		return err
	}
	return nil
}

// SetClients replaces the registered clients; the server re-reads them on
// every request, so this rotates a client secret at the server.
func (o *OAuth) SetClients(clients []OAuthClient) error {
	b, err := json.Marshal(clients)
	if err != nil {
		return err
	}
	tmp := o.clients + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, o.clients)
}

// Revoke revokes token (RFC 7009) as client c.
func (o *OAuth) Revoke(ctx context.Context, c OAuthClient, token string) error {
	_, err := o.post(ctx, "/token/revocation", c, url.Values{"token": {token}})
	return err
}

// Active introspects token (RFC 7662) as client c and reports whether the
// server considers it active.
func (o *OAuth) Active(ctx context.Context, c OAuthClient, token string) (bool, error) {
	b, err := o.post(ctx, "/token/introspection", c, url.Values{"token": {token}})
	if err != nil {
		return false, err
	}
	var r struct {
		Active bool `json:"active"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return false, fmt.Errorf("introspection: %w", err)
	}
	return r.Active, nil
}

func (o *OAuth) post(ctx context.Context, path string, c OAuthClient, form url.Values) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.Secret != "" {
		req.SetBasicAuth(c.ID, c.Secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("oauth %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("oauth %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("oauth %s: %s", path, resp.Status)
	}
	return b, nil
}

// AuthorizationCode runs the authorization-code grant once for c (a
// CodeClient), as a person's browser would, with PKCE: the authorization
// request, the server's login and consent (which approve at once), and
// the code's exchange at the token endpoint. It returns the refresh token
// (and the access token) of the grant. scope may be empty; resource picks
// the access token's format and lifetime.
func (o *OAuth) AuthorizationCode(ctx context.Context, c OAuthClient, scope, resource string) (refresh, access string, err error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return "", "", err
	}
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), codeRedirect) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	verifier := strings.Repeat("keyward-pkce-verifier-", 3)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"client_id": {c.ID}, "response_type": {"code"}, "redirect_uri": {codeRedirect},
		"scope": {strings.TrimSpace("openid offline_access " + scope)}, "state": {"s1"}, "prompt": {"consent"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	if resource != "" {
		q.Set("resource", resource)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL+"/auth?"+q.Encode(), nil)
	if err != nil {
		return "", "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("authorization request: %w", err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || !strings.HasPrefix(loc.String(), codeRedirect) {
		return "", "", fmt.Errorf("authorization request ended with %s, not a redirect with a code", resp.Status)
	}
	code := loc.Query().Get("code")
	if code == "" {
		return "", "", fmt.Errorf("authorization refused: %s: %s", loc.Query().Get("error"), loc.Query().Get("error_description"))
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {codeRedirect}, "code_verifier": {verifier}}
	if resource != "" {
		form.Set("resource", resource)
	}
	if c.Secret == "" {
		form.Set("client_id", c.ID)
	}
	b, err := o.post(ctx, "/token", c, form)
	if err != nil {
		return "", "", err
	}
	var tok struct {
		Refresh string `json:"refresh_token"`
		Access  string `json:"access_token"`
	}
	if err := json.Unmarshal(b, &tok); err != nil || tok.Refresh == "" {
		return "", "", fmt.Errorf("token response without a refresh token (%v)", err)
	}
	return tok.Refresh, tok.Access, nil
}

// LogTail returns the end of the server's log, for failure messages.
func (o *OAuth) LogTail() string { return o.proc.LogTail(4000) }

// Stop stops the server; Start starts it again.
func (o *OAuth) Stop() { o.proc.Stop() }

// Close stops the server and removes its directory.
func (o *OAuth) Close() {
	o.proc.Stop()
	os.RemoveAll(o.dir)
}
