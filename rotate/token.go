package rotate

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/backoff"
	"github.com/keyward/keyward/internal/oauth"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/render"
)

// Token defaults.
const (
	// DefaultTokenLifetime is assumed, with a warning, when the token
	// response has no expires_in, the token is no JWT with exp, and the
	// entry configures no default lifetime.
	DefaultTokenLifetime = 5 * time.Minute
	// DefaultRefreshWindow is how often POST /v1/tokens/NAME/refresh may
	// cause an exchange per token; a request within the window gets the
	// token of the last forced refresh.
	DefaultRefreshWindow = 2 * time.Second
	// DefaultExchangeTimeout bounds one token exchange, client secret
	// lookup and refresh token write-back included.
	DefaultExchangeTimeout = 30 * time.Second

	// tokenFraction is the share of a token's lifetime after which it is
	// refreshed, varied by ±tokenJitter of the lifetime.
	tokenFraction = 2.0 / 3
	tokenJitter   = 0.05
	// minTokenRecheck is the shortest wait before a scheduled exchange.
	minTokenRecheck = 500 * time.Millisecond
	// tokenRetryBase and tokenRetryMax bound the backoff of a failing
	// exchange (further bounded by a quarter of the token's lifetime).
	tokenRetryBase = 250 * time.Millisecond
	tokenRetryMax  = time.Minute
)

// Token file formats (TokenSpec.FileFormat): the raw token, or JSON with
// access_token, token_type and expires_at (RFC 3339).
const (
	TokenFileRaw  = "raw"
	TokenFileJSON = "json"
)

// TokenSpec is one OAuth2 client-credentials token to keep fresh (one entry
// of the config's tokens:).
type TokenSpec struct {
	// Name is the entry's name; it appears in logs, errors, metrics and
	// the endpoint's path.
	Name string
	// Source is SourceOAuth2 ("" too) for the OAuth2 grants that the
	// fields below configure, or SourceVault, SourceAWS or SourceGCP for the
	// credential Provider hands out (Credential asks for it).
	Source string
	// Provider is the provider instance of a source other than OAuth2 (of
	// kind vault, awssm or gcpsm for SourceVault, SourceAWS, SourceGCP).
	Provider string
	// Credential is what a source other than OAuth2 is asked for.
	Credential providers.CredentialRequest
	// Profile names the profile of the TokenFileCredentials format.
	Profile string
	// Verify, when set, checks each new token as a JWT before it is
	// served (see VerifySpec).
	Verify *VerifySpec
	// TokenURL is the authorization server's token endpoint.
	TokenURL string
	// Grant is oauth.GrantClientCredentials ("" too) or
	// oauth.GrantRefreshToken.
	Grant string
	// RefreshToken is a reference to the refresh token of the
	// refresh_token grant, read at every exchange. When the server rotates
	// it, the new one is written back there (its provider should be a
	// providers.Writer) before the access token is served.
	RefreshToken providers.Ref
	// ClientID is a reference to the client_id.
	ClientID providers.Ref
	// Auth is how the client authenticates, one of the methods of
	// internal/oauth; "" means oauth.ClientSecretBasic. oauth.None (a
	// public client) is only for the refresh_token grant.
	Auth string
	// ClientSecret (client_secret_*), PrivateKey (private_key_jwt and the
	// TLS methods) and Certificate (the TLS methods) are references to
	// the client's credentials, each used only by the methods named. Like
	// ClientID they are fetched from their providers at every exchange,
	// so a rotated one is used from the next exchange on.
	ClientSecret, PrivateKey, Certificate providers.Ref
	// KeyID is the kid of a private_key_jwt client assertion; "" for none.
	KeyID string
	// SigningAlg is the JWS algorithm of a private_key_jwt client
	// assertion; "" means the key's default (see oauth.SigningAlg).
	SigningAlg string
	// Scopes, Audience, Resource and Params go into the token request.
	Scopes             []string
	Audience, Resource string
	Params             map[string]string
	// RefreshBefore is the latest a token is refreshed before it expires,
	// when that fits in the token's lifetime.
	RefreshBefore time.Duration
	// DefaultLifetime is assumed when the response has no expires_in and
	// the token is no JWT with exp; 0 means DefaultTokenLifetime.
	DefaultLifetime time.Duration
	// File is where the token is written (atomically, 0600); "" for none.
	File string
	// FileOptions, when set, are the mode, owner and group of File
	// (--file-group); nil means 0600, owned by the process.
	FileOptions *render.Options
	// FileFormat is TokenFileRaw or TokenFileJSON, or for source aws
	// TokenFileCredentialProcess or TokenFileCredentials.
	FileFormat string
	// HTTPClient, when set, makes this token's requests (the exchange and
	// Verify's key set fetch) instead of TokenOptions.HTTPClient: one
	// that trusts the token's own CA (tls.ca_cert).
	HTTPClient *http.Client
}

