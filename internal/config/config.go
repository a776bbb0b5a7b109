// Package config reads keyward's configuration: the keyward.yaml file
// (Load, Parse) and, without a file, the references found in the
// environment (FromEnv). It checks everything that can be checked without
// I/O and reports every problem at once, each with its line number, so
// that `keyward check` and every command fail early with one readable
// message.
package config

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/keyward/keyward/internal/readfile"
	"github.com/keyward/keyward/internal/tlsclient"
	"github.com/keyward/keyward/providers"
)

// Defaults applied by Parse.
const (
	// DefaultFileMode is the mode of a rendered file without mode:.
	DefaultFileMode os.FileMode = 0o600
	// DefaultWatchInterval is watch.interval when watch: is given without it.
	DefaultWatchInterval = 5 * time.Minute
	// DefaultWatchJitter is watch.jitter when watch: is given without it,
	// and the jitter to use when there is no watch: section.
	DefaultWatchJitter = 0.1
	// DefaultRefreshBefore is tokens.*.refresh_before when not given.
	DefaultRefreshBefore = 60 * time.Second
)

// File formats (files[].format).
const (
	FormatRaw      = "raw"
	FormatDotenv   = "dotenv"
	FormatJSON     = "json"
	FormatYAML     = "yaml"
	FormatTemplate = "template"
)

// Token client authentication styles (tokens.*.auth).
const (
	// AuthBasic sends client_id and client_secret in HTTP Basic
	// authentication (the default).
	AuthBasic = "basic"
	// AuthPost sends them in the request body.
	AuthPost = "post"
	// AuthPrivateKeyJWT signs a client assertion with private_key
	// (RFC 7523).
	AuthPrivateKeyJWT = "private_key_jwt"
	// AuthTLSClient presents certificate and private_key in the TLS
	// handshake, a certificate from a CA the server trusts (RFC 8705 §2.1).
	AuthTLSClient = "tls_client_auth"
	// AuthSelfSignedTLSClient does the same with a certificate registered
	// at the server (RFC 8705 §2.2).
	AuthSelfSignedTLSClient = "self_signed_tls_client_auth"
	// AuthNone sends client_id alone (a public client); refresh_token
	// grant only.
	AuthNone = "none"
)

// Token sources (tokens.*.source).
const (
	// TokenSourceOAuth2 is an OAuth2 grant (the default).
	TokenSourceOAuth2 = "oauth2"
	// TokenSourceVault is keyward's own Vault token (of a vault instance).
	TokenSourceVault = "vault"
	// TokenSourceAWS is temporary AWS credentials (of an awssm instance).
	TokenSourceAWS = "aws"
	// TokenSourceGCP is a Google access or ID token (of a gcpsm instance).
	TokenSourceGCP = "gcp"
)

// TokenSourceKinds is the provider kind of each source other than OAuth2,
// whose default instance serves it when provider is not given.
var TokenSourceKinds = map[string]string{TokenSourceVault: "vault", TokenSourceAWS: "awssm", TokenSourceGCP: "gcpsm"}

// AWS credential file formats (tokens.*.file_format, source aws).
const (
	TokenFileCredentialProcess = "credential_process"
	TokenFileCredentials       = "credentials"
)

// Token grants (tokens.*.grant).
const (
	// GrantClientCredentials is the client-credentials grant (the default).
	GrantClientCredentials = "client_credentials"
	// GrantRefreshToken exchanges refresh_token, writing a rotated one back.
	GrantRefreshToken = "refresh_token"
)

// Token file formats (tokens.*.file_format).
const (
	TokenFileRaw  = "raw"
	TokenFileJSON = "json"
)

