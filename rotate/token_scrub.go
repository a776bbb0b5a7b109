package rotate

import (
	"encoding/base64"
	"net/url"

	"github.com/keyward/keyward/internal/mask"
)

// withheld replaces what an authorization server said when it cannot be
// shown safely.
const withheld = "(withheld: it may contain the client credentials)"

// credentialScrubber returns a function that hides the client credentials
// in a message from the authorization server, which may echo them (in its
// error_description, say): the client secret, the id:secret pair that Basic
// authentication sends and its base64 (the Authorization header), each in
// every form the mask package knows (raw, base64 at any alignment, hex,
// percent-encoded, JSON- and string-escaped…), become ***, and a message
// that ends in the beginning of one of them (an echo cut short) loses that
// end. A secret too short to be recognised safely withholds the whole
// message.
func credentialScrubber(id, secret string) func(string) string {
	if len(secret) < mask.MinPatternLength {
		return func(s string) string {
			if s == "" {
				return ""
			}
			return withheld
		}
	}
	// x/oauth2 sends url.QueryEscape(id):url.QueryEscape(secret) in the
	// Basic Authorization header.
	pair := url.QueryEscape(id) + ":" + url.QueryEscape(secret)
	set := mask.NewSet([]mask.Secret{
		{Name: "client_secret", Value: []byte(secret)},
		{Name: "basic_credentials", Value: []byte(pair)},
		{Name: "authorization", Value: []byte(base64.StdEncoding.EncodeToString([]byte(pair)))},
	}, mask.MinPatternLength)
	m := mask.New(set, mask.Options{})
	return func(s string) string {
		if s == "" {
			return ""
		}
		out := m.Mask([]byte(s))
		if n := set.Matcher().Pending(out, 0); n >= mask.MinPatternLength {
			out = append(out[:len(out)-n], "…"...)
		}
		return string(out)
	}
}
