package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/oauth"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/render"
)

var (
	envNameRe      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	instanceNameRe = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	tokenNameRe    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// reservedSchemes cannot name an instance: Parse reads them as the
// compatibility spellings (arn:aws:…, gcp:secretmanager:…, sm://…).
var reservedSchemes = []string{"arn", "gcp", "sm"}

// signals are the names on_change.signal accepts (without SIG). KILL and
// STOP are left out: they cannot be handled, use restart instead.
var signals = []string{"HUP", "INT", "QUIT", "TERM", "USR1", "USR2", "WINCH", "ALRM", "CONT", "TSTP", "TTIN", "TTOU"}

// reservedTokenParams are set by keyward itself from other keys.
var reservedTokenParams = []string{"grant_type", "client_id", "client_secret", "scope", "audience", "resource",
	"refresh_token", "client_assertion", "client_assertion_type"}

// Validate checks the config without I/O and reports every problem at
// once as an *Error: names and references, that every secret used by env,
// files and templates (by literal name) is declared, that each file has the
// fields its format needs, file modes, durations, token endpoints, the
// on_change action and the server address. Parse calls it; call it again
// after changing a Config in code. It does not modify c.
func (c *Config) Validate() error {
	v := &validator{c: c, kinds: map[string]string{}}
	// The kinds registered in this binary, in it or not (providers/builtin
	// registers keyward's), each with its default instance.
	for _, k := range providers.KnownKinds() {
		v.kinds[k] = k
	}
	for name, p := range c.Providers {
		v.kinds[name] = p.Kind
	}
	if c.Version != 1 && !c.broken["version"] {
		v.add("version", 1, "version must be 1")
	}
	v.providers()
	v.secrets()
	v.env()
	v.files()
	v.tokens()
	v.watch()
	v.onChange()
	v.server()
	v.ci()
	return v.err(c.Path)
}

type validator struct {
	problems
	c     *Config
	kinds map[string]string // scheme -> kind
}

// add reports a problem about the value at path, on its line (or def when
// the config was not read from a file). Problems about a path the decoder
// already reported are dropped.
func (v *validator) add(path string, def int, format string, args ...any) {
	if v.c.broken[path] {
		return
	}
	v.problems.add(v.c.lineOf(path, def), path, format, args...)
}

// lineOf returns the line of path or of its closest recorded parent.
func (c *Config) lineOf(path string, def int) int {
	for p := path; p != ""; {
		if l, ok := c.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return def
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (v *validator) providers() {
	for _, name := range sortedKeys(v.c.Providers) {
		p := v.c.Providers[name]
		path := join("providers", name)
		switch {
		case !instanceNameRe.MatchString(name):
			v.add(path, p.Line, "invalid instance name (it is the reference scheme: lower-case letters, digits, '-' or '_', starting with a letter)")
		case slices.Contains(reservedSchemes, name):
			v.add(path, p.Line, "instance name %q is reserved for a compatibility reference spelling", name)
		}
		switch {
		case p.Kind == "":
			v.add(path, p.Line, "kind is required (one of %s)", strings.Join(providers.KnownKinds(), ", "))
		case !providers.KnownKind(p.Kind):
			v.add(join(path, "kind"), p.Line, "unknown provider kind %q (want one of %s)", p.Kind, strings.Join(providers.KnownKinds(), ", "))
		case slices.Contains(providers.KnownKinds(), name) && p.Kind != name:
			v.add(join(path, "kind"), p.Line, "instance %q replaces the builtin provider of that name and must have kind %q", name, name)
		}
	}
}

// checkRef checks that ref names a known instance and, when the instance's
// kind is in this build, that the kind takes it (providers.Kind.Check, the
// check the provider set makes too). A kind left out of this build is
// reported where a command uses the reference, not here: a config for a
// fuller build stays valid (the webhook validates pods' configs).
func (v *validator) checkRef(path string, def int, ref providers.Ref) {
	if ref.Scheme == "" {
		v.add(path, def, "reference is required")
		return
	}
	kind, ok := v.kinds[ref.Scheme]
	if !ok {
		v.add(path, def, "%v", providers.UnknownProvider(ref.Scheme, sortedKeys(v.kinds)))
		return
	}
	k, ok := providers.LookupKind(kind)
	if !ok {
		return
	}
	var re *providers.RefError
	if err := k.Check(ref); errors.As(err, &re) {
		for _, p := range re.Problems {
			v.add(path, def, "%v", p)
		}
	}
}

func (v *validator) secrets() {
	for _, name := range sortedKeys(v.c.Secrets) {
		s := v.c.Secrets[name]
		path := join("secrets", name)
		if !envNameRe.MatchString(name) {
			v.add(path, s.Line, "invalid secret name (letters, digits and '_', not starting with a digit)")
		}
		v.checkRef(path, s.Line, s.Ref)
	}
}

// hasSecret reports whether name is declared under secrets:, including a
// secret whose reference was already reported as malformed.
func (c *Config) hasSecret(name string) bool {
	_, ok := c.Secrets[name]
	return ok || c.broken[join("secrets", name)]
}

func (v *validator) needSecret(path string, def int, name string) {
	switch {
	case name == "":
		v.add(path, def, "secret name must not be empty")
	case !v.c.hasSecret(name):
		v.add(path, def, "unknown secret %q (not declared under secrets:)", name)
	}
}

func (v *validator) env() {
	for _, name := range sortedKeys(v.c.Env) {
		path := join("env", name)
		if !envNameRe.MatchString(name) {
			v.add(path, 0, "invalid environment variable name")
		}
		v.needSecret(path, 0, v.c.Env[name])
	}
	seen := map[string]bool{}
	for i, name := range v.c.KeepEnv {
		path := index("keep_env", i)
		switch {
		case !envNameRe.MatchString(name):
			v.add(path, 0, "invalid environment variable name")
		case seen[name]:
			v.add(path, 0, "%s listed twice", name)
		}
		seen[name] = true
	}
}

// outputs tracks the files keyward writes, to catch two writers of one path.
type outputs map[string]string

func (v *validator) claim(out outputs, file, path string, def int) {
	if file == "" {
		return
	}
	clean := filepath.Clean(file)
	if first, dup := out[clean]; dup {
		v.add(path, def, "%s is also written by %s", clean, first)
		return
	}
	out[clean] = path
}

func (v *validator) files() {
	out := outputs{}
	for i, f := range v.c.Files {
		path := index("files", i)
		at := func(key string) string { return join(path, key) }
		if f.Path == "" {
			v.add(at("path"), f.Line, "path is required")
		}
		v.claim(out, f.Path, at("path"), f.Line)

		var want, forbid []string
		switch f.Format {
		case FormatRaw:
			want, forbid = []string{"secret"}, []string{"secrets", "template", "template_file"}
		case FormatDotenv, FormatJSON, FormatYAML:
			want, forbid = []string{"secrets"}, []string{"secret", "template", "template_file"}
		case FormatTemplate:
			forbid = []string{"secret", "secrets"}
			switch {
			case f.Template == "" && f.TemplateFile == "":
				v.add(path, f.Line, "format template needs template or template_file")
			case f.Template != "" && f.TemplateFile != "":
				v.add(at("template_file"), f.Line, "give template or template_file, not both")
			}
		case "":
			if v.c.broken[at("secret")] || v.c.broken[at("secrets")] || v.c.broken[at("template")] || v.c.broken[at("template_file")] || v.c.broken[at("format")] {
				break
			}
			v.add(path, f.Line, "needs secret (raw), secrets (dotenv, json, yaml) or template/template_file (template)")
		default:
			v.add(at("format"), f.Line, "unknown format %q (want raw, dotenv, json, yaml or template)", f.Format)
		}
		set := map[string]bool{
			"secret":        f.Secret != "",
			"secrets":       f.Secrets != nil,
			"template":      f.Template != "",
			"template_file": f.TemplateFile != "",
		}
		for _, k := range want {
			if !set[k] && !v.c.broken[at(k)] {
				v.add(path, f.Line, "format %s needs %s", f.Format, k)
			}
		}
		for _, k := range forbid {
			if set[k] {
				v.add(at(k), f.Line, "format %s does not take %s", f.Format, k)
			}
		}

		switch {
		case f.Dialect == "":
		case !slices.Contains(render.Dialects, render.Dialect(f.Dialect)):
			v.add(at("dialect"), f.Line, "unknown dotenv dialect %q (want %s)", f.Dialect, dialectNames())
		case f.Format != FormatDotenv && f.Format != "":
			v.add(at("dialect"), f.Line, "dialect applies to format dotenv, not %s", f.Format)
		}
		if f.Secret != "" {
			v.needSecret(at("secret"), f.Line, f.Secret)
		}
		if f.Secrets != nil && len(f.Secrets) == 0 {
			v.add(at("secrets"), f.Line, "must list at least one secret")
		}
		seen := map[string]bool{}
		for j, name := range f.Secrets {
			sp := index(at("secrets"), j)
			v.needSecret(sp, f.Line, name)
			if seen[name] {
				v.add(sp, f.Line, "secret %q listed twice", name)
			}
			seen[name] = true
		}
		if f.Template != "" {
			v.template(at("template"), f)
		}

		switch perm := f.Mode.Perm(); {
		case f.Mode&^os.ModePerm != 0:
			v.add(at("mode"), f.Line, "mode %s: setuid, setgid and sticky bits are not allowed", modeString(f.Mode))
		case perm&0o111 != 0:
			v.add(at("mode"), f.Line, "mode %s: a secret file must not be executable", modeString(f.Mode))
		case perm&0o022 != 0:
			v.add(at("mode"), f.Line, "mode %s: a secret file must not be writable by group or others", modeString(f.Mode))
		case perm == 0:
			v.add(at("mode"), f.Line, "mode %s: nobody could read the file (leave mode out for the default %s)", modeString(f.Mode), modeString(DefaultFileMode))
		case perm&0o400 == 0:
			v.add(at("mode"), f.Line, "mode %s: the file's owner could not read it", modeString(f.Mode))
		}
		if f.Owner != nil && *f.Owner < 0 {
			v.add(at("owner"), f.Line, "must be a uid (0 or more)")
		}
		if f.Group != nil && *f.Group < 0 {
			v.add(at("group"), f.Line, "must be a gid (0 or more)")
		}
	}
	for _, name := range sortedKeys(v.c.Tokens) {
		t := v.c.Tokens[name]
		v.claim(out, t.File, join(join("tokens", name), "file"), t.Line)
	}
}

// modeString formats m as the octal string a config would use.
func modeString(m os.FileMode) string {
	u := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		u |= 0o1000
	}
	return fmt.Sprintf("%04o", u)
}

// template parses an inline template (render's reading of it, the one
// every command uses) and checks the names it spells out for secret.
func (v *validator) template(path string, f File) {
	first := f.templateLine
	if first == 0 {
		first = f.Line
	}
	lineAt := func(l int) int {
		if first == 0 {
			return 0
		}
		return first + l - 1
	}
	uses, err := render.TemplateSecrets(f.Template)
	if err != nil {
		var te *render.TemplateError
		line, msg := first, err.Error()
		if errors.As(err, &te) {
			line, msg = lineAt(te.Line), te.Reason
			if te.Start > 0 {
				// "unclosed action started at line N": the start is the place to look.
				line = lineAt(te.Start)
				msg += fmt.Sprintf(" started at line %d", line)
			}
		}
		if !v.c.broken[path] {
			v.problems.add(line, path, "invalid template: %s", msg)
		}
		return
	}
	for _, u := range uses {
		if !u.Dynamic && !v.c.hasSecret(u.Name) && !v.c.broken[path] {
			v.problems.add(lineAt(u.Line), path, "unknown secret %q (not declared under secrets:)", u.Name)
		}
	}
}

func (v *validator) tokens() {
	for _, name := range sortedKeys(v.c.Tokens) {
		t := v.c.Tokens[name]
		path := join("tokens", name)
		at := func(key string) string { return join(path, key) }
		if !tokenNameRe.MatchString(name) {
			v.add(path, t.Line, "invalid token name (letters, digits, '.', '_' or '-', starting with a letter or digit)")
		}
		if v.tokenSource(path, t) {
			v.tokenURL(at("token_url"), t)
			if t.ClientID.Scheme == "" {
				v.add(at("client_id"), t.Line, "client_id is required (a reference)")
			} else {
				v.checkRef(at("client_id"), t.Line, t.ClientID)
			}
			v.tokenAuth(path, t)
		}
		for i, s := range t.Scopes {
			if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
				v.add(index(at("scopes"), i), t.Line, "a scope must be non-empty and contain no space, '\"' or '\\'")
			}
		}
		for _, k := range sortedKeys(t.Params) {
			switch {
			case k == "":
				v.add(at("params"), t.Line, "empty parameter name")
			case slices.Contains(reservedTokenParams, k):
				v.add(join(at("params"), k), t.Line, "parameter %q is set by keyward (use the token's own keys)", k)
			}
		}
		if t.RefreshBefore < 0 {
			v.add(at("refresh_before"), t.Line, "must not be negative")
		}
		if t.DefaultLifetime < 0 {
			v.add(at("default_lifetime"), t.Line, "must not be negative")
		} else if t.DefaultLifetime > 0 && t.DefaultLifetime <= t.RefreshBefore {
			v.add(at("default_lifetime"), t.Line, "must be longer than refresh_before (%s)", t.RefreshBefore)
		}
		switch {
		case t.File == "" && t.FileFormat != "":
			v.add(at("file_format"), t.Line, "file_format needs file")
		case t.File == "", t.FileFormat == TokenFileRaw, t.FileFormat == TokenFileJSON:
		case t.FileFormat == TokenFileCredentialProcess, t.FileFormat == TokenFileCredentials:
			if t.Source != TokenSourceAWS {
				v.add(at("file_format"), t.Line, "file_format %s is for source: %s only", t.FileFormat, TokenSourceAWS)
			}
		default:
			v.add(at("file_format"), t.Line, "unknown file_format %q (want raw or json; for source: aws also credential_process or credentials)", t.FileFormat)
		}
		if vf := t.Verify; vf != nil {
			v.httpsURL(join(at("verify"), "jwks_url"), t.Line, vf.JWKSURL, "jwks_url")
		}
		if t.keys["tls"] && t.Source == TokenSourceGCP && t.Verify == nil {
			v.add(at("tls"), t.Line, "with source: %s, tls applies to verify.jwks_url only: set verify or remove tls", TokenSourceGCP)
		}
		if t.keys["profile"] && t.FileFormat != TokenFileCredentials {
			v.add(at("profile"), t.Line, "profile is used only with file_format: %s", TokenFileCredentials)
		}
		if t.File == "" && v.c.Server == nil && !v.c.broken[at("file")] {
			v.add(path, t.Line, "token goes nowhere: set file or configure server")
		}
	}
}

// tokenSourceKeys are the keys each token source takes, besides source,
// refresh_before, default_lifetime, file and file_format.
var tokenSourceKeys = map[string][]string{
	TokenSourceOAuth2: {"token_url", "grant", "refresh_token", "client_id", "client_secret", "private_key", "certificate",
		"key_id", "signing_alg", "scopes", "audience", "resource", "params", "auth", "verify", "tls"},
	TokenSourceVault: {"provider"},
	TokenSourceAWS:   {"provider", "role_arn", "session_name", "duration", "profile"},
	TokenSourceGCP:   {"provider", "scopes", "audience", "verify", "tls"},
}

// tokenSource checks t's source and the keys it takes, and reports
// whether t is an OAuth2 grant (whose keys are checked next).
func (v *validator) tokenSource(path string, t Token) bool {
	at := func(key string) string { return join(path, key) }
	keys, ok := tokenSourceKeys[t.Source]
	if !ok {
		v.add(at("source"), t.Line, "unknown source %q (want oauth2, vault, aws or gcp)", t.Source)
		return false
	}
	for _, k := range tokenKeys {
		switch k {
		case "source", "refresh_before", "default_lifetime", "file", "file_format":
			continue
		}
		if t.keys[k] && !slices.Contains(keys, k) {
			v.add(at(k), t.Line, "%s is not used with source: %s", k, t.Source)
		}
	}
	if t.Source == TokenSourceOAuth2 {
		return true
	}
	kind := TokenSourceKinds[t.Source]
	if got, ok := v.kinds[t.Provider]; !ok || got != kind {
		v.add(at("provider"), t.Line, "source: %s needs a provider instance of kind %s, and %q is none", t.Source, kind, t.Provider)
	}
	if t.RoleARN != "" && !awsRoleARNRe.MatchString(t.RoleARN) {
		v.add(at("role_arn"), t.Line, "not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
	}
	if t.Duration != 0 && (t.Duration < 15*time.Minute || t.Duration > 12*time.Hour) {
		v.add(at("duration"), t.Line, "must be between 15m and 12h (what STS allows)")
	}
	if t.Source == TokenSourceGCP && t.Audience != "" && len(t.Scopes) > 0 {
		v.add(at("scopes"), t.Line, "an ID token (audience) has no scopes")
	}
	return false
}

// awsRoleARNRe matches an IAM role ARN.
var awsRoleARNRe = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$`)

// tokenAuth checks the client credentials of t's auth method: those it
// uses are required references, the others must be absent.
func (v *validator) tokenAuth(path string, t Token) {
	at := func(key string) string { return join(path, key) }
	switch t.Grant {
	case GrantClientCredentials:
		if t.RefreshToken.Scheme != "" {
			v.add(at("refresh_token"), t.Line, "refresh_token is used only with grant: %s", GrantRefreshToken)
		}
	case GrantRefreshToken:
		if t.RefreshToken.Scheme == "" {
			v.add(at("refresh_token"), t.Line, "refresh_token is required with grant: %s (a reference)", GrantRefreshToken)
		} else {
			v.checkRef(at("refresh_token"), t.Line, t.RefreshToken)
		}
	default:
		v.add(at("grant"), t.Line, "unknown grant %q (want %s or %s)", t.Grant, GrantClientCredentials, GrantRefreshToken)
	}
	var need []string
	switch t.AuthStyle {
	case AuthNone:
		if t.Grant != GrantRefreshToken {
			v.add(at("auth"), t.Line, "auth: %s (a public client) is only for grant: %s", AuthNone, GrantRefreshToken)
		}
	case AuthBasic, AuthPost:
		need = []string{"client_secret"}
	case AuthPrivateKeyJWT:
		need = []string{"private_key"}
	case AuthTLSClient, AuthSelfSignedTLSClient:
		need = []string{"certificate", "private_key"}
	default:
		v.add(at("auth"), t.Line, "unknown auth %q (want %s, %s, %s, %s, %s or %s)", t.AuthStyle,
			AuthBasic, AuthPost, AuthPrivateKeyJWT, AuthTLSClient, AuthSelfSignedTLSClient, AuthNone)
		return
	}
	refs := map[string]providers.Ref{"client_secret": t.ClientSecret, "private_key": t.PrivateKey, "certificate": t.Certificate}
	for _, key := range []string{"client_secret", "certificate", "private_key"} {
		ref := refs[key]
		switch {
		case slices.Contains(need, key) && ref.Scheme == "":
			v.add(at(key), t.Line, "%s is required with auth: %s (a reference)", key, t.AuthStyle)
		case slices.Contains(need, key):
			v.checkRef(at(key), t.Line, ref)
		case ref.Scheme != "":
			v.add(at(key), t.Line, "%s is not used with auth: %s", key, t.AuthStyle)
		}
	}
	if t.AuthStyle != AuthPrivateKeyJWT {
		if t.KeyID != "" {
			v.add(at("key_id"), t.Line, "key_id is used only with auth: %s", AuthPrivateKeyJWT)
		}
		if t.SigningAlg != "" {
			v.add(at("signing_alg"), t.Line, "signing_alg is used only with auth: %s", AuthPrivateKeyJWT)
		}
	} else if t.SigningAlg != "" && !slices.Contains(oauth.SigningAlgs(), t.SigningAlg) {
		v.add(at("signing_alg"), t.Line, "unknown signing_alg %q (want one of %s)", t.SigningAlg, strings.Join(oauth.SigningAlgs(), ", "))
	}
}

// tokenURL checks the endpoint without echoing it: it may carry credentials.
func (v *validator) tokenURL(path string, t Token) {
	v.httpsURL(path, t.Line, t.TokenURL, "token_url")
}

// httpsURL checks an https URL (http only for a loopback host) without
// echoing it: it may carry credentials.
func (v *validator) httpsURL(path string, line int, raw, key string) {
	if raw == "" {
		v.add(path, line, "%s is required", key)
		return
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		v.add(path, line, "must be an absolute https URL")
		return
	}
	switch {
	case u.User != nil:
		v.add(path, line, "must not contain credentials (user:password@)")
	case u.Fragment != "":
		v.add(path, line, "must not have a #fragment")
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	case u.Scheme == "http":
		v.add(path, line, "must use https (http is allowed only for a loopback host)")
	default:
		v.add(path, line, "must be an https URL")
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func (v *validator) watch() {
	w := v.c.Watch
	if w == nil {
		return
	}
	if w.Interval <= 0 {
		v.add("watch.interval", w.Line, "must be positive")
	}
	if w.Jitter < 0 || w.Jitter > 1 {
		v.add("watch.jitter", w.Line, "must be between 0 and 1")
	}
	if w.Debounce < 0 || w.Debounce > time.Minute {
		v.add("watch.debounce", w.Line, "must be between 0 and 1m")
	}
}

// normalizeSignal returns the signal name in the form OnChange.Signal
// uses ("SIGHUP" and "HUP" give "HUP") and whether it is one on_change
// accepts.
func normalizeSignal(name string) (string, bool) {
	s := strings.TrimPrefix(name, "SIG")
	return s, slices.Contains(signals, s)
}

func (v *validator) onChange() {
	if v.c.OnChange != nil {
		v.checkOnChange("on_change", v.c.OnChange)
	}
	for i, f := range v.c.Files {
		if f.OnChange != nil {
			v.checkOnChange(join(index("files", i), "on_change"), f.OnChange)
		}
	}
}

// checkOnChange checks one on_change section found at key path path.
func (v *validator) checkOnChange(path string, oc *OnChange) {
	n := 0
	if oc.Signal != "" {
		n++
		if _, ok := normalizeSignal(oc.Signal); !ok {
			v.add(join(path, "signal"), oc.Line, "unknown signal %q (want one of %s)", oc.Signal, strings.Join(signals, ", "))
		}
	}
	if oc.Restart {
		n++
	}
	if oc.Command != nil {
		n++
		if len(oc.Command) == 0 || oc.Command[0] == "" {
			v.add(join(path, "command"), oc.Line, "must name a program: [PROGRAM, ARGS…]")
		}
	}
	if oc.None {
		n++
	}
	if n != 1 && !v.c.broken[path] {
		v.add(path, oc.Line, "set exactly one of signal, restart: true, command or none")
	}
	switch {
	case oc.Timeout < 0:
		v.add(join(path, "timeout"), oc.Line, "must not be negative")
	case oc.Timeout > 0 && !oc.Restart && oc.Command == nil:
		v.add(join(path, "timeout"), oc.Line, "timeout applies to restart or command only")
	}
	switch {
	case oc.Splay < 0:
		v.add(join(path, "splay"), oc.Line, "must not be negative")
	case oc.Splay > 0 && !oc.Restart:
		v.add(join(path, "splay"), oc.Line, "splay applies to restart only")
	}
}

func (v *validator) server() {
	s := v.c.Server
	if s == nil {
		return
	}
	const path = "server.listen"
	if s.Listen == "" {
		v.add(path, s.Line, "listen is required (\"127.0.0.1:PORT\" or \"unix:/path/to.sock\")")
		return
	}
	if p, ok := strings.CutPrefix(s.Listen, "unix:"); ok {
		if p == "" {
			v.add(path, s.Line, "unix: needs a socket path")
		}
		return
	}
	host, port, err := net.SplitHostPort(s.Listen)
	if err != nil {
		v.add(path, s.Line, "must be HOST:PORT or unix:/path/to.sock")
		return
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		v.add(path, s.Line, "invalid port %q", port)
		return
	}
	if !isLoopback(host) && !s.AllowRemote {
		v.add(path, s.Line, "listening on a non-loopback address exposes tokens to the network; set allow_remote: true to do so")
	}
}

// dialectNames lists render's dotenv dialects for a message.
func dialectNames() string {
	names := make([]string, len(render.Dialects))
	for i, d := range render.Dialects {
		names[i] = string(d)
	}
	return strings.Join(names, ", ")
}
