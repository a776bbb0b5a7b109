package vault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/keyward/keyward/internal/backoff"
	"github.com/keyward/keyward/internal/tlsclient"
	"github.com/keyward/keyward/providers"
)

// Options are a vault instance's settings: the keys beside kind under
// providers: in the config. Every field left empty falls back to Vault's
// standard environment variable (named in its comment), read through
// providers.Instance.Getenv, so the default instance needs no config.
type Options struct {
	// Address is Vault's URL (VAULT_ADDR; default https://127.0.0.1:8200).
	Address string `yaml:"address"`
	// Namespace is the Vault Enterprise namespace (VAULT_NAMESPACE).
	Namespace string `yaml:"namespace"`
	// TLS configures the connection to Vault.
	TLS TLSOptions `yaml:"tls"`
	// Auth says how keyward obtains its token (default: VAULT_TOKEN).
	Auth AuthOptions `yaml:"auth"`
	// Timeout bounds each HTTP request (VAULT_CLIENT_TIMEOUT; default 30s).
	Timeout time.Duration `yaml:"timeout"`
	// MaxRetries is how often a transient failure (connection error, 429,
	// 5xx) is retried, with capped exponential backoff, full jitter and
	// Vault's Retry-After (VAULT_MAX_RETRIES; default 2).
	MaxRetries *int `yaml:"max_retries"`
}

// TLSOptions configure TLS to Vault. Relative paths are relative to the
// config file's directory.
type TLSOptions struct {
	// CACert is a PEM file of CA certificates to trust (VAULT_CACERT).
	CACert string `yaml:"ca_cert"`
	// CAPath is a directory of PEM CA certificates (VAULT_CAPATH).
	CAPath string `yaml:"ca_path"`
	// ClientCert and ClientKey are the client certificate for mutual TLS
	// (VAULT_CLIENT_CERT, VAULT_CLIENT_KEY).
	ClientCert string `yaml:"client_cert"`
	ClientKey  string `yaml:"client_key"`
	// ServerName is the name the server certificate must carry
	// (VAULT_TLS_SERVER_NAME).
	ServerName string `yaml:"server_name"`
	// SkipVerify disables certificate verification (VAULT_SKIP_VERIFY).
	// Never use it outside a lab: keyward logs a warning when it is set.
	SkipVerify *bool `yaml:"skip_verify"`
}

// Auth methods accepted by AuthOptions.Method.
const (
	MethodToken      = "token"
	MethodTokenFile  = "token_file"
	MethodAppRole    = "approle"
	MethodKubernetes = "kubernetes"
	MethodJWT        = "jwt"
)

// DefaultKubernetesTokenPath is the service-account token the kubernetes
// method presents when jwt_file is not set: the projected token of the pod.
const DefaultKubernetesTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// AuthOptions say how keyward logs in to Vault. Files are read again at
// every login (a projected service-account token or a secret_id file may
// be rotated); relative paths are relative to the config file's directory.
type AuthOptions struct {
	// Method is token (VAULT_TOKEN, else ~/.vault-token), token_file,
	// approle, kubernetes or jwt. Default: token, or token_file when
	// TokenFile is set.
	Method string `yaml:"method"`
	// Mount is the auth method's mount path (default: the method's name,
	// as in auth/approle).
	Mount string `yaml:"mount"`
	// TokenFile is the file holding the token (token_file); it is read
	// again whenever it changes.
	TokenFile string `yaml:"token_file"`
	// Role is the role to log in as (kubernetes: required; jwt: default
	// the mount's default_role).
	Role string `yaml:"role"`
	// RoleID is the AppRole role_id: the ID itself, or a reference to it
	// (file:…, k8s://…, awssm://…, gcpsm://…).
	RoleID string `yaml:"role_id"`
	// RoleIDFile is a file holding the AppRole role_id.
	RoleIDFile string `yaml:"role_id_file"`
	// SecretID is a reference to the AppRole secret_id (never the
	// secret_id itself: a config file is not a place for it).
	SecretID string `yaml:"secret_id"`
	// SecretIDFile is a file holding the AppRole secret_id.
	SecretIDFile string `yaml:"secret_id_file"`
	// JWTFile is the JWT presented by the kubernetes method (default
	// DefaultKubernetesTokenPath) and the jwt method (required).
	JWTFile string `yaml:"jwt_file"`
	// Audience is, under keyward csi-provider, the audience of the pod's
	// ServiceAccount token presented by the kubernetes and jwt methods
	// instead of JWTFile (default "", the API server's own); it must be
	// one the CSIDriver object's tokenRequests lists. Elsewhere it is
	// not used.
	Audience string `yaml:"audience"`
}