// VerifySpec says how a token is checked before it is served, as the
// API that receives it would: a JWT signed with a key of the issuer's key
// set at JWKSURL, its iss Issuer and its aud including Audience (each
// when not empty), not expired. A token that fails is not served, and the
// error says which check failed.
type VerifySpec struct {
	JWKSURL, Issuer, Audience string
}

// Token is an access token as served to the workload. AccessToken is a
// providers.Value, so printing or logging a Token never shows it.
type Token struct {
	// AccessToken is the token itself (redacted when printed).
	AccessToken providers.Value
	// TokenType is the response's token_type ("Bearer" when absent).
	TokenType string
	// ExpiresAt is when the token expires: from expires_in, the JWT exp
	// claim or the default lifetime, in that order.
	ExpiresAt time.Time
	// Issued is when keyward sent the request that obtained it.
	Issued time.Time

	// parts are the parts of a credential with several (AWS), by the
	// names the provider gives them.
	parts map[string]providers.Value
}

// TokenOptions configure a Tokens.
type TokenOptions struct {
	// Providers is the provider set the client references are fetched
	// through. Required when there are tokens.
	Providers *providers.Set
	// Tokens are the tokens to keep fresh; names must be unique.
	Tokens []TokenSpec
	// HTTPClient makes the token requests; nil uses a client with
	// DefaultExchangeTimeout.
	HTTPClient *http.Client
	// RefreshWindow rate-limits forced refreshes; 0 uses
	// DefaultRefreshWindow.
	RefreshWindow time.Duration
	// Logger receives the loop's lines; nil discards them. No line
	// carries a token or a client secret.
	Logger *slog.Logger
	// Metrics records token metrics; nil records none.
	Metrics *TokenMetrics
	// Rand returns numbers in [0, 1) for jitter; nil uses math/rand/v2.
	Rand func() float64
	// OnToken, when set, is called with each new access token before it is
	// served or written anywhere (the output masker learns it first). It
	// must not block.
	OnToken func(name string, token providers.Value)
	// OnCredential, when set, is called with every credential of a
	// token's client each time it is fetched or made, before it is used:
	// what is client_secret, private_key or client_assertion (the masker
	// learns them, so that a server echoing one cannot get it into a log
	// line). It must not block.
	OnCredential func(name, what string, v providers.Value)
}

// Tokens keeps OAuth2 client-credentials tokens fresh: Init gets each one
// once, Run refreshes them before they expire, and Get, Refresh, Ready and
// Handler serve them. All methods are safe for concurrent use.
type Tokens struct {
	opts   TokenOptions
	log    *slog.Logger
	client *http.Client
	rand   func() float64
	randMu sync.Mutex
	byName map[string]*tokenState
	order  []*tokenState
}

type tokenState struct {
	spec    TokenSpec
	wake    chan struct{} // size 1: a forced refresh changed the schedule
	logFail backoff.Every

	// refresh is the refresh_token grant's state (see refreshState).
	refresh refreshState
	// verifier checks each new token (TokenSpec.Verify); nil for none.
	verifier *oauth.Verifier

	mu         sync.Mutex
	cur        *Token
	lastForced time.Time
	inflight   *exchangeCall
	expiredLog bool
}

// client is the HTTP client of st's requests: its spec's, else def.
func (st *tokenState) client(def *http.Client) *http.Client {
	if st.spec.HTTPClient != nil {
		return st.spec.HTTPClient
	}
	return def
}

