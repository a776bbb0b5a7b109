package providers

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// Ref is a parsed secret reference: which provider instance (Scheme), what
// secret in it (Path), which key of a structured secret (Field, empty for the
// whole secret) and provider options (Params, from the query string).
//
// Parsing is pure: it does no I/O and knows nothing of which schemes exist.
// Compatibility spellings (ECS ARNs, berglas, secrets-init, bank-vaults) parse
// into the same Ref as their canonical form.
type Ref struct {
	// Scheme is the provider instance name: "vault", "awssm", "gcpsm", "k8s",
	// "file" or a name declared under providers: in the config.
	Scheme string
	// Path locates the secret within the provider, percent-decoded. For file
	// references it is an absolute path ("/etc/kw/dev.yaml") or a path
	// relative to the config directory.
	Path string
	// Field selects one key of a structured secret; "" means the whole secret.
	Field string
	// Params holds the query parameters; nil when there are none.
	Params map[string]string
	// Raw is the text the reference was parsed from.
	Raw string
}

// ParseError describes a malformed reference. Its message names the
// reference and the 1-based byte position of the problem. When Hide is set
// (the text came from somewhere that might hold a value, such as an
// environment variable), the reference text is left out. Msg never quotes
// any part of the text, so a hidden error carries none of it.
type ParseError struct {
	Ref  string
	Pos  int
	Msg  string
	Hide bool
}

func (e *ParseError) Error() string {
	if e.Hide {
		return fmt.Sprintf("invalid reference at position %d: %s", e.Pos, e.Msg)
	}
	return fmt.Sprintf("invalid reference %q at position %d: %s", e.Ref, e.Pos, e.Msg)
}

// Unwrap makes errors.Is(err, ErrInvalidReference) hold.
func (e *ParseError) Unwrap() error { return ErrInvalidReference }

func perr(raw string, pos int, format string, args ...any) *ParseError {
	return &ParseError{Ref: raw, Pos: pos + 1, Msg: fmt.Sprintf(format, args...)}
}

// Key identifies the underlying secret: two references with the same Key
// differ at most in Field and are served by one fetch.
func (r Ref) Key() string {
	return r.Scheme + "\x00" + r.Path + "\x00" + encodeParams(r.Params)
}

// Whole returns r without its field: the reference a provider's Fetch gets.
func (r Ref) Whole() Ref {
	r.Field = ""
	return r
}

// IsAbs reports whether a file reference's path is absolute.
func (r Ref) IsAbs() bool { return strings.HasPrefix(r.Path, "/") }

// String returns the canonical spelling of the reference.
func (r Ref) String() string {
	var b strings.Builder
	b.WriteString(r.Scheme)
	if r.Scheme == "file" && !r.IsAbs() {
		b.WriteString(":")
	} else {
		b.WriteString("://")
	}
	b.WriteString(escapePath(r.Path))
	if len(r.Params) > 0 {
		b.WriteString("?")
		b.WriteString(encodeParams(r.Params))
	}
	if r.Field != "" {
		b.WriteString("#")
		b.WriteString(escapePath(r.Field))
	}
	return b.String()
}

// escapePath percent-escapes what Parse would otherwise read as syntax or
// reject: '%', '#', '?', control characters, and a trailing space.
func escapePath(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' || c == '#' || c == '?' || c < 0x20 || c == 0x7f || c == ' ' && i == len(s)-1:
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func encodeParams(p map[string]string) string {
	if len(p) == 0 {
		return ""
	}
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(k))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(p[k]))
	}
	return b.String()
}

// Compatibility prefixes recognised in addition to NAME://.
const (
	prefixGCPSecretsInit = "gcp:secretmanager:"
	prefixBerglas        = "sm://"
)

// awsARNPrefix reports the length of an AWS Secrets Manager ARN prefix
// ("arn:PARTITION:secretsmanager:") at the start of s, or 0.
func awsARNPrefix(s string) int {
	if !strings.HasPrefix(s, "arn:") {
		return 0
	}
	rest := s[len("arn:"):]
	i := strings.IndexByte(rest, ':')
	if i < 0 || !strings.HasPrefix(rest[:i], "aws") {
		return 0
	}
	if !strings.HasPrefix(rest[i+1:], "secretsmanager:") {
		return 0
	}
	return len("arn:") + i + 1 + len("secretsmanager:")
}

// SchemeOf returns the scheme that s would be parsed under, or "" when s
// does not look like a reference at all. It is used to decide whether an
// environment variable's value is a reference: callers check the result
// against the schemes they know.
func SchemeOf(s string) string {
	switch {
	case awsARNPrefix(s) > 0:
		return "awssm"
	case strings.HasPrefix(s, prefixGCPSecretsInit), strings.HasPrefix(s, prefixBerglas):
		return "gcpsm"
	}
	i := strings.IndexByte(s, ':')
	if i <= 0 || !validScheme(s[:i]) {
		return ""
	}
	return s[:i]
}