// Standard Vault environment variables.
const (
	envAddr          = "VAULT_ADDR"
	envToken         = "VAULT_TOKEN"
	envNamespace     = "VAULT_NAMESPACE"
	envCACert        = "VAULT_CACERT"
	envCAPath        = "VAULT_CAPATH"
	envClientCert    = "VAULT_CLIENT_CERT"
	envClientKey     = "VAULT_CLIENT_KEY"
	envServerName    = "VAULT_TLS_SERVER_NAME"
	envSkipVerify    = "VAULT_SKIP_VERIFY"
	envClientTimeout = "VAULT_CLIENT_TIMEOUT"
	envMaxRetries    = "VAULT_MAX_RETRIES"
)

// Defaults of the client.
const (
	defaultAddress    = "https://127.0.0.1:8200"
	defaultTimeout    = 30 * time.Second
	defaultMaxRetries = 2
	minRetryWait      = 250 * time.Millisecond
	maxRetryWait      = 5 * time.Second
)

// settings are Options with the environment and defaults applied.
type settings struct {
	address    string
	namespace  string
	tls        api.TLSConfig
	timeout    time.Duration
	maxRetries int
	auth       AuthOptions
	// skipVerifyFrom names the setting that disabled TLS verification,
	// for the warning.
	skipVerifyFrom string
}

// resolveSettings applies the environment and defaults to o. Relative
// paths are joined to baseDir. It does no I/O.
func resolveSettings(o Options, getenv func(string) string, baseDir string) (settings, error) {
	s := settings{auth: o.Auth}
	pick := func(v, env string) string {
		if v != "" {
			return v
		}
		return strings.TrimSpace(getenv(env))
	}
	s.address = pick(o.Address, envAddr)
	if s.address == "" {
		s.address = defaultAddress
	}
	s.namespace = pick(o.Namespace, envNamespace)
	s.tls.CACert = abs(baseDir, pick(o.TLS.CACert, envCACert))
	s.tls.CAPath = abs(baseDir, pick(o.TLS.CAPath, envCAPath))
	s.tls.ClientCert = abs(baseDir, pick(o.TLS.ClientCert, envClientCert))
	s.tls.ClientKey = abs(baseDir, pick(o.TLS.ClientKey, envClientKey))
	s.tls.TLSServerName = pick(o.TLS.ServerName, envServerName)
	if (s.tls.ClientCert == "") != (s.tls.ClientKey == "") {
		return s, errors.New("tls: client_cert and client_key (VAULT_CLIENT_CERT, VAULT_CLIENT_KEY) must be given together")
	}
	switch {
	case o.TLS.SkipVerify != nil:
		s.tls.Insecure = *o.TLS.SkipVerify
		s.skipVerifyFrom = "tls.skip_verify"
	case getenv(envSkipVerify) != "":
		v, err := strconv.ParseBool(strings.TrimSpace(getenv(envSkipVerify)))
		if err != nil {
			return s, fmt.Errorf("%s is not a boolean", envSkipVerify)
		}
		s.tls.Insecure = v
		s.skipVerifyFrom = envSkipVerify
	}

	s.timeout = o.Timeout
	if s.timeout == 0 {
		if v := strings.TrimSpace(getenv(envClientTimeout)); v != "" {
			d, err := parseSeconds(v)
			if err != nil {
				return s, fmt.Errorf("%s: %w", envClientTimeout, err)
			}
			s.timeout = d
		}
	}
	if s.timeout == 0 {
		s.timeout = defaultTimeout
	}
	if s.timeout < 0 {
		return s, errors.New("timeout must be positive")
	}
	s.maxRetries = defaultMaxRetries
	switch {
	case o.MaxRetries != nil:
		s.maxRetries = *o.MaxRetries
	case getenv(envMaxRetries) != "":
		n, err := strconv.Atoi(strings.TrimSpace(getenv(envMaxRetries)))
		if err != nil {
			return s, fmt.Errorf("%s is not a number", envMaxRetries)
		}
		s.maxRetries = n
	}
	if s.maxRetries < 0 {
		return s, errors.New("max_retries must not be negative")
	}

	a := &s.auth
	if a.Method == "" {
		a.Method = MethodToken
		if a.TokenFile != "" {
			a.Method = MethodTokenFile
		}
	}
	if a.Mount == "" {
		a.Mount = a.Method
	}
	a.Mount = strings.Trim(a.Mount, "/")
	a.TokenFile = abs(baseDir, a.TokenFile)
	a.RoleIDFile = abs(baseDir, a.RoleIDFile)
	a.SecretIDFile = abs(baseDir, a.SecretIDFile)
	a.JWTFile = abs(baseDir, a.JWTFile)
	if err := checkAuth(*a); err != nil {
		return s, fmt.Errorf("auth: %w", err)
	}
	return s, nil
}