// Config is a parsed and validated keyward.yaml. Parse fills in every
// default and resolves relative paths (files[].path, template_file,
// tokens.*.file, a unix: listen address) against Dir; references are kept
// as written, since a relative file: reference is resolved by the file
// provider against Dir.
type Config struct {
	// Version is the config format version; always 1.
	Version int
	// Path is the config file path as given to Load or Parse.
	Path string
	// Dir is the absolute directory of the config file: the base of
	// relative file: references, template_file and file paths.
	Dir string
	// Providers holds the declared provider instances by name (= scheme).
	// The default instances of the builtin kinds are not listed.
	Providers map[string]Provider
	// Secrets maps each secret name to its reference.
	Secrets map[string]Secret
	// Env maps an environment variable of the child to a secret name; nil
	// when the config has no env: section. EnvVars says what a child gets.
	Env map[string]string
	// KeepEnv lists keyward's own credential variables (VAULT_TOKEN,
	// KEYWARD_*) that are passed on to the child instead of being removed.
	KeepEnv []string
	// EnvFileRefs makes file: values in keyward's environment references
	// (config.FromEnv with EnvOptions.FileRefs), as --env-file-refs does.
	EnvFileRefs bool
	// Files lists the files to render, in config order.
	Files []File
	// Tokens holds the OAuth2 client-credentials tokens to keep fresh, by name.
	Tokens map[string]Token
	// Watch tunes rotation polling; nil when the config has no watch:
	// section, in which case each provider's default interval applies
	// (DESIGN §6) with DefaultWatchJitter.
	Watch *Watch
	// OnChange is the action after a rotation re-rendered something; nil
	// when the config has no on_change: section (the command decides).
	OnChange *OnChange
	// Server is the local token endpoint; nil when not configured.
	Server *Server
	// CI tunes keyward ci; nil when the config has no ci: section.
	CI *CI

	lines  map[string]int  // key path ("files[0].mode") -> line
	broken map[string]bool // key paths already reported by the decoder
}

// Secret is one entry of secrets:.
type Secret struct {
	// Ref is the parsed reference.
	Ref providers.Ref
	// Line is the line of the entry.
	Line int
}

// File is one entry of files:.
type File struct {
	// Path is the file to write, absolute after Parse.
	Path string
	// Format is raw, dotenv, json, yaml or template. When the config
	// leaves it out, Parse infers it from the content key: secret → raw,
	// template or template_file → template, secrets → json for a path
	// ending in .json, yaml for .yaml or .yml, otherwise dotenv.
	Format string
	// Secrets are the secret names written as keys (dotenv, json, yaml).
	Secrets []string
	// Secret is the one secret whose bytes are written (raw).
	Secret string
	// Dialect is the program that reads a dotenv file, one of
	// render.Dialects; "" (the default) means bash.
	Dialect string
	// Template is the inline Go text/template (template).
	Template string
	// TemplateFile is the template's path, absolute after Parse (template).
	TemplateFile string
	// Mode is the file's permission bits, DefaultFileMode unless given.
	// Validate rejects setuid/setgid/sticky bits, any execute bit, and
	// write permission for group or others.
	Mode os.FileMode
	// Owner and Group are the uid and gid to chown to; nil leaves them
	// alone. One that keyward cannot apply (another uid without root or
	// CAP_CHOWN, a group it is not a member of) makes the render fail.
	Owner, Group *int
	// AtomicDir swaps the file together with the other atomic_dir files of
	// its directory through the kubelet's ..data symlink layout.
	AtomicDir bool
	// AllowSymlink allows the target to be a symlink (replaced, not followed).
	AllowSymlink bool
	// OnChange is the action after this file was re-rendered by a
	// rotation, overriding the top-level on_change; nil when not given.
	OnChange *OnChange
	// Line is the line of the entry.
	Line int

	templateLine int // config line of the template's first line
}

