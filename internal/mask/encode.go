package mask

import (
	"fmt"
	"net/url"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// The encoders below write a value the way common programs do, so that
// Forms can list what a value looks like in their output. Each one escapes
// one character at a time.

// urlKeep is a set of bytes a percent-encoder writes as they are.
type urlKeep [256]bool

func keepSet(extra string) *urlKeep {
	var k urlKeep
	for c := 'A'; c <= 'Z'; c++ {
		k[c], k[c+'a'-'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		k[c] = true
	}
	for i := 0; i < len(extra); i++ {
		k[extra[i]] = true
	}
	return &k
}

// The percent-encoders' sets of bytes left as they are.
var urlKeeps = []*urlKeep{
	keepSet("-._~"),                 // RFC 3986 unreserved: Python quote(safe=''), Go QueryEscape, Rust's urlencoding
	keepSet("-._~!*'()"),            // JavaScript encodeURIComponent
	keepSet("-._*"),                 // URLSearchParams, HTML forms, Java URLEncoder
	keepSet("-._~/"),                // Python quote() with its default safe='/'
	keepSet("-._~!*'();,/?:@&=+$#"), // JavaScript encodeURI
	keepSet("-._~$&+,/:;=@"),        // Go url.URL's path (JoinPath, EscapedPath)
}

// urlForms returns v percent-encoded by every set of urlKeeps, space as
// %20 and (where + is not kept) as +, with upper- and lower-case hex.
func urlForms(v []byte) [][]byte {
	var out [][]byte
	for _, keep := range urlKeeps {
		for _, plus := range []bool{false, true} {
			if plus && keep['+'] {
				continue // + would mean itself
			}
			for _, upper := range []bool{true, false} {
				out = append(out, percentEncode(v, keep, plus, upper))
			}
		}
	}
	// Go's own, in case its sets drift from the ones above.
	out = append(out, []byte(url.QueryEscape(string(v))), []byte(url.PathEscape(string(v))))
	return out
}

const (
	hexUpper = "0123456789ABCDEF"
	hexLower = "0123456789abcdef"
)

func percentEncode(v []byte, keep *urlKeep, plus, upper bool) []byte {
	digits := hexLower
	if upper {
		digits = hexUpper
	}
	out := make([]byte, 0, len(v)*3)
	for _, c := range v {
		switch {
		case keep[c]:
			out = append(out, c)
		case c == ' ' && plus:
			out = append(out, '+')
		default:
			out = append(out, '%', digits[c>>4], digits[c&15])
		}
	}
	return out
}

// jsonStyle is how one JSON encoder escapes a string.
type jsonStyle struct {
	html    bool // < > & as \u003c \u003e \u0026
	ascii   bool // every non-ASCII character (and DEL) as \uXXXX, surrogate pairs beyond the BMP
	slash   bool // / as \/
	shortBF bool // \b and \f rather than \u0008 and \u000c
	lineSep bool // U+2028 and U+2029 escaped
	upper   bool // upper-case hex digits
}

// The JSON encoders whose output Forms lists (each also with upper-case
// hex digits).
var (
	jsonGo       = jsonStyle{html: true, shortBF: true, lineSep: true} // encoding/json's Marshal
	jsonGoNoHTML = jsonStyle{shortBF: true, lineSep: true}             // an Encoder with SetEscapeHTML(false)
	jsonSlog     = jsonStyle{lineSep: true}                            // log/slog's JSONHandler
	jsonStyles   = []jsonStyle{
		jsonGo, jsonGoNoHTML, jsonSlog,
		{shortBF: true},                           // JavaScript JSON.stringify, Python ensure_ascii=False, serde_json, Jackson
		{ascii: true, shortBF: true},              // Python json.dumps
		{ascii: true, shortBF: true, slash: true}, // PHP json_encode
		{ascii: true, html: true, shortBF: true},  // Go with non-ASCII escaped, .NET-like
	}
)

// jsonForms returns v escaped as inside a JSON string by every style of
// jsonStyles, in both hex cases.
func jsonForms(v []byte) [][]byte {
	var out [][]byte
	for _, st := range jsonStyles {
		out = append(out, jsonEscape(v, st))
		st.upper = true
		out = append(out, jsonEscape(v, st))
	}
	return out
}

// jsonEscape returns s escaped as inside a JSON string (without the
// quotes). Bytes that are not UTF-8 become \ufffd, as in Go.
func jsonEscape(s []byte, st jsonStyle) []byte {
	digits := hexLower
	if st.upper {
		digits = hexUpper
	}
	u4 := func(out []byte, r rune) []byte {
		return append(out, '\\', 'u', digits[r>>12&15], digits[r>>8&15], digits[r>>4&15], digits[r&15])
	}
	out := make([]byte, 0, len(s)+len(s)/4)
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c == '"' || c == '\\':
				out = append(out, '\\', c)
			case c == '\n':
				out = append(out, '\\', 'n')
			case c == '\r':
				out = append(out, '\\', 'r')
			case c == '\t':
				out = append(out, '\\', 't')
			case c == '\b' && st.shortBF:
				out = append(out, '\\', 'b')
			case c == '\f' && st.shortBF:
				out = append(out, '\\', 'f')
			case c < 0x20, c == 0x7f && st.ascii, st.html && (c == '<' || c == '>' || c == '&'):
				out = u4(out, rune(c))
			case c == '/' && st.slash:
				out = append(out, '\\', '/')
			default:
				out = append(out, c)
			}
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			out = u4(out, utf8.RuneError)
		case st.ascii && r > 0xffff:
			r -= 0x10000
			out = u4(out, 0xd800+(r>>10))
			out = u4(out, 0xdc00+(r&0x3ff))
		case st.ascii, st.lineSep && (r == '\u2028' || r == '\u2029'):
			out = u4(out, r)
		default:
			out = append(out, s[i:i+size]...)
		}
		i += size
	}
	return out
}

