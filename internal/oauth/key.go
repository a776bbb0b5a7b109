package oauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
)

// Signing algorithms of a client assertion (RFC 7518 §3.1, RFC 8037).
var signingAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// SigningAlgs returns the JWS algorithms a client assertion can be signed
// with.
func SigningAlgs() []string { return slices.Clone(signingAlgs) }

// ParsePrivateKey reads the first private key of a PEM document: PKCS #8
// ("PRIVATE KEY": RSA, ECDSA or Ed25519), PKCS #1 ("RSA PRIVATE KEY") or
// SEC 1 ("EC PRIVATE KEY"). Other blocks (certificates) are skipped. An
// encrypted key is refused. Errors never quote the document.
func ParsePrivateKey(doc []byte) (crypto.Signer, error) {
	for rest := doc; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no PEM private key")
		}
		if _, encrypted := b.Headers["Proc-Type"]; encrypted || b.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, errors.New("the private key is encrypted (keyward needs it unencrypted in its store)")
		}
		var (
			k   any
			err error
		)
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: not a valid key", b.Type)
		}
		switch k := k.(type) {
		case *rsa.PrivateKey:
			return k, nil
		case *ecdsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		}
		return nil, fmt.Errorf("%s: unsupported key type %T", b.Type, k)
	}
}

// SigningAlg returns the algorithm key signs client assertions with: alg
// when the key can sign with it, and when alg is "" the key's default
// (RS256 for RSA, ES256, ES384 or ES512 for ECDSA by curve, EdDSA for
// Ed25519).
func SigningAlg(key crypto.Signer, alg string) (string, error) {
	def, err := defaultAlg(key)
	if err != nil {
		return "", err
	}
	if alg == "" {
		return def, nil
	}
	ok := false
	switch def {
	case "RS256":
		ok = slices.Contains(signingAlgs, alg) && (alg[:2] == "RS" || alg[:2] == "PS")
	default:
		ok = alg == def
	}
	if !ok {
		return "", fmt.Errorf("signing_alg %s does not fit the private key (%s)", alg, keyKind(key))
	}
	return alg, nil
}

// defaultAlg is the default algorithm of key.
func defaultAlg(key crypto.Signer) (string, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return "RS256", nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return "ES256", nil
		case elliptic.P384():
			return "ES384", nil
		case elliptic.P521():
			return "ES512", nil
		}
		return "", errors.New("unsupported elliptic curve (want P-256, P-384 or P-521)")
	case ed25519.PrivateKey:
		return "EdDSA", nil
	}
	return "", fmt.Errorf("unsupported key type %T", key)
}

func keyKind(key crypto.Signer) string {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return "RSA"
	case *ecdsa.PrivateKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PrivateKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", key)
}

// ParseCertificate pairs a PEM certificate (chain, leaf first) with its
// PEM private key for TLS client authentication. Errors never quote them.
func ParseCertificate(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	c := &tls.Certificate{PrivateKey: key}
	for rest := certPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			c.Certificate = append(c.Certificate, b.Bytes)
		}
	}
	if len(c.Certificate) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil, errors.New("the certificate cannot be parsed")
	}
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, errors.New("the private key does not belong to the certificate")
	}
	c.Leaf = leaf
	return c, nil
}
