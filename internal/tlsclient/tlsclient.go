// Package tlsclient is the one way keyward's clients trust a private CA:
// the tls: section (ca_cert, server_name) of a provider instance or a
// token, turned into a crypto/tls client configuration. The CA bundle is
// read with internal/readfile (a regular file, at most MaxBundle bytes) and
// replaces the system's roots for that connection; an error names the
// file and what is wrong with it, never its content.
package tlsclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/keyward/keyward/internal/readfile"
)

// MaxBundle bounds the size of a CA file (a full system bundle is about
// 250 KiB).
const MaxBundle = 4 << 20

// Options are the keys of a tls: section. Relative paths are relative to
// the config file's directory (see Abs).
type Options struct {
	// CACert is a PEM file of the CA certificates to trust instead of the
	// system's roots.
	CACert string `yaml:"ca_cert"`
	// ServerName is the name the server's certificate must carry, when it
	// is not the host of the address dialled (an IP address, a tunnel).
	ServerName string `yaml:"server_name"`
}

// IsZero reports whether o sets nothing: the system's roots and the
// dialled host apply.
func (o Options) IsZero() bool { return o == Options{} }

// Abs returns o with a relative CACert joined to baseDir.
func (o Options) Abs(baseDir string) Options {
	if o.CACert != "" && !filepath.IsAbs(o.CACert) && baseDir != "" {
		o.CACert = filepath.Join(baseDir, o.CACert)
	}
	return o
}

// Config returns a client configuration (TLS 1.2 or later) that trusts
// o's CA bundle (the system's roots when none) and checks ServerName when
// set. It reads CACert.
func (o Options) Config(ctx context.Context) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
	if o.CACert != "" {
		pool, err := LoadPool(ctx, o.CACert)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	return c, nil
}

// Transport returns a clone of http.DefaultTransport (proxy from the
// environment, HTTP/2, its timeouts) with o's configuration; nil, nil
// when o IsZero, for callers to keep their default.
func (o Options) Transport(ctx context.Context) (*http.Transport, error) {
	if o.IsZero() {
		return nil, nil
	}
	c, err := o.Config(ctx)
	if err != nil {
		return nil, err
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = c
	return t, nil
}

// LoadPool reads the PEM bundle at path into a pool holding its
// certificates only.
func LoadPool(ctx context.Context, path string) (*x509.CertPool, error) {
	certs, err := ReadBundle(ctx, path)
	if err != nil {
		return nil, err
	}
	return poolOf(certs), nil
}

func poolOf(certs []*x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool
}

// ReadBundle reads and parses the PEM bundle at path: one or more
// CERTIFICATE blocks, text between them ignored. A block of another type
// (a private key put there by mistake), a certificate that does not parse
// or a file without any certificate is an error naming path and the
// block's position, never a byte of the file.
func ReadBundle(ctx context.Context, path string) ([]*x509.Certificate, error) {
	b, _, err := readfile.Read(ctx, path, readfile.Options{Max: MaxBundle})
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("ca_cert %s: %w", path, err)
	}
	defer clear(b)
	return ParseBundle("ca_cert "+path, b)
}

// ParseBundle parses b, a PEM bundle that errors call name, as ReadBundle
// parses a file's (for a CA given as bytes, such as a ServiceAccount's
// ca.crt already read).
func ParseBundle(name string, b []byte) ([]*x509.Certificate, error) {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%s: "+format, append([]any{name}, a...)...)
	}
	var certs []*x509.Certificate
	rest := b
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fail("PEM block %d is %s, not a CERTIFICATE (a CA file holds certificates only)", n, blockType(block.Type))
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fail("certificate %d does not parse: %w", n, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fail("no PEM CERTIFICATE block in it")
	}
	return certs, nil
}

// ParsePool returns a pool holding the certificates of b, a PEM bundle
// that errors call name (see ParseBundle).
func ParsePool(name string, b []byte) (*x509.CertPool, error) {
	certs, err := ParseBundle(name, b)
	if err != nil {
		return nil, err
	}
	return poolOf(certs), nil
}

// blockType quotes a PEM block's type for a message: a short name of
// capitals and spaces as PEM defines, else "of another type".
func blockType(t string) string {
	if len(t) > 40 || strings.Trim(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ") != "" {
		return "of another type"
	}
	return "a " + t
}