func validScheme(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Parse parses a reference in any documented spelling:
//
//	SCHEME://PATH[?k=v&…][#field]      canonical (vault, awssm, gcpsm, k8s, file, instance names)
//	file:RELATIVE/PATH[#field]           file path relative to the config directory
//	arn:aws:secretsmanager:R:A:secret:NAME[:json-key[:version-stage[:version-id]]]
//	sm://PROJECT/SECRET[#version]        berglas
//	gcp:secretmanager:projects/P/secrets/S[/versions/V][#field]
//	vault:PATH#key[#version]             bank-vaults vault-env
//
// Errors are *ParseError, wrap ErrInvalidReference, and name the position.
func Parse(s string) (Ref, error) {
	if s == "" {
		return Ref{}, perr(s, 0, "empty reference")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return Ref{}, perr(s, i, "control character")
		}
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		pos := 0
		if s[0] != ' ' {
			pos = len(s) - 1
		}
		return Ref{}, perr(s, pos, "leading or trailing space")
	}
	if n := awsARNPrefix(s); n > 0 {
		return parseECSARN(s, n)
	}
	if strings.HasPrefix(s, prefixBerglas) {
		return parseBerglas(s)
	}
	if strings.HasPrefix(s, prefixGCPSecretsInit) {
		r, err := parseBody(s, "gcpsm", len(prefixGCPSecretsInit))
		if err != nil {
			return Ref{}, err
		}
		if !strings.HasPrefix(r.Path, "projects/") {
			return Ref{}, perr(s, len(prefixGCPSecretsInit), "expected projects/PROJECT/secrets/SECRET")
		}
		return r, nil
	}
	colon := strings.IndexByte(s, ':')
	if colon < 0 {
		return Ref{}, perr(s, 0, "missing scheme (expected SCHEME://PATH, e.g. vault://secret/app#key)")
	}
	scheme := s[:colon]
	if !validScheme(scheme) {
		return Ref{}, perr(s, 0, "scheme must be lower-case letters, digits, '-' or '_', starting with a letter")
	}
	switch scheme {
	case "arn":
		return Ref{}, perr(s, 0, "ARN is not an AWS Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)")
	case "gcp":
		return Ref{}, perr(s, 0, "expected gcp:secretmanager:projects/PROJECT/secrets/SECRET")
	case "sm":
		return Ref{}, perr(s, 0, "expected sm://PROJECT/SECRET")
	}
	start := colon + 1
	hier := strings.HasPrefix(s[start:], "//")
	if hier {
		start += 2
		if scheme == "file" && !strings.HasPrefix(s[start:], "/") {
			return Ref{}, perr(s, start, "file:// takes an absolute path (file:///abs/path); write file:relative/path for a path relative to the config")
		}
	}
	if scheme == "vault" && !hier {
		return parseBankVaults(s, start)
	}
	return parseBody(s, scheme, start)
}

// parseBody parses PATH[?query][#field] starting at s[start:].
func parseBody(s, scheme string, start int) (Ref, error) {
	r := Ref{Scheme: scheme, Raw: s}
	body := s[start:]
	end := len(s)
	if h := strings.IndexByte(body, '#'); h >= 0 {
		fpos := start + h + 1
		if fpos == len(s) {
			return Ref{}, perr(s, fpos-1, "empty field after '#'")
		}
		f, err := unescape(s, fpos, s[fpos:])
		if err != nil {
			return Ref{}, err
		}
		r.Field = f
		end = start + h
	}
	pathEnd := end
	if q := strings.IndexByte(s[start:end], '?'); q >= 0 {
		pathEnd = start + q
		p, err := parseQuery(s, pathEnd+1, s[pathEnd+1:end])
		if err != nil {
			return Ref{}, err
		}
		r.Params = p
	}
	if pathEnd == start {
		return Ref{}, perr(s, start, "empty path")
	}
	p, err := unescape(s, start, s[start:pathEnd])
	if err != nil {
		return Ref{}, err
	}
	r.Path = p
	return r, nil
}

func unescape(s string, pos int, part string) (string, error) {
	if !strings.Contains(part, "%") {
		return part, nil
	}
	out, err := url.PathUnescape(part)
	if err != nil {
		i := strings.IndexByte(part, '%')
		for i >= 0 && i+2 < len(part) && ishex(part[i+1]) && ishex(part[i+2]) {
			j := strings.IndexByte(part[i+1:], '%')
			if j < 0 {
				break
			}
			i += 1 + j
		}
		return "", perr(s, pos+max(i, 0), "invalid percent-escape")
	}
	return out, nil
}