// checkAuth validates the combination of auth options for the method.
func checkAuth(a AuthOptions) error {
	allowed := map[string][]string{
		MethodToken:      {},
		MethodTokenFile:  {"token_file"},
		MethodAppRole:    {"mount", "role_id", "role_id_file", "secret_id", "secret_id_file"},
		MethodKubernetes: {"mount", "role", "jwt_file"},
		MethodJWT:        {"mount", "role", "jwt_file"},
	}
	keys, ok := allowed[a.Method]
	if !ok {
		return fmt.Errorf("unknown method %q (known: token, token_file, approle, kubernetes, jwt)", a.Method)
	}
	given := map[string]bool{
		"mount":          a.Mount != a.Method,
		"token_file":     a.TokenFile != "",
		"role":           a.Role != "",
		"role_id":        a.RoleID != "",
		"role_id_file":   a.RoleIDFile != "",
		"secret_id":      a.SecretID != "",
		"secret_id_file": a.SecretIDFile != "",
		"jwt_file":       a.JWTFile != "",
	}
	for _, k := range []string{"mount", "token_file", "role", "role_id", "role_id_file", "secret_id", "secret_id_file", "jwt_file"} {
		if given[k] && !contains(keys, k) {
			return fmt.Errorf("%s does not apply to method %s", k, a.Method)
		}
	}
	switch a.Method {
	case MethodTokenFile:
		if a.TokenFile == "" {
			return errors.New("method token_file needs token_file")
		}
	case MethodAppRole:
		if (a.RoleID == "") == (a.RoleIDFile == "") {
			return errors.New("method approle needs exactly one of role_id and role_id_file")
		}
		if a.SecretID != "" && a.SecretIDFile != "" {
			return errors.New("method approle takes secret_id or secret_id_file, not both")
		}
		if a.SecretID != "" && !looksLikeRef(a.SecretID) {
			return errors.New("secret_id must be a reference (file:…, k8s://…); write the secret_id itself into secret_id_file")
		}
	case MethodKubernetes:
		if a.Role == "" {
			return errors.New("method kubernetes needs role")
		}
	case MethodJWT:
		if a.JWTFile == "" {
			return errors.New("method jwt needs jwt_file")
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// abs joins a relative path to baseDir; "" stays "".
func abs(baseDir, p string) string {
	if p == "" || filepath.IsAbs(p) || baseDir == "" {
		return p
	}
	return filepath.Join(baseDir, p)
}

// parseSeconds parses VAULT_CLIENT_TIMEOUT: a number of seconds or a Go duration.
func parseSeconds(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errors.New("not a number of seconds or a duration")
	}
	return d, nil
}

// newClient builds the Vault API client for s. It does no network I/O (it
// reads the CA and client certificate files).
func newClient(s settings) (*apiClient, error) {
	transport := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
	cfg := &api.Config{
		Address:      s.address,
		HttpClient:   &http.Client{Transport: transport},
		Timeout:      s.timeout,
		MaxRetries:   s.maxRetries,
		MinRetryWait: minRetryWait,
		MaxRetryWait: maxRetryWait,
		Backoff:      retryDelay,
		CheckRetry:   observedRetryPolicy(s.maxRetries),
	}
	// The CA file is read the one way keyward reads every CA bundle
	// (internal/tlsclient: a regular file, errors naming it, never its
	// content); it wins over ca_path, as in Vault's own client.
	t := s.tls
	var pool *x509.CertPool
	if t.CACert != "" {
		var err error
		if pool, err = tlsclient.LoadPool(context.Background(), t.CACert); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		t.CACert, t.CAPath = "", ""
	}
	if err := cfg.ConfigureTLS(&t); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	if pool != nil {
		transport.TLSClientConfig.RootCAs = pool
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	// api.NewClient also reads VAULT_TOKEN and VAULT_NAMESPACE from the
	// process environment; keyward sets the token per request and takes
	// the namespace from its own settings.
	c.ClearToken()
	if s.namespace != "" {
		c.SetNamespace(s.namespace)
	} else {
		c.ClearNamespace()
	}
	return &apiClient{base: c, transport: transport, byToken: map[string]*api.Client{}}, nil
}

// retryDelay is the wait before retry attemptNum (0-based) of a transient
// failure, a thin adapter over internal/backoff: capped exponential with
// full jitter between minWait and maxWait, and at least Vault's
// Retry-After on 429/503 when it sends one (capped at maxWait).
func retryDelay(minWait, maxWait time.Duration, attemptNum int, resp *http.Response) time.Duration {
	var ra time.Duration
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		ra, _ = backoff.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	b := backoff.Backoff{Base: minWait, Max: maxWait, MaxRetryAfter: maxWait}
	return b.Delay(attemptNum, ra)
}

// observedRetryPolicy is the client's retry policy (Vault's own: connection
// errors, 429, 5xx but 501) that also records each failure that will be
// retried in the Attempts of the request's context (see call), so that it
// is logged, counted and quoted if the call runs out of time. A client
// that makes maxRetries retries calls it once more, after the last
// attempt, which is not recorded: no retry follows it.
func observedRetryPolicy(maxRetries int) func(ctx context.Context, resp *http.Response, err error) (bool, error) {
	return func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		retry, perr := api.DefaultRetryPolicy(ctx, resp, err)
		if att := attemptsOf(ctx); retry && att != nil && att.Count() < maxRetries {
			att.Failed(retryCause(resp, err), -1)
		}
		return retry, perr
	}
}

// retryCause describes a failed attempt: the transport error (connection
// refused, a TLS handshake), or the HTTP status (never the body, which
// the final error reports, scrubbed).
func retryCause(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	if resp != nil {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return errors.New("no answer")
}

type attemptsKey struct{}

// withAttempts returns ctx carrying att for the retry policy.
func withAttempts(ctx context.Context, att *providers.Attempts) context.Context {
	if att == nil {
		return ctx
	}
	return context.WithValue(ctx, attemptsKey{}, att)
}

func attemptsOf(ctx context.Context) *providers.Attempts {
	att, _ := ctx.Value(attemptsKey{}).(*providers.Attempts)
	return att
}

// warnInsecure logs the loud warning for disabled TLS verification.
func warnInsecure(log *slog.Logger, instance string, s settings) {
	if s.tls.Insecure {
		log.Warn("TLS certificate verification of Vault is DISABLED: anyone on the network path can read or forge secrets; never use this outside a lab",
			"provider", instance, "setting", s.skipVerifyFrom, "address", s.address)
	}
}
