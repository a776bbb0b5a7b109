package mask

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// DefaultMinLength is the length below which a value is neither masked nor
// scanned for: shorter strings occur by chance in ordinary output far too
// often. `keyward check` warns about values shorter than this.
const DefaultMinLength = 6

// Form kinds, as Form.Kind reports them.
const (
	KindRaw       = "raw"       // the value itself
	KindLine      = "line"      // one line of a multi-line value
	KindBase64    = "base64"    // standard alphabet, padded, unpadded, or at any alignment
	KindBase64URL = "base64url" // URL alphabet, likewise
	KindHex       = "hex"       // lower or upper case
	KindURL       = "url"       // percent-encoded (every common encoder's rules, either hex case)
	KindJSON      = "json"      // escaped as inside a JSON string (every common encoder's rules)
	KindQuoted    = "quoted"    // escaped as inside a Go string literal (%q, strconv.Quote)
	KindHTML      = "html"      // HTML or XML character references
)

// A Form is one byte string under which a value can appear in output.
type Form struct {
	Kind  string
	Bytes []byte
}

// Forms returns the distinct strings that stand for value, each at least
// minLen bytes long (minLen below MinPatternLength counts as
// MinPatternLength); nil when value itself is shorter than minLen. They are:
//
//   - the value (without its trailing line breaks, when that leaves
//     minLen bytes);
//   - for a value with line breaks (\n, \r\n or \r), each line;
//   - its base64 in the standard and the URL alphabet, padded and unpadded,
//     and, to catch the value inside a longer encoded blob, the characters
//     that depend on the value alone when it starts 1 or 2 bytes after a
//     3-byte boundary (as in `base64 file` of a file that contains it);
//   - its hex in lower and upper case;
//   - its percent-encoding as Go (QueryEscape, PathEscape), JavaScript
//     (encodeURIComponent, encodeURI, URLSearchParams), Python (quote,
//     quote_plus, with or without safe=”) and Java (URLEncoder) write it,
//     space as %20 or +, with upper- and lower-case hex digits;
//   - its JSON string escaping as Go (json.Marshal, which escapes < > &,
//     and log/slog), Python (json.dumps: non-ASCII as \uXXXX, surrogate
//     pairs beyond the BMP), JavaScript, PHP (\/) and others write it, in
//     either hex case;
//   - its Go string literal escaping (strconv.Quote, QuoteToASCII: what
//     %q and slog's text format print) and Python's repr();
//   - its HTML and XML escaping;
//   - the JSON and Go escaping of those escaped forms: a value inside a JSON
//     document that is itself logged as a string.
//
// The escaped forms are computed from the value without its trailing line
// breaks: each of those encoders escapes one character at a time, so the
// shorter form is inside every occurrence of the longer one.
func Forms(value []byte, minLen int) []Form {
	minLen = max(minLen, MinPatternLength)
	if len(value) < minLen {
		return nil
	}
	var out []Form
	seen := map[string]bool{}
	add := func(kind string, b []byte) {
		if len(b) < minLen || seen[string(b)] {
			return
		}
		seen[string(b)] = true
		out = append(out, Form{Kind: kind, Bytes: b})
	}
	// A value that ends with a line break (a PEM file, a key read from a
	// file) is masked without it, so that the output keeps its line
	// structure; every occurrence of the value contains the shorter form.
	v := value
	if trimmed := bytes.TrimRight(value, "\r\n"); len(trimmed) >= minLen {
		v = trimmed
	}
	add(KindRaw, v)
	if bytes.ContainsAny(value, "\r\n") {
		for _, line := range splitLines(value) {
			add(KindLine, line)
		}
	}
	for _, e := range []struct {
		kind     string
		pad, raw *base64.Encoding
	}{
		{KindBase64, base64.StdEncoding, base64.RawStdEncoding},
		{KindBase64URL, base64.URLEncoding, base64.RawURLEncoding},
	} {
		for _, b := range [][]byte{value, v} {
			add(e.kind, []byte(e.pad.EncodeToString(b)))
			add(e.kind, []byte(e.raw.EncodeToString(b)))
			for k := 0; k < 3; k++ {
				add(e.kind, base64Stable(e.raw, b, k))
			}
		}
	}
	add(KindHex, []byte(hex.EncodeToString(v)))
	add(KindHex, []byte(strings.ToUpper(hex.EncodeToString(v))))
	if plain(v) {
		return out // every escaping below leaves v as it is
	}
	for _, u := range urlForms(v) {
		add(KindURL, u)
	}
	// Escaped forms, and the same escaped once more (a JSON document logged
	// as a string by slog or %q).
	var escaped []Form
	for _, j := range jsonForms(v) {
		escaped = append(escaped, Form{KindJSON, j})
	}
	escaped = append(escaped, Form{KindQuoted, goQuoted(v, false)}, Form{KindQuoted, goQuoted(v, true)},
		Form{KindQuoted, pyRepr(v, true)}, Form{KindQuoted, pyRepr(v, false)})
	for _, h := range htmlForms(v) {
		escaped = append(escaped, Form{KindHTML, h})
	}
	for _, f := range escaped {
		add(f.Kind, f.Bytes)
	}
	for _, f := range escaped {
		if !bytes.ContainsAny(f.Bytes, "\\\"&<>") {
			continue
		}
		add(f.Kind, jsonEscape(f.Bytes, jsonGo))
		add(f.Kind, jsonEscape(f.Bytes, jsonGoNoHTML))
		add(f.Kind, jsonEscape(f.Bytes, jsonSlog))
		add(f.Kind, goQuoted(f.Bytes, false))
	}
	return out
}