// Token is one entry of tokens:, an OAuth2 grant or the credential of a
// provider instance.
type Token struct {
	// Source is TokenSourceOAuth2 (default), TokenSourceVault,
	// TokenSourceAWS or TokenSourceGCP.
	Source string
	// Provider is the provider instance of a source other than OAuth2
	// (after Parse, the default instance of its kind when not given).
	Provider string
	// RoleARN and SessionName (aws): a role to assume with STS.
	RoleARN, SessionName string
	// Duration (aws) is the lifetime asked of STS; 0 for its default.
	Duration time.Duration
	// Profile (aws) names the profile of the credentials file format.
	Profile string
	// TokenURL is the token endpoint; https unless the host is loopback.
	TokenURL string
	// Grant is GrantClientCredentials (default) or GrantRefreshToken.
	Grant string
	// RefreshToken is a reference to the refresh token of GrantRefreshToken.
	RefreshToken providers.Ref
	// ClientID and ClientSecret are references, resolved like secrets.
	ClientID, ClientSecret providers.Ref
	// PrivateKey (private_key_jwt and the TLS methods) and Certificate
	// (the TLS methods) are references to PEM documents.
	PrivateKey, Certificate providers.Ref
	// KeyID and SigningAlg are the kid and alg of a private_key_jwt
	// client assertion; "" when not given.
	KeyID, SigningAlg string
	// Scopes are the requested scopes.
	Scopes []string
	// Audience and Resource are the optional audience and resource
	// (RFC 8707) parameters.
	Audience, Resource string
	// Params are extra token request parameters.
	Params map[string]string
	// AuthStyle is how the client authenticates: AuthBasic (default),
	// AuthPost, AuthPrivateKeyJWT, AuthTLSClient, AuthSelfSignedTLSClient
	// or (refresh_token grant only) AuthNone.
	AuthStyle string
	// RefreshBefore is the latest a token is refreshed before it expires
	// (default DefaultRefreshBefore).
	RefreshBefore time.Duration
	// DefaultLifetime is the lifetime assumed when the response has no
	// expires_in and the token is no JWT with exp; 0 when not given.
	DefaultLifetime time.Duration
	// File is where the token is written, absolute after Parse; "" for
	// none (the token is then served by Server only).
	File string
	// FileFormat is TokenFileRaw (default) or TokenFileJSON; "" without File.
	FileFormat string
	// Verify, when set, checks each token as a JWT before it is served.
	Verify *TokenVerify
	// TLS is the tls: section: the CA bundle (absolute after Parse) and
	// server name of the requests to TokenURL and Verify.JWKSURL.
	TLS tlsclient.Options
	// Line is the line of the entry.
	Line int

	keys map[string]bool // the keys the entry sets
}

// TokenVerify is a token's verify: section: the token must be a JWT
// signed with a key of the key set at JWKSURL, with iss Issuer and aud
// including Audience (each when given), and not expired.
type TokenVerify struct {
	JWKSURL, Issuer, Audience string
}

// Watch is the watch: section.
type Watch struct {
	// Interval is the polling interval for every secret without a native
	// watch (default DefaultWatchInterval).
	Interval time.Duration
	// Jitter is the fraction (0..1) by which each interval is randomly
	// shortened or lengthened (default DefaultWatchJitter).
	Jitter float64
	// Debounce is the quiet time after a change notification (a watched
	// file written) before the secret is fetched and rendered, so that a
	// burst of changes is applied once; 0 means the engine's default.
	Debounce time.Duration
	// Line is the line of the section.
	Line int
}

// OnChange is an on_change: section (top-level, or of one file); exactly
// one action is set.
type OnChange struct {
	// Signal is the signal sent to the child, without the SIG prefix
	// ("HUP"; Parse turns "SIGHUP" into "HUP"). KILL and STOP are refused:
	// use Restart.
	Signal string
	// Restart restarts the child gracefully.
	Restart bool
	// Command is run (not through a shell) after a change.
	Command []string
	// None does nothing beyond re-rendering.
	None bool
	// Timeout bounds the action: for Restart, how long the child has after
	// its stop signal before SIGKILL; for Command, how long the command may
	// run before it is stopped. 0 leaves the command's default.
	Timeout time.Duration
	// Splay is, for Restart, the upper bound of a random delay before the
	// restart, so that replicas do not all restart at once. 0 for none.
	Splay time.Duration
	// Line is the line of the section.
	Line int
}