// goQuoted returns s as strconv.Quote (or QuoteToASCII) writes it, without
// the quotes.
func goQuoted(s []byte, ascii bool) []byte {
	var q []byte
	if ascii {
		q = strconv.AppendQuoteToASCII(nil, string(s))
	} else {
		q = strconv.AppendQuote(nil, string(s))
	}
	return q[1 : len(q)-1]
}

// htmlForms returns s with & < > " ' written as HTML or XML character
// references, in the spellings of Go's html.EscapeString, Python's
// html.escape, PHP's htmlspecialchars and XML, and with the quotes left as
// they are (text outside attributes).
func htmlForms(s []byte) [][]byte {
	var out [][]byte
	for _, quot := range []string{"&#34;", "&quot;", `"`} {
		for _, apos := range []string{"&#39;", "&#x27;", "&apos;", "&#039;", "'"} {
			b := make([]byte, 0, len(s)+len(s)/4)
			for _, c := range s {
				switch c {
				case '&':
					b = append(b, "&amp;"...)
				case '<':
					b = append(b, "&lt;"...)
				case '>':
					b = append(b, "&gt;"...)
				case '"':
					b = append(b, quot...)
				case '\'':
					b = append(b, apos...)
				default:
					b = append(b, c)
				}
			}
			out = append(out, b)
		}
	}
	return out
}

// pyRepr returns s as Python's repr() of a str writes it, without the
// quotes: with ' escaped when quote is true (repr picks '…' unless the
// string holds a ' and no "). Controls and DEL are \xNN, and \t \n \r
// have their names; printable characters are kept. Python's idea of
// printable differs from unicode.IsPrint at the edges (both call U+00AD
// unprintable).
func pyRepr(s []byte, quote bool) []byte {
	out := make([]byte, 0, len(s)+len(s)/4)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			return nil // not a Python str
		}
		i += size
		switch {
		case r == '\\' || r == '\'' && quote:
			out = append(out, '\\', byte(r))
		case r == '\t':
			out = append(out, '\\', 't')
		case r == '\n':
			out = append(out, '\\', 'n')
		case r == '\r':
			out = append(out, '\\', 'r')
		case r < 0x20 || r >= 0x7f && r < 0xa0 || r == 0xad:
			out = append(out, '\\', 'x', hexLower[r>>4], hexLower[r&15])
		case r > 0xa0 && !unicode.IsPrint(r):
			if r > 0xffff {
				out = fmt.Appendf(out, "\\U%08x", r)
			} else {
				out = fmt.Appendf(out, "\\u%04x", r)
			}
		default:
			out = utf8.AppendRune(out, r)
		}
	}
	return out
}