type exchangeCall struct {
	done chan struct{}
	tok  *Token
	err  error
}

// NewTokens checks opts and returns a Tokens. It does no I/O.
func NewTokens(opts TokenOptions) (*Tokens, error) {
	if opts.Providers == nil && len(opts.Tokens) > 0 {
		return nil, errors.New("tokens: no providers")
	}
	t := &Tokens{opts: opts, log: opts.Logger, client: opts.HTTPClient, rand: opts.Rand, byName: map[string]*tokenState{}}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if t.client == nil {
		// oauth.Exchange follows no redirect, whatever the client.
		t.client = &http.Client{Timeout: DefaultExchangeTimeout}
	}
	if t.rand == nil {
		t.rand = rand.Float64
	}
	if t.opts.RefreshWindow <= 0 {
		t.opts.RefreshWindow = DefaultRefreshWindow
	}
	for _, s := range opts.Tokens {
		if s.Name == "" || t.byName[s.Name] != nil {
			return nil, fmt.Errorf("tokens: empty or duplicate name %q", s.Name)
		}
		if err := checkSpec(&s, opts.Providers); err != nil {
			return nil, fmt.Errorf("token %s: %w", s.Name, err)
		}
		if s.FileFormat == "" {
			s.FileFormat = TokenFileRaw
		}
		switch s.FileFormat {
		case TokenFileRaw, TokenFileJSON:
		case TokenFileCredentialProcess, TokenFileCredentials:
			if s.Source != SourceAWS {
				return nil, fmt.Errorf("token %s: file format %q is for source %s only", s.Name, s.FileFormat, SourceAWS)
			}
		default:
			return nil, fmt.Errorf("token %s: unknown file format %q", s.Name, s.FileFormat)
		}
		st := &tokenState{spec: s, wake: make(chan struct{}, 1), logFail: backoff.Every{Interval: DefaultLogEvery}}
		if v := s.Verify; v != nil {
			if v.JWKSURL == "" {
				return nil, fmt.Errorf("token %s: verify needs a jwks_url", s.Name)
			}
			st.verifier = &oauth.Verifier{JWKSURL: v.JWKSURL, Issuer: v.Issuer, Audience: v.Audience, HTTP: st.client(t.client)}
		}
		t.byName[s.Name] = st
		t.order = append(t.order, st)
	}
	return t, nil
}

// checkSpec checks s (filling in defaults) without I/O.
func checkSpec(s *TokenSpec, set *providers.Set) error {
	switch s.Source {
	case "", SourceOAuth2:
		s.Source = SourceOAuth2
	case SourceVault, SourceAWS, SourceGCP:
		if !set.Known(s.Provider) {
			return fmt.Errorf("source %s: no provider instance %q", s.Source, s.Provider)
		}
		return nil
	default:
		return fmt.Errorf("unknown source %q", s.Source)
	}
	if s.TokenURL == "" {
		return errors.New("no token_url")
	}
	if s.Auth == "" {
		s.Auth = oauth.ClientSecretBasic
	}
	switch s.Grant {
	case "", oauth.GrantClientCredentials:
		s.Grant = oauth.GrantClientCredentials
		if s.Auth == oauth.None {
			return errors.New("the client_credentials grant needs client authentication")
		}
	case oauth.GrantRefreshToken:
		if err := set.CheckRef(s.RefreshToken); err != nil {
			return fmt.Errorf("refresh_token: %w", err)
		}
	default:
		return fmt.Errorf("unknown grant %q", s.Grant)
	}
	refs, err := clientRefs(*s)
	if err != nil {
		return err
	}
	for _, r := range refs {
		if err := set.CheckRef(r.ref); err != nil {
			return fmt.Errorf("%s: %w", r.what, err)
		}
	}
	if s.SigningAlg != "" && !slices.Contains(oauth.SigningAlgs(), s.SigningAlg) {
		return fmt.Errorf("unknown signing_alg %q", s.SigningAlg)
	}
	return nil
}