// Server is the server: section, the local endpoint that serves tokens.
type Server struct {
	// Listen is "HOST:PORT" or "unix:/abs/path" (a relative unix path is
	// resolved against Dir by Parse).
	Listen string
	// AllowRemote allows a non-loopback HOST.
	AllowRemote bool
	// Line is the line of the section.
	Line int
}

// MaxFileSize is the largest config file Load reads.
const MaxFileSize = readfile.DefaultMax

// Load reads and parses the config file at path. Every error is an *Error
// (so the caller can exit with code 78); when the file cannot be read it
// wraps the underlying error (errors.Is(err, fs.ErrNotExist) holds for a
// missing file).
//
// The file is read with readfile.Read, at most MaxFileSize bytes (more is
// an error wrapping readfile.ErrTooLarge, so /dev/zero cannot fill
// memory), and the read ends when ctx does. A pipe is read too, as
// process substitution (-c <(sops -d keyward.yaml)) and /dev/stdin give
// one; a named pipe with no writer reads as empty. Relative paths in a
// config read from a pipe are relative to the working directory, since
// the pipe's own directory (/dev/fd) means nothing to the user.
func Load(ctx context.Context, path string) (*Config, error) {
	data, fi, err := readfile.Read(ctx, path, readfile.Options{Max: MaxFileSize, AllowNonRegular: true})
	if err != nil {
		msg := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error()
		}
		return nil, &Error{Path: path, Problems: []Problem{{Msg: "cannot read config: " + msg}}, err: err}
	}
	dir := filepath.Dir(path)
	if !fi.Mode().IsRegular() {
		dir = "."
	}
	return parse(data, path, dir)
}

// Parse parses a config file's content; path is used for messages and to
// locate Dir (the working directory when path is ""). It decodes strictly
// (unknown keys are errors at every level), applies defaults, then runs
// Validate. The error, if any, is an *Error listing every problem found,
// each with its line; no message carries a value.
func Parse(data []byte, path string) (*Config, error) {
	dir := "."
	if path != "" {
		dir = filepath.Dir(path)
	}
	return parse(data, path, dir)
}

// parse is Parse with the directory relative paths are resolved against.
func parse(data []byte, path, dir string) (*Config, error) {
	d := newDecoder()
	c := &Config{Path: path}
	abs, err := filepath.Abs(dir)
	if err != nil {
		d.add(0, "", "cannot resolve the config directory: %v", err)
	}
	c.Dir = abs

	root, ok := parseYAML(data, d)
	if !ok {
		return nil, d.err(path)
	}
	if !c.decode(d, root) {
		return nil, d.err(path)
	}
	c.lines, c.broken = d.lines, d.broken
	c.setDefaults()
	if err := c.Validate(); err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			d.list = append(d.list, ce.Problems...)
		}
	}
	if err := d.err(path); err != nil {
		return nil, err
	}
	return c, nil
}

// parseYAML returns the root node of the single YAML document in data.
func parseYAML(data []byte, d *decoder) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.add(1, "", "empty config (version: 1 is required)")
		} else {
			line, msg := splitYAMLLine(err.Error())
			d.add(line, "", "invalid YAML: %s", msg)
		}
		return nil, false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		d.add(extra.Line, "", "more than one YAML document (a config is a single document)")
		return nil, false
	} else if !errors.Is(err, io.EOF) {
		line, msg := splitYAMLLine(err.Error())
		d.add(line, "", "invalid YAML: %s", msg)
		return nil, false
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		d.add(1, "", "empty config (version: 1 is required)")
		return nil, false
	}
	return doc.Content[0], true
}

var topKeys = []string{"version", "providers", "secrets", "env", "keep_env", "env_file_refs", "files", "tokens", "watch", "on_change", "server", "ci"}

