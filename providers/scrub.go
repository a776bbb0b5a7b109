package providers

import (
	"context"
	"encoding/binary"
	"errors"
	"net/url"
	"strconv"

	"github.com/keyward/keyward/internal/mask"
)

// Withheld replaces a store's message when it cannot be shown safely: a
// credential the request sent is too short to be recognised in it.
const Withheld = "(withheld: it may contain a credential)"

// MaxScrubbed is the longest credential a Scrubber recognises in its
// forms: building them costs about 2.7 KB of memory per byte of
// credential, so a longer one (a login JWT read from a file can be up to
// 1 MiB) withholds every message instead, like one too short.
const MaxScrubbed = 8 << 10

// FragmentLength is the shortest piece of a credential that a Scrubber
// hides wherever it appears in a message (8: one uint64).
const FragmentLength = 8

// Scrubber hides the credentials a request sent (a token, an AppRole
// secret_id, a client secret, a web identity token…) in a message from the
// server that answered, which may echo them: in its error text, a proxy's
// page, an error_description. Each credential, in every form the mask
// package knows (raw, base64 at any alignment, hex, percent-encoded,
// JSON- and string-escaped…), becomes ***; a message that ends in the
// beginning of one (an echo cut short) loses that end; and any run of
// FragmentLength or more bytes of one (or of its percent-encoding)
// anywhere in the message becomes *** as well. A credential shorter than
// mask.MinPatternLength cannot be recognised safely, nor one longer than
// MaxScrubbed cheaply: every non-empty message is then Withheld. It is the one way providers clean a server's
// message; scrub before ClipMessage, since a cut could split an echo.
// The zero Scrubber hides nothing.
type Scrubber struct {
	scrub func(string) string
}

// NewScrubber returns the Scrubber of the credentials sent; empty ones are
// ignored.
func NewScrubber(sent ...string) Scrubber {
	var secrets []mask.Secret
	var raw [][]byte
	for i, c := range sent {
		if c == "" {
			continue
		}
		if len(c) < mask.MinPatternLength || len(c) > MaxScrubbed {
			return Scrubber{scrub: func(s string) string {
				if s == "" {
					return ""
				}
				return Withheld
			}}
		}
		secrets = append(secrets, mask.Secret{Name: "credential" + strconv.Itoa(i), Value: []byte(c)})
		raw = append(raw, []byte(c), []byte(url.QueryEscape(c)))
	}
	if len(secrets) == 0 {
		return Scrubber{}
	}
	set := mask.NewSet(secrets, mask.MinPatternLength)
	m := mask.New(set, mask.Options{})
	frags := newFragments(raw...)
	return Scrubber{scrub: func(s string) string {
		if s == "" {
			return ""
		}
		out := frags.hide(m.Mask([]byte(s)))
		if n := set.Matcher().Pending(out, 0); n >= mask.MinPatternLength {
			out = append(out[:len(out)-n], "…"...)
		}
		return string(out)
	}}
}

// Message returns msg with the credentials hidden (not clipped).
func (s Scrubber) Message(msg string) string {
	if s.scrub == nil {
		return msg
	}
	return s.scrub(msg)
}

// Clip returns ClipMessage of msg with the credentials hidden first.
func (s Scrubber) Clip(msg string) string { return ClipMessage(s.Message(msg)) }

// Error returns err with the credentials hidden in its message, still
// reporting the sentinels of this package and the context errors it
// wrapped (and nothing else it wrapped, which may hold a credential);
// err itself when hiding changes nothing.
func (s Scrubber) Error(err error) error {
	if err == nil || s.scrub == nil {
		return err
	}
	msg := err.Error()
	clean := s.scrub(msg)
	if clean == msg {
		return err
	}
	r := &scrubbed{msg: clean}
	for _, sentinel := range []error{ErrPermissionDenied, ErrNotFound, ErrInvalidReference, ErrUnavailable, ErrLeaseNotRenewable, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, sentinel) {
			r.sentinels = append(r.sentinels, sentinel)
		}
	}
	return r
}

type scrubbed struct {
	msg       string
	sentinels []error
}

func (r *scrubbed) Error() string   { return r.msg }
func (r *scrubbed) Unwrap() []error { return r.sentinels }

// fragments is the set of every substring of FragmentLength (8) bytes of
// some credentials, each held as the uint64 of its bytes: a credential of
// n bytes costs about n map entries of 8 bytes, not n strings.
type fragments struct {
	set map[uint64]struct{}
}

func newFragments(creds ...[]byte) fragments {
	f := fragments{set: map[uint64]struct{}{}}
	for _, c := range creds {
		for i := 0; i+FragmentLength <= len(c); i++ {
			f.set[binary.LittleEndian.Uint64(c[i:])] = struct{}{}
		}
	}
	return f
}

// hide replaces every maximal run of msg covered by fragments with ***.
func (f fragments) hide(msg []byte) []byte {
	if len(f.set) == 0 || len(msg) < FragmentLength {
		return msg
	}
	covered := make([]bool, len(msg))
	found := false
	for i := 0; i+FragmentLength <= len(msg); i++ {
		if _, ok := f.set[binary.LittleEndian.Uint64(msg[i:])]; ok {
			found = true
			for j := i; j < i+FragmentLength; j++ {
				covered[j] = true
			}
		}
	}
	if !found {
		return msg
	}
	out := make([]byte, 0, len(msg))
	for i := 0; i < len(msg); i++ {
		if !covered[i] {
			out = append(out, msg[i])
			continue
		}
		if i == 0 || !covered[i-1] {
			out = append(out, "***"...)
		}
	}
	return out
}