// plain reports whether v consists only of bytes that no encoder of
// urlForms, jsonForms, goQuoted, pyRepr or htmlForms changes: ASCII
// letters, digits, '-', '.' and '_'.
func plain(v []byte) bool {
	for _, c := range v {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// splitLines splits v at \r\n, \n and \r, dropping the separators.
func splitLines(v []byte) [][]byte {
	var out [][]byte
	for len(v) > 0 {
		i := bytes.IndexAny(v, "\r\n")
		if i < 0 {
			out = append(out, v)
			break
		}
		out = append(out, v[:i])
		if v[i] == '\r' && i+1 < len(v) && v[i+1] == '\n' {
			i++
		}
		v = v[i+1:]
	}
	return out
}

// base64Stable returns the characters of the encoding of value, placed k
// bytes after a 3-byte boundary of a longer input, that depend on value
// alone: character c covers input bits [6c, 6c+6), which must lie within
// value's bits [8k, 8(k+len)).
func base64Stable(enc *base64.Encoding, value []byte, k int) []byte {
	in := make([]byte, k+len(value))
	copy(in[k:], value)
	s := enc.EncodeToString(in)
	from := (8*k + 5) / 6
	to := 8 * (k + len(value)) / 6
	if to <= from {
		return nil
	}
	return []byte(s[from:to])
}

// lowerPercentHex returns s with the hex digits of its %XX escapes in lower
// case.
func lowerPercentHex(s string) []byte {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1] = lowerHex(b[i+1])
			b[i+2] = lowerHex(b[i+2])
			i += 2
		}
	}
	return b
}

func lowerHex(c byte) byte {
	if c >= 'A' && c <= 'F' {
		return c + 'a' - 'A'
	}
	return c
}

// A Secret is a named value to mask or scan for.
type Secret struct {
	// Name identifies the secret in reports; it is never the value.
	Name  string
	Value []byte
}

// A Set is the compiled form of a list of secrets: every Form of every
// value long enough, in one Matcher. It is immutable and safe for
// concurrent use.
type Set struct {
	secrets []Secret
	minLen  int
	m       *Matcher
	owner   []int    // pattern index -> secret index
	kinds   []string // pattern index -> form kind
	names   []string
	skipped []string
}

// NewSet compiles the Forms of secrets with the given minimum length
// (DefaultMinLength when minLen is 0 or less). Secrets shorter than minLen
// are left out and listed by Skipped; a secret given twice (same value) is
// reported under its first name.
func NewSet(secrets []Secret, minLen int) *Set {
	if minLen <= 0 {
		minLen = DefaultMinLength
	}
	s := &Set{secrets: secrets, minLen: minLen}
	var pats [][]byte
	for i, sec := range secrets {
		s.names = append(s.names, sec.Name)
		forms := Forms(sec.Value, minLen)
		if len(forms) == 0 {
			if len(sec.Value) > 0 {
				s.skipped = append(s.skipped, sec.Name)
			}
			continue
		}
		for _, f := range forms {
			pats = append(pats, f.Bytes)
			s.owner = append(s.owner, i)
			s.kinds = append(s.kinds, f.Kind)
		}
	}
	s.m = NewMatcher(pats)
	return s
}

// Matcher returns the Set's Matcher; its pattern indexes are those that
// Find and Cover work with, and Owner and Kind describe.
func (s *Set) Matcher() *Matcher { return s.m }

// Owner returns the name of the secret that pattern i stands for.
func (s *Set) Owner(i int) string { return s.names[s.owner[i]] }

// Kind returns the form kind of pattern i (KindRaw, KindBase64, …).
func (s *Set) Kind(i int) string { return s.kinds[i] }

// Skipped lists the names of the non-empty secrets that are too short to be
// masked or scanned for.
func (s *Set) Skipped() []string { return s.skipped }