// decode fills c from the root node; it returns false when the document
// is not a mapping at all.
func (c *Config) decode(d *decoder, root *yaml.Node) bool {
	top, ok := d.object(root, "", topKeys...)
	if !ok {
		return false
	}
	if n, ok := top["version"]; !ok {
		d.broken["version"] = true
		d.add(deref(root).Line, "", "version: 1 is required")
	} else if v, ok := d.integer(n, "version"); ok {
		if v != 1 {
			d.fail(n, "version", "unsupported version %d (this keyward reads version 1)", v)
		}
		c.Version = v
	}
	section := func(key string) *yaml.Node {
		if n := top[key]; n != nil && !isNull(n) {
			return n
		}
		return nil
	}
	if n := section("providers"); n != nil {
		c.decodeProviders(d, n)
	}
	if n := section("secrets"); n != nil {
		c.decodeSecrets(d, n)
	}
	if n := section("env"); n != nil {
		c.Env, _ = d.strMap(n, "env")
	}
	if n := section("keep_env"); n != nil {
		c.KeepEnv, _ = d.strList(n, "keep_env")
	}
	if n := section("env_file_refs"); n != nil {
		c.EnvFileRefs, _ = d.boolean(n, "env_file_refs")
	}
	if n := section("files"); n != nil {
		c.decodeFiles(d, n)
	}
	if n := section("tokens"); n != nil {
		c.decodeTokens(d, n)
	}
	if n := section("watch"); n != nil {
		c.decodeWatch(d, n)
	}
	if n := section("on_change"); n != nil {
		c.OnChange = decodeOnChange(d, n, "on_change")
	}
	if n := section("server"); n != nil {
		c.decodeServer(d, n)
	}
	if n := section("ci"); n != nil {
		c.decodeCI(d, n)
	}
	return true
}

func (c *Config) decodeProviders(d *decoder, n *yaml.Node) {
	ps, ok := d.mapping(n, "providers")
	if !ok {
		return
	}
	c.Providers = make(map[string]Provider, len(ps))
	for _, p := range ps {
		path := join("providers", p.key)
		d.lines[path] = p.keyNode.Line
		prov := Provider{Name: p.key, Line: p.keyNode.Line, file: c.Path}
		opts := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: p.keyNode.Line, Column: p.keyNode.Column}
		if !isNull(p.val) {
			entries, _ := d.mapping(p.val, path)
			opts.Line = deref(p.val).Line
			for _, e := range entries {
				if e.key == "kind" {
					d.lines[join(path, "kind")] = e.keyNode.Line
					prov.Kind, _ = d.str(e.val, join(path, "kind"))
					continue
				}
				opts.Content = append(opts.Content, e.keyNode, e.val)
			}
		}
		prov.opts = opts
		c.Providers[p.key] = prov
	}
}

// parseRef parses a reference from the config. A text that does not look
// like a reference at all (no scheme) is not echoed: it may be a value
// pasted where a reference belongs.
func parseRef(s string) (providers.Ref, error) {
	r, err := providers.Parse(s)
	if err != nil {
		var pe *providers.ParseError
		if errors.As(err, &pe) && providers.SchemeOf(s) == "" {
			pe.Hide = true
		}
		return providers.Ref{}, err
	}
	return r, nil
}

func (c *Config) decodeSecrets(d *decoder, n *yaml.Node) {
	ps, ok := d.mapping(n, "secrets")
	if !ok {
		return
	}
	c.Secrets = make(map[string]Secret, len(ps))
	for _, p := range ps {
		path := join("secrets", p.key)
		d.lines[path] = p.keyNode.Line
		if isNull(p.val) {
			d.fail(p.keyNode, path, "missing reference")
			continue
		}
		s, ok := d.str(p.val, path)
		if !ok {
			continue
		}
		ref, err := parseRef(s)
		if err != nil {
			d.fail(deref(p.val), path, "%v", err)
			continue
		}
		c.Secrets[p.key] = Secret{Ref: ref, Line: p.keyNode.Line}
	}
}