// Names returns the token names in configuration order.
func (t *Tokens) Names() []string {
	out := make([]string, len(t.order))
	for i, st := range t.order {
		out[i] = st.spec.Name
	}
	return out
}

// Init gets every token once (retrying transient failures until ctx is
// done) and writes its file. It returns an error naming every token that
// could not be obtained; a rejected request (a 4xx other than 429) is not
// retried.
func (t *Tokens) Init(ctx context.Context) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, st := range t.order {
		wg.Go(func() {
			b := &backoff.Backoff{Base: tokenRetryBase, Max: 5 * time.Second}
			err := backoff.Retry(ctx, b, func(ctx context.Context) error {
				_, err := t.exchange(ctx, st, false)
				if err != nil && !retryable(err) {
					return backoff.Permanent(err)
				}
				if err != nil {
					t.logFailure(st, err)
				}
				return err
			})
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Run refreshes every token before it expires until ctx is done, then
// returns nil once all its goroutines have exited. Call it after Init.
func (t *Tokens) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, st := range t.order {
		wg.Go(func() { t.loop(ctx, st) })
	}
	wg.Wait()
	return nil
}

// random is Options.Rand, made safe for the concurrent token loops.
func (t *Tokens) random() float64 {
	t.randMu.Lock()
	defer t.randMu.Unlock()
	return t.rand()
}

// loop is one token's refresh loop.
func (t *Tokens) loop(ctx context.Context, st *tokenState) {
	b := &backoff.Backoff{Base: tokenRetryBase, Max: tokenRetryMax, Rand: t.random}
	var retryAt time.Time
	for {
		now := time.Now()
		at := retryAt
		if at.IsZero() {
			at = t.refreshAt(st, now)
		}
		timer := time.NewTimer(at.Sub(now))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-st.wake:
			timer.Stop()
			retryAt = time.Time{}
			b.Reset()
			continue
		case <-timer.C:
		}
		_, err := t.exchange(ctx, st, false)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			retryAt = time.Time{}
			b.Reset()
			continue
		}
		t.logFailure(st, err)
		// Retry sooner for short-lived tokens: at most a quarter of the
		// lifetime of the last good one.
		b.Max = tokenRetryMax
		if cur := st.current(); cur != nil {
			b.Max = min(tokenRetryMax, max(time.Second, cur.ExpiresAt.Sub(cur.Issued)/4))
		}
		d := b.NextAfter(backoff.RetryAfter(err))
		retryAt = time.Now().Add(max(d, minTokenRecheck/5))
	}
}

// refreshAt is when st's current token should be replaced: at about 2/3
// of its lifetime (±5% of the lifetime at random), and no later than
// RefreshBefore before it expires when that still leaves half the lifetime.
func (t *Tokens) refreshAt(st *tokenState, now time.Time) time.Time {
	cur := st.current()
	if cur == nil {
		return now
	}
	life := cur.ExpiresAt.Sub(cur.Issued)
	r := t.random()
	frac := tokenFraction + tokenJitter*(2*r-1)
	at := cur.Issued.Add(time.Duration(frac * float64(life)))
	if rb := st.spec.RefreshBefore; rb > 0 && rb <= life/2 {
		at = earliest(at, cur.ExpiresAt.Add(-rb))
	}
	return later(at, now.Add(minTokenRecheck))
}

func (st *tokenState) current() *Token {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.cur
}

