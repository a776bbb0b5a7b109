package runner

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/oauth"
	"github.com/keyward/keyward/internal/server"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/render"
	"github.com/keyward/keyward/rotate"
)

// Environment of the child when the config has tokens.
const (
	// envTokenPrefix + NAME (upper-cased, other characters as '_') holds
	// each access token as it was when the child started: env cannot
	// follow a refresh, the token file and the endpoint do.
	envTokenPrefix = "KEYWARD_TOKEN_"
	// envTokenEndpoint is the endpoint's base: http://HOST:PORT, or
	// unix:/path for a unix socket.
	envTokenEndpoint = "KEYWARD_TOKEN_ENDPOINT"
	// envTokenGuardFile names the 0600 file holding the per-start random
	// value the X-Keyward-Token header must carry on a TCP listener. In
	// keyward's own environment it chooses that file's path.
	envTokenGuardFile = "KEYWARD_TOKEN_GUARD_FILE"
)

// tokenAuth maps the config's auth: to the client authentication method.
var tokenAuth = map[string]string{
	config.AuthBasic:               oauth.ClientSecretBasic,
	config.AuthPost:                oauth.ClientSecretPost,
	config.AuthPrivateKeyJWT:       oauth.PrivateKeyJWT,
	config.AuthTLSClient:           oauth.TLSClientAuth,
	config.AuthSelfSignedTLSClient: oauth.SelfSignedTLSClientAuth,
	config.AuthNone:                oauth.None,
}

// TokenSpecs converts cfg's tokens that only selects (nil: all), sorted by
// name.
func TokenSpecs(cfg *config.Config, only func(config.Token) bool) []rotate.TokenSpec {
	if cfg == nil {
		return nil
	}
	var out []rotate.TokenSpec
	for _, name := range sortedKeys(cfg.Tokens) {
		t := cfg.Tokens[name]
		if only != nil && !only(t) {
			continue
		}
		spec := rotate.TokenSpec{
			Name: name, Source: t.Source, Provider: t.Provider, Profile: t.Profile,
			TokenURL: t.TokenURL, Grant: t.Grant, RefreshToken: t.RefreshToken,
			ClientID: t.ClientID, Auth: tokenAuth[t.AuthStyle],
			ClientSecret: t.ClientSecret, PrivateKey: t.PrivateKey, Certificate: t.Certificate,
			KeyID: t.KeyID, SigningAlg: t.SigningAlg,
			Scopes: t.Scopes, Audience: t.Audience, Resource: t.Resource, Params: t.Params,
			RefreshBefore:   t.RefreshBefore,
			DefaultLifetime: t.DefaultLifetime, File: t.File, FileFormat: t.FileFormat,
		}
		if v := t.Verify; v != nil {
			spec.Verify = &rotate.VerifySpec{JWKSURL: v.JWKSURL, Issuer: v.Issuer, Audience: v.Audience}
		}
		if t.Source != config.TokenSourceOAuth2 {
			spec.Credential = providers.CredentialRequest{RoleARN: t.RoleARN, SessionName: t.SessionName, Duration: t.Duration}
			if t.Source == config.TokenSourceGCP {
				spec.Credential.Scopes, spec.Credential.Audience = t.Scopes, t.Audience
			}
		}
		out = append(out, spec)
	}
	return out
}

