package vault

import (
	"context"
	"net/http"
	"net/url"
	"sync"

	"github.com/hashicorp/vault/api"

	"github.com/keyward/keyward/providers"
)

// request is one call to Vault's HTTP API.
type request struct {
	method string // http.MethodGet or http.MethodPut
	path   string // below /v1/, without a leading slash
	token  string // the X-Vault-Token; "" for logins
	query  url.Values
	body   map[string]any // JSON body of a PUT; nil for none
	// attempts records the failures the client retries; nil for none.
	attempts *providers.Attempts
}

// vaultAPI is the part of the Vault client the provider uses: one request
// with an explicit token. The real implementation is apiClient over
// *api.Client; unit tests fake it to produce Vault's answers and errors.
type vaultAPI interface {
	// do sends req and returns Vault's parsed answer: nil with a nil error
	// for an empty (204) answer. Vault's error answers are returned as
	// *api.ResponseError, except that a write answered 404 without a body
	// returns nil, nil; on a 404 the parsed body, when Vault sent one (the
	// metadata of a deleted KV v2 version), is returned beside the error.
	// Transport errors are returned as they are.
	do(ctx context.Context, req request) (*api.Secret, error)
	// closeIdle releases idle connections (on Close).
	closeIdle()
}

var _ vaultAPI = (*apiClient)(nil)

// apiClient sends requests with the hashicorp/vault/api client, which brings
// the namespace header, TLS, retries with backoff of transient failures
// (connection errors, 429, 5xx) and the request timeout. The api client
// holds one token, so apiClient keeps a clone per token in use (they share
// the connection pool).
type apiClient struct {
	base      *api.Client // no token: logins
	transport *http.Transport

	mu      sync.Mutex
	byToken map[string]*api.Client
}

// maxClones bounds the per-token clones kept (old tokens are dropped).
const maxClones = 4

func (a *apiClient) client(token string) (*api.Client, error) {
	if token == "" {
		return a.base, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.byToken[token]; ok {
		return c, nil
	}
	c, err := a.base.CloneWithHeaders()
	if err != nil {
		return nil, err
	}
	c.SetToken(token)
	if len(a.byToken) >= maxClones {
		clear(a.byToken)
	}
	a.byToken[token] = c
	return c, nil
}

func (a *apiClient) do(ctx context.Context, req request) (*api.Secret, error) {
	c, err := a.client(req.token)
	if err != nil {
		return nil, err
	}
	ctx = withAttempts(ctx, req.attempts)
	if req.method != http.MethodGet {
		// 404: the parsed body when it has data or warnings, else nil, nil.
		return c.Logical().WriteWithContext(ctx, req.path, req.body)
	}
	resp, err := c.Logical().ReadRawWithDataWithContext(ctx, req.path, req.query)
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			if sec, perr := api.ParseSecret(resp.Body); perr == nil {
				return sec, err
			}
		}
		return nil, err
	}
	return api.ParseSecret(resp.Body)
}

func (a *apiClient) closeIdle() { a.transport.CloseIdleConnections() }
