package providers

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Sentinel errors every provider maps its store's answers to. Providers wrap
// them (fmt.Errorf("...: %w", ErrNotFound)); callers test with errors.Is.
var (
	// ErrNotFound: the secret, its version or the requested field does not exist.
	ErrNotFound = errors.New("not found")
	// ErrPermissionDenied: the store refused access with the credentials in use.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrUnavailable: the provider kind is known but not compiled into this
	// build (a build tag left it out; see RegisterNotInBuild).
	ErrUnavailable = errors.New("not in this build")
	// ErrInvalidReference: a reference is malformed or names an unknown scheme or option.
	ErrInvalidReference = errors.New("invalid reference")
)

// ErrLeaseNotRenewable: a lease cannot be extended further; fetch the secret again.
var ErrLeaseNotRenewable = errors.New("lease not renewable")

// MaxServerMessage bounds how much of a store's own message (the text of
// an API error) an error or log line repeats.
const MaxServerMessage = 300

// ClipMessage prepares a store's message for an error or a log line, the
// one way every provider does it: surrounding space trimmed, control
// characters (a newline would split the line) made spaces, and cut to
// MaxServerMessage bytes at a character boundary, with "…" when cut. A
// provider that scrubs credentials from a message does so before: a cut
// could split one.
func ClipMessage(msg string) string {
	msg = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.TrimSpace(msg))
	if len(msg) <= MaxServerMessage {
		return msg
	}
	cut := MaxServerMessage
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "…"
}

// CheckEndpoint checks an endpoint option (key names it): an absolute http
// or https URL with a host, without credentials (user:password@) or a
// fragment. The error names the key and what is wrong, never the URL, which
// may carry credentials.
func CheckEndpoint(key, raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("%s: not an absolute http or https URL", key)
	case u.User != nil:
		return fmt.Errorf("%s: must not contain credentials (user:password@)", key)
	case u.Fragment != "":
		return fmt.Errorf("%s: must not have a #fragment", key)
	}
	return nil
}
