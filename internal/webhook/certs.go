package webhook

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// clockSkew is how far before its creation a generated certificate is
// valid, so that a node whose clock is behind still accepts it.
const clockSkew = time.Hour

// GenerateCertificate makes a CA and a serving certificate signed by it
// for dnsNames and ips, both ECDSA P-256, valid from an hour before now
// until now+lifetime (the CA exactly as long as the certificate: it signs
// nothing else and is never kept past it). It returns PEM blocks: the CA
// certificate, the serving certificate and its private key. Errors never
// carry key material.
func GenerateCertificate(dnsNames []string, ips []net.IP, now time.Time, lifetime time.Duration) (caPEM, certPEM, keyPEM []byte, err error) {
	if len(dnsNames) == 0 && len(ips) == 0 {
		return nil, nil, nil, errors.New("generate certificate: no DNS name or IP")
	}
	if lifetime <= 0 {
		return nil, nil, nil, fmt.Errorf("generate certificate: lifetime %v is not positive", lifetime)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate certificate: %w", err)
	}
	serial := func() *big.Int {
		n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
		return n
	}
	notBefore, notAfter := now.Add(-clockSkew), now.Add(lifetime)
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "keyward-webhook-ca"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate certificate: %w", err)
	}
	cn := "keyward-webhook"
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// servingPair is a serving certificate and its key, as PEM and parsed.
type servingPair struct {
	certPEM, keyPEM []byte
	cert            tls.Certificate // cert.Leaf is set
}

// parsePair parses a PEM certificate and key; nil when either is missing
// or they do not match.
func parsePair(certPEM, keyPEM []byte) *servingPair {
	if len(certPEM) == 0 || len(keyPEM) == 0 {
		return nil
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil || c.Leaf == nil {
		return nil
	}
	return &servingPair{certPEM: certPEM, keyPEM: keyPEM, cert: c}
}

func (p *servingPair) leaf() *x509.Certificate { return p.cert.Leaf }

// covers reports whether the certificate names every DNS name and IP.
func (p *servingPair) covers(dnsNames []string, ips []net.IP) bool {
	l := p.leaf()
	for _, n := range dnsNames {
		if !slices.Contains(l.DNSNames, n) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(l.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// issuer returns the CA of cas that signed the certificate, or nil.
func (p *servingPair) issuer(cas []*x509.Certificate) *x509.Certificate {
	for _, ca := range cas {
		if p.leaf().CheckSignatureFrom(ca) == nil {
			return ca
		}
	}
	return nil
}

// parseBundle returns the certificates of a PEM bundle, skipping blocks
// that are not certificates or do not parse.
func parseBundle(b []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
			out = append(out, c)
		}
	}
}

// encodeBundle is the PEM of cas, in order.
func encodeBundle(cas []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range cas {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// bundleHas reports whether the PEM bundle b holds ca.
func bundleHas(b []byte, ca *x509.Certificate) bool {
	return slices.ContainsFunc(parseBundle(b), ca.Equal)
}