var fileKeys = []string{"path", "format", "dialect", "secrets", "secret", "template", "template_file", "mode", "owner", "group", "atomic_dir", "allow_symlink", "on_change"}

var modeRe = regexp.MustCompile(`^(0o)?[0-7]{3,4}$`)

func (c *Config) decodeFiles(d *decoder, n *yaml.Node) {
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		d.fail(n, "files", "must be a list of file entries")
		return
	}
	for i, item := range n.Content {
		path := index("files", i)
		item = deref(item)
		d.lines[path] = item.Line
		f := File{Mode: DefaultFileMode, Line: item.Line}
		keys, ok := d.object(item, path, fileKeys...)
		if ok {
			for _, key := range fileKeys {
				v, present := keys[key]
				if !present {
					continue
				}
				kp := join(path, key)
				switch key {
				case "path":
					f.Path = d.filePath(v, kp)
				case "format":
					f.Format, _ = d.str(v, kp)
				case "dialect":
					f.Dialect, _ = d.str(v, kp)
				case "secrets":
					f.Secrets, _ = d.strList(v, kp)
				case "secret":
					f.Secret, _ = d.str(v, kp)
				case "template":
					f.Template, _ = d.str(v, kp)
					if dv := deref(v); dv.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
						f.templateLine = dv.Line + 1
					} else {
						f.templateLine = dv.Line
					}
				case "template_file":
					f.TemplateFile, _ = d.str(v, kp)
				case "mode":
					f.Mode = d.mode(v, kp)
				case "owner":
					f.Owner = d.id(v, kp)
				case "group":
					f.Group = d.id(v, kp)
				case "atomic_dir":
					f.AtomicDir, _ = d.boolean(v, kp)
				case "allow_symlink":
					f.AllowSymlink, _ = d.boolean(v, kp)
				case "on_change":
					if !isNull(v) {
						f.OnChange = decodeOnChange(d, v, kp)
					}
				}
			}
		}
		c.Files = append(c.Files, f)
	}
}

// filePath decodes the path of a file to write, which must not name a
// directory.
func (d *decoder) filePath(n *yaml.Node, path string) string {
	s, ok := d.str(n, path)
	if !ok {
		return ""
	}
	if s == "" {
		d.fail(n, path, "must not be empty")
		return ""
	}
	if base := filepath.Base(s); strings.HasSuffix(s, "/") || base == "." || base == ".." {
		d.fail(n, path, "must name a file, not a directory")
		return ""
	}
	return s
}

