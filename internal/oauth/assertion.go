package oauth

import (
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// AssertionLifetime is how long a client assertion is valid (its exp
// after its iat): long enough for one request, short enough that one
// caught in flight is soon useless.
const AssertionLifetime = time.Minute

// clientAssertionType is the client_assertion_type of private_key_jwt.
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertion signs a client assertion (RFC 7523 §3, OpenID Connect Core §9)
// for client id at the token endpoint aud, issued at now: iss and sub are
// the client id, jti is 128 random bits, exp is AssertionLifetime after.
func assertion(key crypto.Signer, alg, kid, id, aud string, now time.Time) (string, error) {
	alg, err := SigningAlg(key, alg)
	if err != nil {
		return "", err
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	sk := jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: key}
	if kid != "" {
		sk.Key = jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg}
	}
	signer, err := jose.NewSigner(sk, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("client assertion: %w", err)
	}
	claims := jwt.Claims{
		Issuer:   id,
		Subject:  id,
		Audience: jwt.Audience{aud},
		ID:       base64.RawURLEncoding.EncodeToString(jti),
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(AssertionLifetime)),
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("client assertion: %w", err)
	}
	return s, nil
}