// newTokens builds the token loop for the config's tokens that only
// selects (nil when there are none); an invalid client reference is a
// configuration error. Env.Learn gets every client credential and access
// token before it is used.
func (r *Runner) newTokens(reg prometheus.Registerer, only func(config.Token) bool) (*rotate.Tokens, error) {
	specs := TokenSpecs(r.cfg, only)
	if len(specs) == 0 {
		return nil, nil
	}
	if gid := r.opts.FileGroup; gid >= 0 {
		// Token files are shared with --file-group as rendered files are.
		for i := range specs {
			if specs[i].File != "" {
				o := shareWithGroup(render.File{Path: specs[i].File, UID: -1, GID: -1}, gid).Options()
				specs[i].FileOptions = &o
			}
		}
	}
	for i := range specs {
		o := r.cfg.Tokens[specs[i].Name].TLS
		if o.IsZero() {
			continue
		}
		tr, err := o.Transport(context.Background())
		if err != nil {
			return nil, configError(fmt.Errorf("%s: token %s: tls: %w", r.cfg.Path, specs[i].Name, err))
		}
		specs[i].HTTPClient = &http.Client{Transport: tr, Timeout: rotate.DefaultExchangeTimeout}
	}
	var m *rotate.TokenMetrics
	if reg != nil {
		m = rotate.NewTokenMetrics(reg)
	}
	learn := r.env.Learn
	tk, err := rotate.NewTokens(rotate.TokenOptions{Providers: r.set, Tokens: specs, Logger: r.env.Logger, Metrics: m,
		OnToken: func(name string, v providers.Value) {
			learn(map[string]providers.Resolved{"token:" + name: {Value: v}})
		},
		OnCredential: func(name, what string, v providers.Value) {
			learn(map[string]providers.Resolved{what + ":" + name: {Value: v}})
		}})
	if err != nil {
		return nil, configError(fmt.Errorf("%s: %w", r.cfg.Path, err))
	}
	return tk, nil
}

// initTokens gets every token once, retrying transient failures for at
// most timeout (0: until ctx ends).
func initTokens(ctx context.Context, tk *rotate.Tokens, timeout time.Duration) error {
	if tk == nil {
		return nil
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := tk.Init(ctx); err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	return nil
}

// TokenEnvName is the child's variable for token name:
// KEYWARD_TOKEN_ and the name upper-cased, other characters as _.
func TokenEnvName(name string) string {
	b := []byte(strings.ToUpper(name))
	for i, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	return envTokenPrefix + string(b)
}

// tokenChildEnv adds each current token, and how to reach the endpoint,
// to added.
func tokenChildEnv(tk *rotate.Tokens, endpoint map[string]providers.Value, added map[string]providers.Value) {
	if tk == nil {
		return
	}
	for _, name := range tk.Names() {
		if tok, ok := tk.Get(name); ok {
			added[TokenEnvName(name)] = tok.AccessToken
		}
	}
	maps.Copy(added, endpoint)
}

// serveTokens registers the token endpoint on srv. On a unix socket (0600)
// no header is needed; on TCP a random guard value is written to a 0600
// file that this agent owns ($KEYWARD_TOKEN_GUARD_FILE, else
// defaultGuardPath) and required in the X-Keyward-Token header. It returns
// the child's variables naming the endpoint and a cleanup that removes the
// guard file if it still is this agent's.
func (r *Runner) serveTokens(tk *rotate.Tokens, srv *server.Server) (map[string]providers.Value, func(), error) {
	log := r.env.Logger
	srv.AddReadyCheck("tokens", tk.Ready)
	addr := srv.Addr()
	if strings.HasPrefix(srv.Addr(), "/") {
		tk.Register(srv, "")
		log.Info("serving tokens", "socket", addr)
		return map[string]providers.Value{envTokenEndpoint: providers.StringValue("unix:" + addr)}, func() {}, nil
	}
	raw := make([]byte, 32)
	if _, err := cryptorand.Read(raw); err != nil {
		return nil, nil, fmt.Errorf("token endpoint guard: %w", err)
	}
	guard := hex.EncodeToString(raw)
	r.env.Learn(map[string]providers.Resolved{"token_guard": {Value: providers.StringValue(guard)}})
	path, private := r.env.Getenv(envTokenGuardFile), false
	if path == "" {
		path, private = defaultGuardPath(r.env.Getenv, addr), true
	}
	gf, err := createGuardFile(path, []byte(guard), private)
	if err != nil {
		return nil, nil, fmt.Errorf("token endpoint guard file: %w", err)
	}
	tk.Register(srv, guard)
	log.Info("serving tokens", "addr", addr, "guard_file", path, "header", rotate.TokenGuardHeader)
	env := map[string]providers.Value{
		envTokenEndpoint:  providers.StringValue("http://" + addr),
		envTokenGuardFile: providers.StringValue(path),
	}
	return env, func() {
		if err := gf.Close(); err != nil {
			log.Warn("removing the token endpoint guard file", "err", err)
		}
	}, nil
}

// allTokens selects every token of the config.
func allTokens(config.Token) bool { return true }