// exchange obtains a new token for st, joining an exchange already in
// flight. A forced exchange (the refresh endpoint) is rate-limited: within
// RefreshWindow of the last forced one, the current token is returned.
func (t *Tokens) exchange(ctx context.Context, st *tokenState, forced bool) (*Token, error) {
	st.mu.Lock()
	if c := st.inflight; c != nil {
		st.mu.Unlock()
		select {
		case <-c.done:
			return c.tok, c.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	now := time.Now()
	if forced {
		if st.cur != nil && now.Sub(st.lastForced) < t.opts.RefreshWindow && now.Before(st.cur.ExpiresAt) {
			cur := st.cur
			st.mu.Unlock()
			t.opts.Metrics.refresh(st.spec.Name, "rate_limited")
			return cur, nil
		}
		st.lastForced = now
	}
	c := &exchangeCall{done: make(chan struct{})}
	st.inflight = c
	st.mu.Unlock()

	// The exchange outlives a caller that goes away (its result serves
	// the others), but not the timeout.
	xctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultExchangeTimeout)
	stop := context.AfterFunc(ctx, func() {
		if !forced {
			cancel()
		}
	})
	c.tok, c.err = t.doExchange(xctx, st)
	stop()
	cancel()

	st.mu.Lock()
	if c.err == nil {
		st.cur = c.tok
		st.expiredLog = false
	}
	st.inflight = nil
	st.mu.Unlock()
	close(c.done)
	if c.err == nil {
		if forced {
			select {
			case st.wake <- struct{}{}:
			default:
			}
		}
		st.logFail.Reset()
	}
	return c.tok, c.err
}

// doExchange runs the client-credentials grant, re-fetching the client
// credentials once when the server answers invalid_client, writes the
// file, and records metrics.
func (t *Tokens) doExchange(ctx context.Context, st *tokenState) (*Token, error) {
	name := st.spec.Name
	start := time.Now()
	tok, err := t.grant(ctx, st)
	if oauth.IsCode(err, "invalid_client") {
		t.log.Warn("token: client authentication failed, fetching the client credentials again", "token", name)
		t.opts.Metrics.refresh(name, resultWord(err))
		tok, err = t.grant(ctx, st)
	}
	if err == nil && st.verifier != nil {
		var exp time.Time
		if exp, err = st.verifier.Verify(ctx, tok.AccessToken.Reveal(), time.Now()); err != nil {
			err = &TokenError{Token: name, Op: "verify", Err: err}
		} else if exp.Before(tok.ExpiresAt) {
			tok.ExpiresAt = exp
		}
	}
	t.opts.Metrics.latency(name, time.Since(start))
	if err == nil {
		if t.opts.OnToken != nil {
			t.opts.OnToken(name, tok.AccessToken)
		}
		err = t.writeFile(st, tok)
	}
	t.opts.Metrics.refresh(name, resultWord(err))
	if err != nil {
		return nil, err
	}
	t.opts.Metrics.expiry(name, tok.ExpiresAt)
	t.log.Debug("token refreshed", "token", name, "expires_in", tok.ExpiresAt.Sub(tok.Issued).Round(time.Millisecond), "took", time.Since(start))
	return tok, nil
}

// namedRef is one reference of a token's client.
type namedRef struct {
	what string // client_id, client_secret, private_key, certificate
	ref  providers.Ref
}

// clientRefs returns the references s's client authentication method
// uses, client_id first.
func clientRefs(s TokenSpec) ([]namedRef, error) {
	refs := []namedRef{{"client_id", s.ClientID}}
	switch s.Auth {
	case oauth.ClientSecretBasic, oauth.ClientSecretPost:
		refs = append(refs, namedRef{"client_secret", s.ClientSecret})
	case oauth.PrivateKeyJWT:
		refs = append(refs, namedRef{"private_key", s.PrivateKey})
	case oauth.TLSClientAuth, oauth.SelfSignedTLSClientAuth:
		refs = append(refs, namedRef{"certificate", s.Certificate}, namedRef{"private_key", s.PrivateKey})
	case oauth.None:
	default:
		return nil, fmt.Errorf("unknown client authentication method %q", s.Auth)
	}
	return refs, nil
}

// oauthClient fetches the credentials of s's client and returns it; errors are
// *TokenError.
func (t *Tokens) oauthClient(ctx context.Context, s TokenSpec) (oauth.Client, error) {
	refs, err := clientRefs(s)
	if err != nil {
		return oauth.Client{}, &TokenError{Token: s.Name, Op: "client", Err: err}
	}
	vals, err := t.fetchClient(ctx, s.Name, refs)
	if err != nil {
		return oauth.Client{}, err
	}
	c := oauth.Client{ID: vals["client_id"].Reveal(), Secret: vals["client_secret"].Reveal(), Method: s.Auth, KeyID: s.KeyID, SigningAlg: s.SigningAlg}
	switch s.Auth {
	case oauth.PrivateKeyJWT:
		if c.Key, err = oauth.ParsePrivateKey(vals["private_key"].Bytes()); err == nil {
			c.SigningAlg, err = oauth.SigningAlg(c.Key, s.SigningAlg)
		}
		if err != nil {
			return oauth.Client{}, &TokenError{Token: s.Name, Op: "read private_key", Err: err}
		}
	case oauth.TLSClientAuth, oauth.SelfSignedTLSClientAuth:
		if c.Certificate, err = oauth.ParseCertificate(vals["certificate"].Bytes(), vals["private_key"].Bytes()); err != nil {
			return oauth.Client{}, &TokenError{Token: s.Name, Op: "read certificate", Err: err}
		}
	}
	return c, nil
}

// grant fetches the client credentials (and the refresh token) and makes
// one token request; for the refresh_token grant it writes back a rotated
// refresh token first.
func (t *Tokens) grant(ctx context.Context, st *tokenState) (*Token, error) {
	s := st.spec
	if s.Source != SourceOAuth2 {
		return t.sourced(ctx, st)
	}
	if refreshGrant(s) {
		if tok, err := t.flushPending(ctx, st); tok != nil || err != nil {
			return tok, err
		}
	}
	client, err := t.oauthClient(ctx, s)
	if err != nil {
		return nil, err
	}
	req := oauth.Request{
		TokenURL: s.TokenURL,
		Client:   client,
		Scopes:   s.Scopes,
		Params:   url.Values{},
	}
	if t.opts.OnCredential != nil {
		req.Learn = func(what, v string) { t.opts.OnCredential(s.Name, what, providers.StringValue(v)) }
	}
	for k, v := range s.Params {
		req.Params.Set(k, v)
	}
	if s.Audience != "" {
		req.Params.Set("audience", s.Audience)
	}
	if s.Resource != "" {
		req.Params.Set("resource", s.Resource)
	}
	var rt refreshRead
	if refreshGrant(s) {
		if rt, err = t.readRefreshToken(ctx, st); err != nil {
			return nil, err
		}
		req.Grant, req.RefreshToken = oauth.GrantRefreshToken, rt.value.Reveal()
	}
	issued := time.Now()
	ot, err := oauth.Exchange(ctx, st.client(t.client), req)
	if err != nil {
		if refreshGrant(s) && oauth.IsCode(err, "invalid_grant") {
			return nil, t.refuse(st, rt, err)
		}
		return nil, &TokenError{Token: s.Name, Op: "exchange", Err: err}
	}
	tok := &Token{AccessToken: providers.StringValue(ot.AccessToken), TokenType: ot.TokenType, Issued: issued, ExpiresAt: ot.Expiry}
	if tok.ExpiresAt.IsZero() {
		life := s.DefaultLifetime
		if life <= 0 {
			life = DefaultTokenLifetime
		}
		t.log.Warn("token response has no expires_in and the token carries no exp claim; assuming a lifetime", "token", s.Name, "lifetime", life)
		tok.ExpiresAt = issued.Add(life)
	}
	if refreshGrant(s) {
		// Before anything else: a rotated refresh token replaces the only
		// valid one.
		if err := t.storeRotated(ctx, st, rt, ot.RefreshToken, tok); err != nil {
			return nil, err
		}
	}
	if !tok.ExpiresAt.After(issued) {
		return nil, &TokenError{Token: s.Name, Op: "exchange", Err: errors.New("the server issued a token that has already expired")}
	}
	return tok, nil
}

// fetchClient fetches the references of a token's client through one plan
// of the provider set: those that are fields of one secret come from one
// read of it, so from one version (a client_id and client_secret, a
// certificate and its private key). The credentials among them reach
// OnCredential before anything else. Errors are *TokenError naming the
// first reference, in refs' order, that failed.
func (t *Tokens) fetchClient(ctx context.Context, token string, refs []namedRef) (map[string]providers.Value, error) {
	set := t.opts.Providers
	byName := make(map[string]providers.Ref, len(refs))
	for _, r := range refs {
		byName[r.what] = r.ref
	}
	plan, failures := set.Plan(byName)
	errs := map[string]error{}
	for _, f := range failures {
		errs[f.Name] = f.Err
	}
	vals := map[string]providers.Value{}
	for i, got := range set.FetchPlan(ctx, plan) {
		for _, what := range plan.Sources()[i].Names {
			if got.Err != nil {
				errs[what] = got.Err
				continue
			}
			r, err := plan.Pick(what, got.Secret)
			if err != nil {
				errs[what] = err
				continue
			}
			vals[what] = r.Value
			if what != "client_id" && what != "certificate" {
				t.learn(token, what, r.Value)
			}
		}
	}
	for _, r := range refs {
		if err := errs[r.what]; err != nil {
			return nil, &TokenError{Token: token, Op: "fetch " + r.what, Err: err}
		}
	}
	return vals, nil
}

// fetchVersioned reads ref's value, and the version of its secret, through
// the provider set.
func (t *Tokens) fetchVersioned(ctx context.Context, ref providers.Ref) (providers.Value, string, error) {
	set := t.opts.Providers
	plan, failures := set.Plan(map[string]providers.Ref{"v": ref})
	if len(failures) > 0 {
		return providers.Value{}, "", failures[0].Err
	}
	got := set.FetchPlan(ctx, plan)[0]
	if got.Err != nil {
		return providers.Value{}, "", got.Err
	}
	r, err := plan.Pick("v", got.Secret)
	return r.Value, got.Secret.Version, err
}

// tokenFileJSON is the JSON file format.
type tokenFileJSON struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// encode returns the token in the file format (profile: of the AWS
// credentials file).
func (tok *Token) encode(format, profile string) []byte {
	switch format {
	case TokenFileCredentialProcess, TokenFileCredentials:
		return tok.encodeAWS(format, profile)
	}
	if format == TokenFileJSON {
		b, _ := json.Marshal(tokenFileJSON{AccessToken: tok.AccessToken.Reveal(), TokenType: tok.TokenType, ExpiresAt: tok.ExpiresAt.UTC()})
		return append(b, '\n')
	}
	return tok.AccessToken.Bytes()
}

func (t *Tokens) writeFile(st *tokenState, tok *Token) error {
	if st.spec.File == "" {
		return nil
	}
	opts := render.Options{UID: -1, GID: -1}
	if o := st.spec.FileOptions; o != nil {
		opts = *o
	}
	if _, err := render.WriteFile(st.spec.File, tok.encode(st.spec.FileFormat, st.spec.Profile), opts); err != nil {
		return &TokenError{Token: st.spec.Name, Op: "write file", Err: err}
	}
	return nil
}

func (t *Tokens) logFailure(st *tokenState, err error) {
	if ok, n := st.logFail.Allow(); ok {
		args := []any{"token", st.spec.Name, "err", err}
		if n > 0 {
			args = append(args, "suppressed", n)
		}
		if cur := st.current(); cur != nil && time.Now().Before(cur.ExpiresAt) {
			args = append(args, "serving_last_good_until", cur.ExpiresAt.UTC().Format(time.RFC3339))
		}
		t.log.Warn("token refresh failed", args...)
	}
}

// Get returns the named token while it is valid. It reports false for an
// unknown name, before the first token, and once the last token expired.
func (t *Tokens) Get(name string) (Token, bool) {
	st := t.byName[name]
	if st == nil {
		return Token{}, false
	}
	cur := st.current()
	if cur == nil || !time.Now().Before(cur.ExpiresAt) {
		return Token{}, false
	}
	return *cur, true
}

// Refresh obtains a new token for name now (for a workload that got a
// 401), coalescing concurrent callers into one exchange; within the refresh
// window of the previous forced refresh it returns that refresh's token
// instead. The exchange continues for the other callers when ctx ends.
func (t *Tokens) Refresh(ctx context.Context, name string) (Token, error) {
	st := t.byName[name]
	if st == nil {
		return Token{}, fmt.Errorf("token %s: %w", name, ErrUnknownToken)
	}
	tok, err := t.exchange(ctx, st, true)
	if err != nil {
		return Token{}, err
	}
	return *tok, nil
}

// Ready returns nil while every token has a valid token, and an error
// naming the tokens that never had one or whose last one expired without
// replacement ("api expired, partner not obtained yet"). It serves as a
// server.ReadyCheck: the message carries no token, and no "tokens:"
// prefix, which /readyz adds.
func (t *Tokens) Ready() error {
	var bad []string
	now := time.Now()
	for _, st := range t.order {
		cur := st.current()
		st.mu.Lock()
		refused := st.refresh.refused != ""
		st.mu.Unlock()
		switch {
		case refused:
			bad = append(bad, st.spec.Name+" refresh token refused")
		case cur == nil:
			bad = append(bad, st.spec.Name+" not obtained yet")
		case !now.Before(cur.ExpiresAt):
			bad = append(bad, st.spec.Name+" expired")
		}
	}
	if bad == nil {
		return nil
	}
	return errors.New(strings.Join(bad, ", "))
}

// ErrUnknownToken is returned for a name that is no configured token.
var ErrUnknownToken = errors.New("no such token")

// TokenError is a failure to obtain a token. Its message names the token,
// the step, and for a refusal by the server the HTTP status and the OAuth
// error code and description; never a token or a client secret.
type TokenError struct {
	// Token is the entry's name.
	Token string
	// Op is the step that failed ("fetch client_secret", "exchange", …).
	Op string
	// Err is the cause.
	Err error
}

// Error returns "token NAME: OP: CAUSE".
func (e *TokenError) Error() string { return "token " + e.Token + ": " + e.Op + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *TokenError) Unwrap() error { return e.Err }

// retryable reports whether a failed exchange may succeed if tried again
// unchanged: throttling, server errors and network failures.
func retryable(err error) bool {
	if backoff.IsPermanent(err) {
		// Refused for what it is (a credential file that is a FIFO, say).
		return false
	}
	var oe *oauth.Error
	if errors.As(err, &oe) {
		return oe.Status == http.StatusTooManyRequests || oe.Status >= 500 || oe.Status == 0 ||
			(oe.Status >= 200 && oe.Status < 300)
	}
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		// The server's certificate is not trusted (tls.ca_cert, the
		// system's roots): no retry makes it so.
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var te *TokenError
	if errors.As(err, &te) && te.Op == writeBackOp {
		// The only valid refresh token is in memory: keep trying to store
		// it, whatever the store said (a policy may be fixed meanwhile).
		return true
	}
	if errors.Is(err, ErrRefreshTokenRefused) || errors.Is(err, errors.ErrUnsupported) || errors.Is(err, providers.ErrInvalidReference) ||
		errors.Is(err, oauth.ErrNotVerified) {
		return false
	}
	if errors.As(err, &te) && strings.HasPrefix(te.Op, "read ") {
		// A credential that is no key or certificate, or does not fit
		// the configuration: wait for someone to fix the store.
		return false
	}
	if errors.As(err, &te) && te.Op != "exchange" {
		// A provider failure fetching the client credentials or a
		// file write: retried like the engine retries its secrets.
		return !errors.Is(err, providers.ErrNotFound) && !errors.Is(err, providers.ErrPermissionDenied)
	}
	return !errors.Is(err, context.Canceled)
}

// resultWord is the refreshes metric's result label of err.
func resultWord(err error) string {
	var oe *oauth.Error
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &oe) && oe.Status == http.StatusTooManyRequests:
		return "throttled"
	case errors.As(err, &oe) && oe.Code == "invalid_client":
		return "invalid_client"
	case errors.As(err, &oe) && oe.Status >= 500:
		return "server_error"
	case errors.As(err, &oe) && oe.Status >= 400:
		return "rejected"
	}
	var te *TokenError
	switch {
	case errors.Is(err, ErrRefreshTokenRefused):
		return "refresh_token_refused"
	case errors.Is(err, oauth.ErrNotVerified), errors.As(err, &te) && te.Op == "verify":
		return "not_verified"
	case errors.As(err, &te) && te.Op == writeBackOp:
		return "write_back_failed"
	case errors.As(err, &te) && te.Op != "exchange":
		return "client_credentials_error"
	}
	return "error"
}
