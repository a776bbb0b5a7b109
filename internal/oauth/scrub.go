package oauth

import (
	"fmt"
	"net/url"

	"github.com/keyward/keyward/internal/mask"
)

// withheld replaces what an authorization server said when it cannot be
// shown safely.
const withheld = "(withheld: it may contain the client credentials)"

// credentialScrubber returns a function that hides the credentials a
// request sent (the client secret, the id:secret pair that Basic
// authentication sends and its base64, a client assertion…) in a message
// from the authorization server, which may echo them (in its
// error_description, say): each, in every form the mask package knows
// (raw, base64 at any alignment, hex, percent-encoded, JSON- and
// string-escaped…), becomes ***, and a message that ends in the beginning
// of one of them (an echo cut short) loses that end. Any run of
// fragmentLength or more bytes of one of them anywhere in the message (an
// echo cut short and followed by more text, or cut in the middle of a
// character) becomes *** as well. A credential too short to be recognised
// safely withholds the whole message.
func credentialScrubber(sent ...string) func(string) string {
	var secrets []mask.Secret
	var raw [][]byte
	for i, c := range sent {
		if len(c) < mask.MinPatternLength {
			return func(s string) string {
				if s == "" {
					return ""
				}
				return withheld
			}
		}
		secrets = append(secrets, mask.Secret{Name: fmt.Sprintf("credential%d", i), Value: []byte(c)})
		raw = append(raw, []byte(c), []byte(url.QueryEscape(c)))
	}
	set := mask.NewSet(secrets, mask.MinPatternLength)
	m := mask.New(set, mask.Options{})
	frags := newFragments(fragmentLength, raw...)
	return func(s string) string {
		if s == "" {
			return ""
		}
		out := frags.hide(m.Mask([]byte(s)))
		if n := set.Matcher().Pending(out, 0); n >= mask.MinPatternLength {
			out = append(out[:len(out)-n], "…"...)
		}
		return string(out)
	}
}

// fragmentLength is the shortest piece of a credential that
// credentialScrubber hides wherever it appears in a message.
const fragmentLength = 8

// fragments is the set of every substring of fragmentLength bytes of some
// credentials.
type fragments struct {
	n   int
	set map[string]struct{}
}

func newFragments(n int, creds ...[]byte) fragments {
	f := fragments{n: n, set: map[string]struct{}{}}
	for _, c := range creds {
		for i := 0; i+n <= len(c); i++ {
			f.set[string(c[i:i+n])] = struct{}{}
		}
	}
	return f
}

// hide replaces every maximal run of msg covered by fragments with ***.
func (f fragments) hide(msg []byte) []byte {
	if len(f.set) == 0 || len(msg) < f.n {
		return msg
	}
	covered := make([]bool, len(msg))
	found := false
	for i := 0; i+f.n <= len(msg); i++ {
		if _, ok := f.set[string(msg[i:i+f.n])]; ok {
			found = true
			for j := i; j < i+f.n; j++ {
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