func ishex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func parseQuery(s string, pos int, q string) (map[string]string, error) {
	if q == "" {
		return nil, perr(s, pos-1, "empty query after '?'")
	}
	out := map[string]string{}
	off := pos
	for _, kv := range strings.Split(q, "&") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, perr(s, off, "query parameter must be key=value")
		}
		dk, err := url.QueryUnescape(k)
		if err != nil {
			return nil, perr(s, off, "invalid escape in query key")
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			return nil, perr(s, off+len(k)+1, "invalid escape in query value")
		}
		if _, dup := out[dk]; dup {
			return nil, perr(s, off, "query parameter given twice")
		}
		if dv == "" {
			return nil, perr(s, off+len(k)+1, "query parameter has an empty value")
		}
		out[dk] = dv
		off += len(kv) + 1
	}
	return out, nil
}

// parseECSARN parses the ECS / secrets-init form
// arn:aws:secretsmanager:REGION:ACCT:secret:NAME[:json-key[:version-stage[:version-id]]].
func parseECSARN(s string, prefix int) (Ref, error) {
	if strings.ContainsAny(s, "#?") {
		return Ref{}, perr(s, strings.IndexAny(s, "#?"), "the ARN form takes options as :json-key:version-stage:version-id, not '#' or '?'; use awssm://ARN#key?version-stage=… instead")
	}
	parts := strings.Split(s[prefix:], ":")
	// parts: REGION ACCT "secret" NAME [json-key [stage [id]]]
	pos := func(i int) int {
		p := prefix
		for j := 0; j < i; j++ {
			p += len(parts[j]) + 1
		}
		return p
	}
	if len(parts) < 4 {
		return Ref{}, perr(s, len(s), "ARN is incomplete: expected arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME")
	}
	if len(parts) > 7 {
		return Ref{}, perr(s, pos(7), "too many ':' fields: expected NAME[:json-key[:version-stage[:version-id]]]")
	}
	if parts[0] == "" {
		return Ref{}, perr(s, pos(0), "empty region")
	}
	if parts[1] == "" {
		return Ref{}, perr(s, pos(1), "empty account")
	}
	if parts[2] != "secret" {
		return Ref{}, perr(s, pos(2), "expected resource type \"secret\"")
	}
	if parts[3] == "" {
		return Ref{}, perr(s, pos(3), "empty secret name")
	}
	r := Ref{Scheme: "awssm", Raw: s, Path: s[:pos(4)-1]}
	if len(parts) > 4 && parts[4] != "" {
		r.Field = parts[4]
	}
	for i, name := range []string{"version-stage", "version-id"} {
		if len(parts) > 5+i && parts[5+i] != "" {
			if r.Params == nil {
				r.Params = map[string]string{}
			}
			r.Params[name] = parts[5+i]
		}
	}
	return r, nil
}

// parseBerglas parses sm://PROJECT/SECRET[#version].
func parseBerglas(s string) (Ref, error) {
	start := len(prefixBerglas)
	r, err := parseBody(s, "gcpsm", start)
	if err != nil {
		return Ref{}, err
	}
	if p, sec, ok := strings.Cut(r.Path, "/"); !ok || p == "" || sec == "" || strings.Contains(sec, "/") {
		return Ref{}, perr(s, start, "expected sm://PROJECT/SECRET")
	}
	if r.Field != "" {
		if r.Params == nil {
			r.Params = map[string]string{}
		}
		if _, dup := r.Params["version"]; dup {
			return Ref{}, perr(s, strings.IndexByte(s, '#'), "version given twice")
		}
		r.Params["version"] = r.Field
		r.Field = ""
	}
	return r, nil
}

// parseBankVaults parses vault:PATH[#key[#version]] (bank-vaults vault-env).
func parseBankVaults(s string, start int) (Ref, error) {
	body := s[start:]
	version := ""
	if first := strings.IndexByte(body, '#'); first >= 0 {
		if second := strings.IndexByte(body[first+1:], '#'); second >= 0 {
			vpos := start + first + 1 + second + 1
			version = s[vpos:]
			if version == "" {
				return Ref{}, perr(s, vpos-1, "empty version after second '#'")
			}
			s2 := s[:vpos-1]
			r, err := parseBody(s2, "vault", start)
			if err != nil {
				var pe *ParseError
				if errors.As(err, &pe) {
					pe.Ref = s // name the whole reference, not the part before the version
				}
				return Ref{}, err
			}
			r.Raw = s
			if r.Params == nil {
				r.Params = map[string]string{}
			}
			if _, dup := r.Params["version"]; dup {
				return Ref{}, perr(s, vpos, "version given twice")
			}
			r.Params["version"] = version
			return r, nil
		}
	}
	return parseBody(s, "vault", start)
}
