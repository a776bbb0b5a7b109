package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/keyward/keyward/internal/readfile"
	"github.com/keyward/keyward/providers"
)

// token is keyward's own Vault token and what is known of its lifetime.
type token struct {
	value string
	// ttl is the lifetime granted at login or at the last renewal, counted
	// from obtained; 0 means it does not expire or that it is not known
	// (a static token that was never looked up).
	ttl       time.Duration
	obtained  time.Time
	renewable bool
	// increment is the TTL asked for at each renewal: the TTL first granted.
	increment time.Duration
	// source describes where the token came from, for messages: "login
	// with approle at auth/approle", "VAULT_TOKEN", "token file /x".
	source string
	// file identifies the token file's content the token was read from.
	file fileStamp
}

// fileStamp identifies a version of a file without reading it.
type fileStamp struct {
	size  int64
	mtime time.Time
}

func stampOf(fi fs.FileInfo) fileStamp {
	return fileStamp{size: fi.Size(), mtime: fi.ModTime()}
}

// renewAt is when the token is due for renewal: at 2/3 of its TTL.
func (t token) renewAt() time.Time { return t.obtained.Add(t.ttl * 2 / 3) }

// expired reports whether the token's known TTL has run out at now.
func (t token) expired(now time.Time) bool {
	return t.ttl > 0 && !now.Before(t.obtained.Add(t.ttl))
}

// isLogin reports whether the method obtains its token by logging in.
func isLogin(method string) bool {
	switch method {
	case MethodAppRole, MethodKubernetes, MethodJWT:
		return true
	}
	return false
}