func (d *decoder) mode(n *yaml.Node, path string) os.FileMode {
	s, ok := scalar(n, "!!str")
	if !ok || !modeRe.MatchString(s.Value) {
		d.fail(n, path, "must be a quoted octal string such as \"0400\" or \"0640\"")
		return DefaultFileMode
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(s.Value, "0o"), 8, 32)
	if err != nil {
		d.fail(n, path, "must be a quoted octal string such as \"0400\" or \"0640\"")
		return DefaultFileMode
	}
	m := os.FileMode(v & 0o777)
	if v&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if v&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if v&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

func (d *decoder) id(n *yaml.Node, path string) *int {
	v, ok := d.integer(n, path)
	if !ok {
		return nil
	}
	return &v
}

var tokenKeys = []string{"verify", "tls", "source", "provider", "role_arn", "session_name", "duration", "profile", "token_url", "grant", "refresh_token", "client_id", "client_secret", "private_key", "certificate", "key_id", "signing_alg", "scopes", "audience", "resource", "params", "auth", "refresh_before", "default_lifetime", "file", "file_format"}

func (c *Config) decodeTokens(d *decoder, n *yaml.Node) {
	ps, ok := d.mapping(n, "tokens")
	if !ok {
		return
	}
	c.Tokens = make(map[string]Token, len(ps))
	for _, p := range ps {
		path := join("tokens", p.key)
		d.lines[path] = p.keyNode.Line
		t := Token{Source: TokenSourceOAuth2, Grant: GrantClientCredentials, AuthStyle: AuthBasic, RefreshBefore: DefaultRefreshBefore, Line: p.keyNode.Line, keys: map[string]bool{}}
		var keys map[string]*yaml.Node
		if !isNull(p.val) {
			keys, _ = d.object(p.val, path, tokenKeys...)
		}
		for _, key := range tokenKeys {
			v, present := keys[key]
			if !present {
				continue
			}
			kp := join(path, key)
			t.keys[key] = true
			switch key {
			case "verify":
				vk, ok := d.object(v, kp, "jwks_url", "issuer", "audience")
				if !ok {
					continue
				}
				t.Verify = &TokenVerify{}
				for k, n := range vk {
					s, _ := d.str(n, join(kp, k))
					switch k {
					case "jwks_url":
						t.Verify.JWKSURL = s
					case "issuer":
						t.Verify.Issuer = s
					default:
						t.Verify.Audience = s
					}
				}
			case "tls":
				tk, _ := d.object(v, kp, "ca_cert", "server_name")
				if n, ok := tk["ca_cert"]; ok {
					t.TLS.CACert = d.filePath(n, join(kp, "ca_cert"))
				}
				if n, ok := tk["server_name"]; ok {
					if t.TLS.ServerName, _ = d.str(n, join(kp, "server_name")); t.TLS.ServerName == "" {
						d.fail(n, join(kp, "server_name"), "must not be empty")
					}
				}
			case "source":
				t.Source, _ = d.str(v, kp)
			case "provider":
				t.Provider, _ = d.str(v, kp)
			case "role_arn":
				t.RoleARN, _ = d.str(v, kp)
			case "session_name":
				t.SessionName, _ = d.str(v, kp)
			case "duration":
				t.Duration, _ = d.duration(v, kp)
			case "profile":
				t.Profile, _ = d.str(v, kp)
			case "token_url":
				t.TokenURL, _ = d.str(v, kp)
			case "grant":
				t.Grant, _ = d.str(v, kp)
			case "client_id", "client_secret", "private_key", "certificate", "refresh_token":
				s, ok := d.str(v, kp)
				if !ok {
					continue
				}
				ref, err := parseRef(s)
				if err != nil {
					d.fail(v, kp, "%v", err)
					continue
				}
				switch key {
				case "client_id":
					t.ClientID = ref
				case "client_secret":
					t.ClientSecret = ref
				case "private_key":
					t.PrivateKey = ref
				case "refresh_token":
					t.RefreshToken = ref
				default:
					t.Certificate = ref
				}
			case "key_id":
				t.KeyID, _ = d.str(v, kp)
			case "signing_alg":
				t.SigningAlg, _ = d.str(v, kp)
			case "scopes":
				t.Scopes, _ = d.strList(v, kp)
			case "audience":
				t.Audience, _ = d.str(v, kp)
			case "resource":
				t.Resource, _ = d.str(v, kp)
			case "params":
				t.Params, _ = d.strMap(v, kp)
			case "auth":
				t.AuthStyle, _ = d.str(v, kp)
			case "refresh_before":
				t.RefreshBefore, _ = d.duration(v, kp)
			case "default_lifetime":
				t.DefaultLifetime, _ = d.duration(v, kp)
			case "file":
				t.File = d.filePath(v, kp)
			case "file_format":
				t.FileFormat, _ = d.str(v, kp)
			}
		}
		c.Tokens[p.key] = t
	}
}

func (c *Config) decodeWatch(d *decoder, n *yaml.Node) {
	w := &Watch{Interval: DefaultWatchInterval, Jitter: DefaultWatchJitter, Line: deref(n).Line}
	keys, _ := d.object(n, "watch", "interval", "jitter", "debounce")
	if v, ok := keys["interval"]; ok {
		w.Interval, _ = d.duration(v, "watch.interval")
	}
	if v, ok := keys["jitter"]; ok {
		w.Jitter, _ = d.number(v, "watch.jitter")
	}
	if v, ok := keys["debounce"]; ok {
		w.Debounce, _ = d.duration(v, "watch.debounce")
	}
	c.Watch = w
}

// decodeOnChange decodes an on_change: section found at key path path.
func decodeOnChange(d *decoder, n *yaml.Node, path string) *OnChange {
	n = deref(n)
	oc := &OnChange{Line: n.Line}
	if n.Kind == yaml.ScalarNode {
		if n.ShortTag() == "!!str" && n.Value == "none" {
			oc.None = true
			return oc
		}
		d.fail(n, path, "must be none or one of {signal: NAME}, {restart: true}, {command: [ARGV…]}, {none: true}")
		return oc
	}
	keys, _ := d.object(n, path, "signal", "restart", "command", "none", "timeout", "splay")
	if v, ok := keys["signal"]; ok {
		oc.Signal, _ = d.str(v, join(path, "signal"))
	}
	if v, ok := keys["restart"]; ok {
		oc.Restart, _ = d.boolean(v, join(path, "restart"))
	}
	if v, ok := keys["command"]; ok {
		oc.Command, _ = d.strList(v, join(path, "command"))
	}
	if v, ok := keys["none"]; ok {
		oc.None, _ = d.boolean(v, join(path, "none"))
	}
	if v, ok := keys["timeout"]; ok {
		oc.Timeout, _ = d.duration(v, join(path, "timeout"))
	}
	if v, ok := keys["splay"]; ok {
		oc.Splay, _ = d.duration(v, join(path, "splay"))
	}
	return oc
}

func (c *Config) decodeServer(d *decoder, n *yaml.Node) {
	s := &Server{Line: deref(n).Line}
	keys, _ := d.object(n, "server", "listen", "allow_remote")
	if v, ok := keys["listen"]; ok {
		s.Listen, _ = d.str(v, "server.listen")
	}
	if v, ok := keys["allow_remote"]; ok {
		s.AllowRemote, _ = d.boolean(v, "server.allow_remote")
	}
	c.Server = s
}

// setDefaults infers file formats, normalises the signal name and
// resolves relative paths against Dir.
func (c *Config) setDefaults() {
	for i := range c.Files {
		f := &c.Files[i]
		if f.Format == "" {
			f.Format = inferFormat(f)
		}
		f.Path = c.resolve(f.Path)
		f.TemplateFile = c.resolve(f.TemplateFile)
	}
	for name, t := range c.Tokens {
		t.File = c.resolve(t.File)
		t.TLS.CACert = c.resolve(t.TLS.CACert)
		if t.File != "" && t.FileFormat == "" {
			t.FileFormat = TokenFileRaw
		}
		if kind, ok := TokenSourceKinds[t.Source]; ok && t.Provider == "" {
			t.Provider = kind
		}
		c.Tokens[name] = t
	}
	if c.OnChange != nil {
		if s, ok := normalizeSignal(c.OnChange.Signal); ok {
			c.OnChange.Signal = s
		}
	}
	for i := range c.Files {
		if oc := c.Files[i].OnChange; oc != nil {
			if s, ok := normalizeSignal(oc.Signal); ok {
				oc.Signal = s
			}
		}
	}
	if c.Server != nil {
		if p, ok := strings.CutPrefix(c.Server.Listen, "unix:"); ok && p != "" {
			c.Server.Listen = "unix:" + c.resolve(p)
		}
	}
}

func inferFormat(f *File) string {
	switch {
	case f.Secret != "":
		return FormatRaw
	case f.Template != "" || f.TemplateFile != "":
		return FormatTemplate
	case len(f.Secrets) > 0:
		switch strings.ToLower(filepath.Ext(f.Path)) {
		case ".json":
			return FormatJSON
		case ".yaml", ".yml":
			return FormatYAML
		}
		return FormatDotenv
	}
	return ""
}

// resolve makes a relative path absolute against Dir; "" stays "".
func (c *Config) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}
