package testenv

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// TestCA is a throwaway certificate authority for test servers and their
// clients, valid for a day.
type TestCA struct {
	// PEM is the CA certificate.
	PEM []byte

	cert   *x509.Certificate
	key    crypto.Signer
	serial atomic.Int64
}

// NewTestCA makes a CA with a fresh P-256 key.
func NewTestCA() (*TestCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "keyward-test-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &TestCA{PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), cert: cert, key: key}
	ca.serial.Store(1)
	return ca, nil
}

// Pool returns a pool holding the CA.
func (ca *TestCA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// TLSConfig returns a client TLS configuration that trusts the CA only.
func (ca *TestCA) TLSConfig() *tls.Config { return &tls.Config{RootCAs: ca.Pool()} }

// Issue returns a PEM certificate and PKCS #8 key for name (an IP address
// or a DNS name, also the common name), for a server or a client.
func (ca *TestCA) Issue(name string, server bool) (certPEM, keyPEM []byte, err error) {
	return ca.IssueCert(CertSpec{CommonName: name, Names: []string{name}, Server: server})
}

// CertSpec describes a certificate for TestCA.IssueCert.
type CertSpec struct {
	// CommonName and Organizations make the subject (for Kubernetes, the
	// user name and its groups).
	CommonName    string
	Organizations []string
	// Names are the subject alternative names, each an IP address or a
	// DNS name.
	Names []string
	// Server makes a serving certificate; otherwise a client certificate.
	Server bool
}

// IssueCert returns a PEM certificate and PKCS #8 key as s describes,
// signed by the CA, with a fresh P-256 key, valid for a day. It is safe for
// concurrent use.
func (ca *TestCA) IssueCert(s CertSpec) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial.Add(1)),
		Subject:      pkix.Name{CommonName: s.CommonName, Organization: s.Organizations},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if s.Server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	for _, n := range s.Names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	return encodePair(der, key)
}

// SelfSigned returns a self-signed PEM client certificate and PKCS #8 key
// for cn, and the JWKS that registers it (x5c and x5t#S256) for
// self_signed_tls_client_auth.
func SelfSigned(cn string) (certPEM, keyPEM []byte, jwks json.RawMessage, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	sum := sha256.Sum256(der)
	jwks, err = JWKS(jose.JSONWebKey{Key: &key.PublicKey, Certificates: []*x509.Certificate{cert}, CertificateThumbprintSHA256: sum[:]})
	if err != nil {
		return nil, nil, nil, err
	}
	certPEM, keyPEM, err = encodePair(der, key)
	return certPEM, keyPEM, jwks, err
}

// JWKS returns the JSON Web Key Set {"keys": [...]} of keys, each a
// public key (or a jose.JSONWebKey holding one).
func JWKS(keys ...any) (json.RawMessage, error) {
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		jwk, ok := k.(jose.JSONWebKey)
		if !ok {
			jwk = jose.JSONWebKey{Key: k}
		}
		set.Keys = append(set.Keys, jwk)
	}
	return json.Marshal(set)
}

func encodePair(der []byte, key crypto.Signer) (certPEM, keyPEM []byte, err error) {
	k, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k}), nil
}