// lockAuth takes the auth lock (held while a token is obtained or renewed,
// so that concurrent fetches log in once), or returns ctx's error.
func (p *Provider) lockAuth(ctx context.Context) error {
	select {
	case p.authLock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Provider) unlockAuth() { <-p.authLock }

// currentToken returns a token to send: the cached one while it is fresh,
// else one read, renewed or obtained by login now.
func (p *Provider) currentToken(ctx context.Context) (string, error) {
	p.mu.Lock()
	t := p.tok
	p.mu.Unlock()
	if p.usable(t) {
		return t.value, nil
	}
	if err := p.lockAuth(ctx); err != nil {
		return "", err
	}
	defer p.unlockAuth()
	p.mu.Lock()
	t = p.tok
	p.mu.Unlock()
	if p.usable(t) {
		return t.value, nil
	}
	if p.stale(t) {
		nt, err := p.obtainToken(ctx)
		if err != nil {
			return "", err
		}
		p.storeToken(nt)
		return nt.value, nil
	}
	nt, err := p.refreshToken(ctx, t)
	if err != nil {
		return "", err
	}
	return nt.value, nil
}

// usable reports whether t can be sent as it is: it is not stale, and not
// due for renewal unless it can be neither renewed nor replaced (then it
// is used until it expires).
func (p *Provider) usable(t token) bool {
	if p.stale(t) {
		return false
	}
	if !p.due(t) {
		return true
	}
	if t.renewable || p.canReobtain() {
		return false
	}
	return !t.expired(p.now())
}

// stale reports whether t must be read or obtained afresh: there is none,
// or the token file changed since it was read.
func (p *Provider) stale(t token) bool {
	if t.value == "" {
		return true
	}
	if p.set.auth.Method == MethodTokenFile {
		fi, err := os.Stat(p.set.auth.TokenFile)
		return err != nil || stampOf(fi) != t.file
	}
	return false
}

// due reports whether 2/3 of t's known TTL has passed.
func (p *Provider) due(t token) bool {
	return t.ttl > 0 && !p.now().Before(t.renewAt())
}

// canReobtain reports whether a new token can be had without the old one.
func (p *Provider) canReobtain() bool {
	return isLogin(p.set.auth.Method) || p.set.auth.Method == MethodTokenFile
}

// refreshToken renews t, or obtains a new token when t cannot be renewed,
// Vault refuses, or the renewal is capped by the token's max TTL; it stores
// and returns the result. A token that can be neither renewed nor replaced
// is returned as it is. The auth lock is held.
func (p *Provider) refreshToken(ctx context.Context, t token) (token, error) {
	if t.renewable && !t.expired(p.now()) {
		nt, err := p.renewSelf(ctx, t)
		switch {
		case err == nil && (nt.ttl >= t.increment/2 || !p.canReobtain()):
			p.storeToken(nt)
			return nt, nil
		case err == nil:
			p.log.Info("vault token renewal capped by its max TTL; obtaining a new token",
				"provider", p.name, "method", p.set.auth.Method, "ttl", nt.ttl)
		case ctx.Err() != nil:
			return token{}, err
		case !p.canReobtain():
			p.log.Warn("vault token renewal failed; using the token until it expires",
				"provider", p.name, "error", err, "expires", t.obtained.Add(t.ttl))
			t.renewable = false
			p.storeToken(t)
			return t, nil
		default:
			p.log.Info("vault token renewal refused; obtaining a new token",
				"provider", p.name, "method", p.set.auth.Method, "error", err)
		}
	} else if !p.canReobtain() {
		return t, nil
	}
	nt, err := p.obtainToken(ctx)
	if err != nil {
		return token{}, err
	}
	p.storeToken(nt)
	return nt, nil
}

func (p *Provider) storeToken(t token) {
	p.mu.Lock()
	p.tok = t
	p.mu.Unlock()
}

// dropToken forgets the cached token if it is still bad (another caller
// may have replaced it meanwhile).
func (p *Provider) dropToken(bad string) {
	p.mu.Lock()
	if p.tok.value == bad {
		p.tok = token{}
	}
	p.mu.Unlock()
}

// obtainToken reads or logs in for a new token according to the method.
func (p *Provider) obtainToken(ctx context.Context) (token, error) {
	a := p.set.auth
	switch a.Method {
	case MethodToken:
		if v := strings.TrimSpace(p.getenv(envToken)); v != "" {
			return token{value: v, source: envToken, obtained: p.now()}, nil
		}
		if home := p.getenv("HOME"); home != "" {
			path := filepath.Join(home, ".vault-token")
			if t, err := readTokenFile(ctx, path); err == nil {
				t.obtained = p.now()
				return t, nil
			} else if !errors.Is(err, fs.ErrNotExist) {
				return token{}, err
			}
		}
		return token{}, fmt.Errorf("no vault token: set %s, or configure auth for provider %s: %w", envToken, p.name, providers.ErrPermissionDenied)
	case MethodTokenFile:
		t, err := readTokenFile(ctx, a.TokenFile)
		if err != nil {
			return token{}, err
		}
		t.obtained = p.now()
		return t, nil
	}
	return p.login(ctx)
}

// readTokenFile reads a token file (a regular file of at most 64 KiB,
// read so that ctx can interrupt it); the token itself is never in an
// error.
func readTokenFile(ctx context.Context, path string) (token, error) {
	b, fi, err := readfile.Read(ctx, path, readfile.Options{Max: 64 << 10})
	if err != nil {
		return token{}, fmt.Errorf("vault token file: %w", fileError(path, err))
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return token{}, fmt.Errorf("vault token file %s is empty: %w", path, providers.ErrPermissionDenied)
	}
	return token{value: v, source: "token file " + path, file: stampOf(fi)}, nil
}

// login logs in with the configured method and returns the new token.
func (p *Provider) login(ctx context.Context) (token, error) {
	a := p.set.auth
	body := map[string]any{}
	switch a.Method {
	case MethodAppRole:
		roleID, err := p.credential(ctx, "role_id", a.RoleID, a.RoleIDFile)
		if err != nil {
			return token{}, err
		}
		body["role_id"] = roleID
		if a.SecretID != "" || a.SecretIDFile != "" {
			secretID, err := p.credential(ctx, "secret_id", a.SecretID, a.SecretIDFile)
			if err != nil {
				return token{}, err
			}
			body["secret_id"] = secretID
		}
	case MethodKubernetes, MethodJWT:
		jwt, err := p.loginJWT(ctx, a)
		if err != nil {
			return token{}, err
		}
		body["jwt"] = jwt
		if a.Role != "" {
			body["role"] = a.Role
		}
	default:
		return token{}, fmt.Errorf("auth method %q cannot log in", a.Method)
	}
	path := "auth/" + a.Mount + "/login"
	source := "login with " + a.Method + " at auth/" + a.Mount
	if a.Role != "" {
		source += " as role " + a.Role
	}
	sec, err := p.api.do(ctx, request{method: http.MethodPut, path: path, body: body})
	if err != nil {
		return token{}, p.loginError(ctx, source, err, body)
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		if sec != nil && sec.Auth != nil && sec.Auth.MFARequirement != nil {
			return token{}, fmt.Errorf("vault %s: the login requires MFA, which keyward cannot answer: %w", source, providers.ErrPermissionDenied)
		}
		return token{}, fmt.Errorf("vault %s: the answer holds no token", source)
	}
	t := token{
		value:     sec.Auth.ClientToken,
		ttl:       time.Duration(sec.Auth.LeaseDuration) * time.Second,
		renewable: sec.Auth.Renewable,
		obtained:  p.now(),
		source:    source,
	}
	t.increment = t.ttl
	p.log.Info("logged in to vault", "provider", p.name, "method", a.Method, "mount", "auth/"+a.Mount,
		"ttl", t.ttl, "renewable", t.renewable, "policies", sec.Auth.Policies)
	return t, nil
}

// loginError maps a failed login: Vault's message (scrubbed of the
// credentials sent) and ErrPermissionDenied for refusals.
func (p *Provider) loginError(ctx context.Context, source string, err error, body map[string]any) error {
	if ctx.Err() != nil {
		return fmt.Errorf("vault %s: %w", source, ctx.Err())
	}
	// The credentials sent; the role's name is not one.
	var creds []string
	for _, k := range []string{"role_id", "secret_id", "jwt"} {
		if s, ok := body[k].(string); ok {
			creds = append(creds, s)
		}
	}
	scrub := providers.NewScrubber(creds...)
	var re *api.ResponseError
	if errors.As(err, &re) {
		msg := scrub.Clip(vaultMessage(re))
		switch {
		case re.StatusCode == http.StatusForbidden:
			return fmt.Errorf("vault %s refused (%d %s; is the %s auth method enabled at auth/%s, and the role defined?): %w",
				source, re.StatusCode, msg, p.set.auth.Method, p.set.auth.Mount, providers.ErrPermissionDenied)
		case re.StatusCode == http.StatusBadRequest, re.StatusCode == http.StatusUnauthorized:
			return fmt.Errorf("vault %s refused (%d %s): %w", source, re.StatusCode, msg, providers.ErrPermissionDenied)
		case re.StatusCode == http.StatusNotFound || strings.Contains(msg, "no handler for route"):
			return fmt.Errorf("vault %s: no auth method is mounted there (%d %s): %w", source, re.StatusCode, msg, providers.ErrPermissionDenied)
		}
		return fmt.Errorf("vault %s: %d %s", source, re.StatusCode, msg)
	}
	return fmt.Errorf("vault %s: %s", source, scrub.Message(err.Error()))
}

// credential returns an AppRole credential: the literal value, the content
// of file, or the value a reference names.
func (p *Provider) credential(ctx context.Context, what, value, file string) (string, error) {
	if file != "" {
		return readCredentialFile(ctx, what+"_file", file)
	}
	if !looksLikeRef(value) {
		return value, nil
	}
	v, err := p.resolveRef(ctx, value)
	if err != nil {
		return "", fmt.Errorf("vault approle %s: %w", what, err)
	}
	s := strings.TrimSpace(v.Reveal())
	if s == "" {
		return "", fmt.Errorf("vault approle %s: the reference names an empty value", what)
	}
	return s, nil
}

// looksLikeRef reports whether s is written as a secret reference.
func looksLikeRef(s string) bool { return providers.SchemeOf(s) != "" }

// resolveRef fetches a reference to a credential with the default instance
// of the provider kind its scheme names. A vault reference is refused: the
// vault provider cannot log in with a secret it could only read after
// logging in.
func (p *Provider) resolveRef(ctx context.Context, s string) (providers.Value, error) {
	ref, err := providers.Parse(s)
	if err != nil {
		return providers.Value{}, err
	}
	if ref.Scheme == KindName {
		return providers.Value{}, fmt.Errorf("%s: a vault credential cannot come from vault itself: %w", ref.String(), providers.ErrInvalidReference)
	}
	k, ok := providers.LookupKind(ref.Scheme)
	if !ok {
		return providers.Value{}, fmt.Errorf("%s: scheme %q is not a provider kind of this build (a credential reference uses a default instance: file, k8s, awssm, gcpsm): %w", ref.String(), ref.Scheme, providers.ErrInvalidReference)
	}
	in := providers.Instance{
		Name: ref.Scheme, Kind: ref.Scheme, BaseDir: p.baseDir, Getenv: p.getenv, Logger: p.log,
		Decode: func(any) error { return nil },
	}
	sp, err := k.New(in)
	if err != nil {
		return providers.Value{}, fmt.Errorf("%s: %w", ref.String(), err)
	}
	defer sp.Close()
	sec, err := sp.Fetch(ctx, ref.Whole())
	if err != nil {
		return providers.Value{}, fmt.Errorf("%s: %w", ref.String(), err)
	}
	if ref.Field != "" {
		return sec.Field(ref.Field)
	}
	v, _, err := sec.Whole()
	return v, err
}

// readCredentialFile reads a small credential file (role_id, secret_id,
// JWT): a regular file of at most 1 MiB, read so that ctx can interrupt
// it, trimmed of surrounding white space. Errors name the file, never its
// content.
func readCredentialFile(ctx context.Context, what, path string) (string, error) {
	b, _, err := readfile.Read(ctx, path, readfile.Options{Max: 1 << 20})
	if err != nil {
		return "", fmt.Errorf("vault %s: %w", what, fileError(path, err))
	}
	s := string(bytes.TrimSpace(b))
	if s == "" {
		return "", fmt.Errorf("vault %s %s is empty", what, path)
	}
	return s, nil
}

// fileError names path once with the reason of a failed read: an
// *fs.PathError's own path is dropped, other errors are kept whole.
func fileError(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", path, pe.Err)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// renewSelf renews t with auth/token/renew-self for its original TTL.
func (p *Provider) renewSelf(ctx context.Context, t token) (token, error) {
	body := map[string]any{}
	if inc := int64(t.increment / time.Second); inc > 0 {
		body["increment"] = inc
	}
	sec, err := p.api.do(ctx, request{
		method: http.MethodPut, path: "auth/token/renew-self", token: t.value, body: body,
	})
	if err != nil {
		return token{}, p.apiError(ctx, "renew keyward's token at", "auth/token/renew-self", err, "")
	}
	if sec == nil || sec.Auth == nil {
		return token{}, errors.New("vault renew keyward's token: the answer holds no auth")
	}
	nt := t
	if sec.Auth.ClientToken != "" && sec.Auth.ClientToken != t.value {
		nt.value = sec.Auth.ClientToken
	}
	nt.ttl = time.Duration(sec.Auth.LeaseDuration) * time.Second
	nt.renewable = sec.Auth.Renewable
	nt.obtained = p.now()
	p.log.Debug("renewed vault token", "provider", p.name, "ttl", nt.ttl, "renewable", nt.renewable)
	return nt, nil
}

// lookupSelf asks Vault about token value: its remaining TTL and whether it
// is renewable. A 403 means Vault does not know the token (revoked,
// expired, or from a Vault that lost its data).
func (p *Provider) lookupSelf(ctx context.Context, value string) (*api.Secret, error) {
	return p.api.do(ctx, request{method: http.MethodGet, path: "auth/token/lookup-self", token: value})
}

// TokenStatus describes keyward's own Vault token.
type TokenStatus struct {
	// Source says where the token came from (VAULT_TOKEN, a token file, a
	// login with a named method).
	Source string
	// Expires is when the token runs out; zero when it does not expire.
	Expires time.Time
	// Renewable reports whether Vault will extend it.
	Renewable bool
}

// RenewToken renews keyward's own token now, for a caller that schedules
// renewals (the agent's rotate loop); Fetch also renews lazily once 2/3 of
// the token's TTL has passed, so calling it is optional. A static token
// (VAULT_TOKEN, token file) is looked up first to learn its TTL. When Vault
// refuses the renewal, or the token expired, a login method logs in again
// and a token file is read again. Errors wrap ErrPermissionDenied when no
// valid token can be had, ctx's error when it ends; they never carry the
// token. Safe for concurrent use.
func (p *Provider) RenewToken(ctx context.Context) (TokenStatus, error) {
	if err := p.lockAuth(ctx); err != nil {
		return TokenStatus{}, err
	}
	defer p.unlockAuth()
	p.mu.Lock()
	t := p.tok
	p.mu.Unlock()
	if p.stale(t) {
		nt, err := p.obtainToken(ctx)
		if err != nil {
			return TokenStatus{}, err
		}
		t = nt
		p.storeToken(t)
	}
	if t.ttl == 0 && !isLogin(p.set.auth.Method) {
		sec, err := p.lookupSelf(ctx, t.value)
		if err != nil {
			return TokenStatus{}, p.apiError(ctx, "look up keyward's token at", "auth/token/lookup-self", err, "")
		}
		if ttl, _ := sec.TokenTTL(); ttl > 0 {
			t.ttl, t.increment = ttl, ttl
			t.renewable, _ = sec.TokenIsRenewable()
			t.obtained = p.now()
			p.storeToken(t)
		}
	}
	if t.ttl > 0 {
		nt, err := p.refreshToken(ctx, t)
		if err != nil {
			return TokenStatus{}, err
		}
		t = nt
	}
	st := TokenStatus{Source: t.source, Renewable: t.renewable}
	if t.ttl > 0 {
		st.Expires = t.obtained.Add(t.ttl)
	}
	return st, nil
}
