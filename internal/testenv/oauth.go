package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
	Secret string `json:"client_secret"`
	// Auth is client_secret_basic (default) or client_secret_post.
	Auth string `json:"auth,omitempty"`
}

// OAuth is oidc-provider (test/servers/oauth.sh) started by StartOAuth on a
// free 127.0.0.1 port, limited to the client_credentials grant. The
// resource indicator picks a token's format and lifetime:
// urn:kw:opaque:SECONDS or urn:kw:jwt:SECONDS (default urn:kw:opaque:10).
type OAuth struct {
	// URL is the issuer, http://127.0.0.1:PORT; TokenURL its token endpoint.
	URL, TokenURL string

	script, dir, clients string
	port                 int
	proc                 *Process
}

// StartOAuth installs (when needed) and starts the server with clients.
// Stop it with Stop.
func StartOAuth(ctx context.Context, clients []OAuthClient) (*OAuth, error) {
	script, err := Binary("oauth.sh")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "keyward-oauth-")
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	o := &OAuth{script: script, dir: dir, clients: filepath.Join(dir, "clients.json"), port: port}
	o.URL = "http://127.0.0.1:" + strconv.Itoa(port)
	o.TokenURL = o.URL + "/token"
	if err := o.SetClients(clients); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := o.Start(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return o, nil
}

// Start (re)starts a stopped server on the same port. Tokens it issued
// before are forgotten (its store is in memory).
func (o *OAuth) Start(ctx context.Context) error {
	proc, err := Start("oidc-provider", o.dir, []string{"node", o.script, strconv.Itoa(o.port), o.clients}, nil)
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
	req.SetBasicAuth(c.ID, c.Secret)
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

// LogTail returns the end of the server's log, for failure messages.
func (o *OAuth) LogTail() string { return o.proc.LogTail(4000) }

// Stop stops the server; Start starts it again.
func (o *OAuth) Stop() { o.proc.Stop() }

// Close stops the server and removes its directory.
func (o *OAuth) Close() {
	o.proc.Stop()
	os.RemoveAll(o.dir)
}
