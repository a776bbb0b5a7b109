package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// ErrNotVerified is wrapped by Verifier.Verify's errors about the token
// (as opposed to a failure to fetch the key set).
var ErrNotVerified = errors.New("the access token does not verify")

// JWKSRefetch is the least time between two fetches of a key set for a
// key it does not have (a kid after the issuer's key rotation).
const JWKSRefetch = time.Minute

// verifyAlgs are the signature algorithms a verified token may use:
// asymmetric ones only (never none, never an HMAC keyed with something
// public).
var verifyAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

// leeway is the clock skew allowed for exp, nbf and iat.
const leeway = 30 * time.Second

// Verifier checks JWT access tokens the way a resource server would: the
// signature with a key of the issuer's JSON Web Key Set (fetched from
// JWKSURL once, again when a token names a key it lacks, at most once per
// JWKSRefetch), the iss claim against Issuer and the aud claim against
// Audience (each when not empty), and exp (and nbf). It is safe for
// concurrent use.
type Verifier struct {
	// JWKSURL is the issuer's key set (e.g. https://issuer/.well-known/jwks.json).
	JWKSURL string
	// Issuer and Audience are the expected iss and aud; "" skips the check.
	Issuer, Audience string
	// HTTP fetches the key set; nil uses a client with a 30 s timeout.
	HTTP *http.Client

	mu      sync.Mutex
	keys    *jose.JSONWebKeySet
	fetched time.Time
}

// Verify checks token at time now and returns its exp. Errors about the
// token wrap ErrNotVerified and name what failed (the claim's value and
// the expected one; never the token); a key set that cannot be fetched is
// an error naming JWKSURL.
func (v *Verifier) Verify(ctx context.Context, token string, now time.Time) (time.Time, error) {
	tok, err := jwt.ParseSigned(token, verifyAlgs)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: it is no signed JWT with an asymmetric algorithm (%s)", ErrNotVerified, jwtProblem(err))
	}
	h := tok.Headers[0]
	key, err := v.key(ctx, h.KeyID, h.Algorithm, now)
	if err != nil {
		return time.Time{}, err
	}
	var c jwt.Claims
	if err := tok.Claims(key, &c); err != nil {
		return time.Time{}, fmt.Errorf("%w: its signature does not verify with key %q of %s", ErrNotVerified, limit(h.KeyID, 64), v.JWKSURL)
	}
	switch {
	case v.Issuer != "" && c.Issuer != v.Issuer:
		return time.Time{}, fmt.Errorf("%w: iss is %q, not %q", ErrNotVerified, limit(c.Issuer, 200), v.Issuer)
	case v.Audience != "" && !slices.Contains([]string(c.Audience), v.Audience):
		return time.Time{}, fmt.Errorf("%w: aud %s does not include %q", ErrNotVerified, limit(fmt.Sprintf("%q", []string(c.Audience)), 200), v.Audience)
	case c.Expiry == nil:
		return time.Time{}, fmt.Errorf("%w: it has no exp", ErrNotVerified)
	case !now.Before(c.Expiry.Time().Add(leeway)):
		return time.Time{}, fmt.Errorf("%w: it expired at %s", ErrNotVerified, c.Expiry.Time().UTC().Format(time.RFC3339))
	case c.NotBefore != nil && now.Add(leeway).Before(c.NotBefore.Time()):
		return time.Time{}, fmt.Errorf("%w: it is not valid before %s", ErrNotVerified, c.NotBefore.Time().UTC().Format(time.RFC3339))
	}
	return c.Expiry.Time(), nil
}

// jwtProblem says briefly why a token did not parse, without quoting it.
func jwtProblem(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "unexpected signature algorithm") {
		return "its algorithm is not accepted"
	}
	return "malformed"
}

// key returns the key kid (the only one of a usable type when kid is ""),
// fetching the key set when it has none such.
func (v *Verifier) key(ctx context.Context, kid, alg string, now time.Time) (any, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if k := v.find(kid, alg); k != nil {
		return k, nil
	}
	if v.keys != nil && now.Sub(v.fetched) < JWKSRefetch {
		return nil, fmt.Errorf("%w: %s has no key %q (fetched %s ago)", ErrNotVerified, v.JWKSURL, limit(kid, 64), now.Sub(v.fetched).Round(time.Second))
	}
	set, err := v.fetch(ctx)
	if err != nil {
		return nil, err
	}
	v.keys, v.fetched = set, now
	if k := v.find(kid, alg); k != nil {
		return k, nil
	}
	return nil, fmt.Errorf("%w: %s has no key %q for %s", ErrNotVerified, v.JWKSURL, limit(kid, 64), alg)
}

func (v *Verifier) find(kid, alg string) any {
	if v.keys == nil {
		return nil
	}
	var match []jose.JSONWebKey
	for _, k := range v.keys.Keys {
		if (kid == "" || k.KeyID == kid) && (k.Algorithm == "" || k.Algorithm == alg) && k.Use != "enc" && k.IsPublic() {
			match = append(match, k)
		}
	}
	if len(match) != 1 {
		return nil
	}
	return match[0].Key
}

// fetch reads the key set, never following a redirect (a 3xx is an
// error, as for the token exchange).
func (v *Verifier) fetch(ctx context.Context) (*jose.JSONWebKeySet, error) {
	hc := v.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.JWKSURL, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch the key set %s: %w", v.JWKSURL, err)
	}
	req.Header.Set("Accept", "application/json")
	c := noRedirects(hc)
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch the key set: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// The code only: the status line's text is the server's.
		return nil, fmt.Errorf("fetch the key set %s: status %d", v.JWKSURL, resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(&set); err != nil {
		return nil, fmt.Errorf("fetch the key set %s: not a JSON Web Key Set", v.JWKSURL)
	}
	return &set, nil
}
