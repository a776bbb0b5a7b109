// Package aws implements the "awssm" provider kind: secrets read from AWS
// Secrets Manager with aws-sdk-go-v2 and the SDK's default credential chain
// (environment, shared config and profiles, IRSA web identity, ECS and EKS
// pod identity, IMDS), optionally assuming a role.
//
// A reference names the secret by name or ARN, awssm://prod/stripe#api_key
// or awssm://arn:aws:secretsmanager:…, with ?version-stage= or
// ?version-id=; the ECS form arn:aws:secretsmanager:REGION:ACCT:secret:NAME
// [:json-key[:version-stage[:version-id]]] parses into the same reference.
// Several secrets wanted at once are fetched with BatchGetSecretValue.
//
// Importing the package registers the kind with providers.Register.
package aws

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keyward/keyward/internal/tlsclient"
	"github.com/keyward/keyward/providers"
)

// KindName is the name of the provider kind and of its default instance.
const KindName = "awssm"

// Reference parameters (?version-stage=AWSPREVIOUS, ?version-id=…).
const (
	ParamVersionStage = "version-stage"
	ParamVersionID    = "version-id"
)

// StageCurrent is the staging label of a secret's current version, read
// when a reference names no version.
const StageCurrent = "AWSCURRENT"

// Defaults for Options fields left zero.
const (
	DefaultMaxAttempts = 5
	DefaultConcurrency = 8
	// AttemptTimeout bounds one HTTP attempt, so that a hung connection
	// is retried rather than eating the whole call's deadline.
	AttemptTimeout = 10 * time.Second
	// BatchSize is the most secret ids one BatchGetSecretValue call takes.
	BatchSize = 20
)

func init() {
	providers.Register(providers.Kind{
		Name:     KindName,
		Params:   []string{ParamVersionStage, ParamVersionID},
		CheckRef: CheckRef,
		New:      newInstance,
	})
}

var (
	_ providers.Provider      = (*Provider)(nil)
	_ providers.BatchFetcher  = (*Provider)(nil)
	_ providers.VersionProber = (*Provider)(nil)
	_ providers.Pinner        = (*Provider)(nil)
)

// Pinned implements providers.Pinner: a reference with ?version-id=
// names one version, whose value never changes (a staging label such as
// AWSCURRENT moves, so ?version-stage= alone is not pinned).
func (p *Provider) Pinned(ref providers.Ref) bool {
	return ref.Params[ParamVersionID] != ""
}

// Options configures a Provider. The fields with yaml tags are the
// instance's options in a keyward config file; the others are for callers
// building a Provider in code. The zero Options use the SDK's default chain
// for region and credentials.
type Options struct {
	// Region is the AWS region (default: AWS_REGION, AWS_DEFAULT_REGION or
	// the profile's region). A reference by ARN is always sent to the
	// ARN's region.
	Region string `yaml:"region"`
	// Profile selects a shared config/credentials profile (default:
	// AWS_PROFILE, else "default").
	Profile string `yaml:"profile"`
	// RoleARN, when set, is assumed with STS on top of the default
	// credentials (arn:aws:iam::ACCOUNT:role/NAME).
	RoleARN string `yaml:"role_arn"`
	// Endpoint overrides the Secrets Manager endpoint (emulators, VPC
	// endpoints). Without it, AWS_ENDPOINT_URL_SECRETS_MANAGER and
	// AWS_ENDPOINT_URL are honoured as the SDK does.
	Endpoint string `yaml:"endpoint"`
	// STSEndpoint overrides the STS endpoint that roles are assumed at
	// (emulators, VPC endpoints). Without it, AWS_ENDPOINT_URL_STS and
	// AWS_ENDPOINT_URL are honoured as the SDK does, except when acting
	// as a pod (keyward csi-provider), where the regional endpoint is
	// used.
	STSEndpoint string `yaml:"sts_endpoint"`
	// Audience is the audience of the pod's ServiceAccount token that is
	// exchanged for the role's credentials when the provider acts as a
	// pod (default DefaultWebIdentityAudience, as EKS's IRSA).
	Audience string `yaml:"audience"`
	// TLS sets the CA bundle the connections to Secrets Manager and STS
	// trust instead of the system's roots (AWS_CA_BUNDLE and a profile's
	// ca_bundle, which the default chain honours, are added to it), and
	// the name their certificates must carry. Unlike AWS_CA_BUNDLE it
	// also applies when acting as a pod. Relative paths are relative to
	// the config file's directory.
	TLS tlsclient.Options `yaml:"tls"`

	// MaxAttempts bounds the attempts of one API call, the first included
	// (default: AWS_MAX_ATTEMPTS or the profile's max_attempts, else 5).
	MaxAttempts int `yaml:"-"`
	// Concurrency bounds the API calls FetchBatch makes at once (default 8).
	Concurrency int `yaml:"-"`
	// ConfigOptions are applied after the above to config.LoadDefaultConfig
	// (for example config.WithCredentialsProvider).
	ConfigOptions []func(*config.LoadOptions) error `yaml:"-"`
	// Logger receives the provider's log lines (default: discarded).
	Logger *slog.Logger `yaml:"-"`
}

// api is the part of the Secrets Manager client the provider uses; unit
// tests fake it.
type api interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	BatchGetSecretValue(ctx context.Context, in *secretsmanager.BatchGetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error)
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
}

var _ api = (*secretsmanager.Client)(nil)

// Provider reads secrets from AWS Secrets Manager. Its client is built on
// the first call that needs it, so a Provider that is never used loads no
// credentials and touches no network. It is safe for concurrent use.
type Provider struct {
	opts    Options
	tls     *tls.Config // of opts.TLS; nil for the SDK's default
	log     *slog.Logger
	delays  *delays
	retries *providers.Retries

	mu     sync.Mutex
	client api
	region string           // the client's region, "" when none is configured
	cfg    awssdk.Config    // the loaded AWS config, once client is set
	sent   *sentCredentials // records the credentials the client signs with, once client is set

	// batchDenied is set once BatchGetSecretValue was refused by IAM:
	// from then on FetchBatch uses GetSecretValue only.
	batchDenied atomic.Bool
	// describeDenied is set once DescribeSecret was refused: from then
	// on ProbeVersion reads the secret instead.
	describeDenied atomic.Bool

	// workload, when set, is the pod the provider acts as: its
	// credentials are the pod's role's, assumed with the pod's
	// ServiceAccount token (workload.go), never keyward's own.
	workload *providers.Workload
}

// New returns a Provider configured by opts. It validates opts but does
// not contact AWS or look for credentials. Errors name the bad option.
func New(opts Options) (*Provider, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Provider{opts: opts, log: log, delays: newDelays(), retries: providers.NewRetries(providers.Instance{Name: KindName, Logger: log})}
	if !opts.TLS.IsZero() {
		c, err := opts.TLS.Config(context.Background())
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		p.tls = c
	}
	return p, nil
}

// untrustedCertificate makes a server certificate that no trusted CA
// issued (tls.ca_cert, the system's roots) final: no retry makes it so.
var untrustedCertificate = retry.IsErrorRetryableFunc(func(err error) awssdk.Ternary {
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return awssdk.FalseTernary
	}
	return awssdk.UnknownTernary
})

// httpClient is the HTTP client of the provider's AWS config: the SDK's,
// each attempt bounded by AttemptTimeout, trusting the instance's tls.
func (p *Provider) httpClient() *awshttp.BuildableClient {
	c := awshttp.NewBuildableClient().WithTimeout(AttemptTimeout)
	if p.tls == nil {
		return c
	}
	return c.WithTransportOptions(func(tr *http.Transport) {
		// A copy: the SDK adds AWS_CA_BUNDLE to the pool it finds.
		tc := p.tls.Clone()
		if tc.RootCAs != nil {
			tc.RootCAs = tc.RootCAs.Clone()
		}
		tr.TLSClientConfig = tc
	})
}

// newWithAPI returns a Provider that uses client (a fake in unit tests)
// with region as its configured region.
func newWithAPI(client api, region string, opts Options) *Provider {
	p, err := New(opts)
	if err != nil {
		panic(err)
	}
	p.client, p.region = client, region
	return p
}

func newInstance(in providers.Instance) (providers.Provider, error) {
	var opts Options
	if in.Decode != nil {
		if err := in.Decode(&opts); err != nil {
			return nil, fmt.Errorf("awssm provider options: %w", err)
		}
	}
	opts.TLS = opts.TLS.Abs(in.BaseDir)
	opts.Logger = in.Logger
	if opts.Logger != nil {
		opts.Logger = opts.Logger.With("provider", in.Name)
	}
	p, err := New(opts)
	if err != nil {
		return nil, err
	}
	p.retries = providers.NewRetries(in)
	if in.Workload != nil {
		if err := p.actAs(in.Workload); err != nil {
			return nil, fmt.Errorf("awssm provider %s: %w", in.Name, err)
		}
	} else if opts.Audience != "" {
		return nil, fmt.Errorf("awssm provider %s: audience is for keyward csi-provider, which assumes each pod's role with its ServiceAccount token", in.Name)
	}
	return p, nil
}

var (
	roleARNRe = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$`)
	regionRe  = regexp.MustCompile(`^[a-z0-9-]+$`)
)

func (o Options) validate() error {
	if o.Region != "" && !regionRe.MatchString(o.Region) {
		return fmt.Errorf("region %q is not an AWS region name", o.Region)
	}
	if o.RoleARN != "" && !roleARNRe.MatchString(o.RoleARN) {
		return fmt.Errorf("role_arn %q is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)", o.RoleARN)
	}
	for key, e := range map[string]string{"endpoint": o.Endpoint, "sts_endpoint": o.STSEndpoint} {
		if e == "" {
			continue
		}
		if err := providers.CheckEndpoint(key, e); err != nil {
			return err
		}
	}
	if o.MaxAttempts < 0 {
		return fmt.Errorf("max attempts %d is negative", o.MaxAttempts)
	}
	return nil
}

// getClient returns the Secrets Manager client, loading the AWS config on
// first use. A failure is not remembered: the next call tries again.
func (p *Provider) getClient(ctx context.Context) (api, string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil {
		return p.client, p.region, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("load AWS config: %w", err)
	}
	cfg, err := p.loadConfig(ctx)
	if err != nil {
		return nil, "", err
	}
	attempts := p.opts.MaxAttempts
	if attempts == 0 {
		attempts = cfg.RetryMaxAttempts
	}
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	retryer := retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = attempts
		o.MaxBackoff = maxRetryDelay
		o.Backoff = p.delays
		// No client-side retry quota: every call gets its attempts, so
		// that a long outage does not turn into "retry quota exceeded".
		o.RateLimiter = ratelimit.None
		o.Retryables = append([]retry.IsErrorRetryable{untrustedCertificate}, o.Retryables...)
	})
	p.sent = &sentCredentials{CredentialsProvider: cfg.Credentials}
	switch cfg.Credentials.(type) {
	case nil, awssdk.AnonymousCredentials, *awssdk.AnonymousCredentials:
		// Nothing is signed, so nothing to record (and the SDK must
		// still see that it is anonymous).
	default:
		cfg.Credentials = p.sent
	}
	p.client = secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		if p.opts.Endpoint != "" {
			o.BaseEndpoint = awssdk.String(p.opts.Endpoint)
		}
		o.Retryer = retryer
	})
	p.region = cfg.Region
	p.cfg = cfg
	p.log.Debug("AWS Secrets Manager client ready", "region", cfg.Region, "endpoint_override", p.opts.Endpoint != "", "assume_role", p.opts.RoleARN != "", "workload", p.workload != nil, "max_attempts", attempts)
	return p.client, p.region, nil
}

// loadConfig is the AWS config of the provider's client: the pod's web
// identity when it acts as one, else the SDK's default chain (with the
// instance's region, profile and role).
func (p *Provider) loadConfig(ctx context.Context) (awssdk.Config, error) {
	if p.workload != nil {
		return p.workloadConfig(), nil
	}
	load := []func(*config.LoadOptions) error{
		config.WithHTTPClient(p.httpClient()),
	}
	if p.opts.Region != "" {
		load = append(load, config.WithRegion(p.opts.Region))
	}
	if p.opts.Profile != "" {
		load = append(load, config.WithSharedConfigProfile(p.opts.Profile))
	}
	load = append(load, p.opts.ConfigOptions...)
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return awssdk.Config{}, fmt.Errorf("load AWS config: %w", err)
	}
	if p.opts.RoleARN != "" {
		assume := stscreds.NewAssumeRoleProvider(p.stsClient(cfg), p.opts.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = "keyward"
		})
		cfg.Credentials = awssdk.NewCredentialsCache(assume)
	}
	return cfg, nil
}

// stsClient is an STS client of cfg, at sts_endpoint when it is set.
func (p *Provider) stsClient(cfg awssdk.Config) *sts.Client {
	return sts.NewFromConfig(cfg, func(o *sts.Options) {
		if p.opts.STSEndpoint != "" {
			o.BaseEndpoint = awssdk.String(p.opts.STSEndpoint)
		}
	})
}

// Close releases nothing: the SDK client holds only idle connections.
func (p *Provider) Close() error { return nil }

// target is one secret version to read: a SecretId plus version selectors.
type target struct {
	id      string
	stage   string // "" or a staging label
	version string // "" or a version id
	region  string // the ARN's region when id is an ARN, else ""
}

// batchable reports whether BatchGetSecretValue can read t: it reads
// only the AWSCURRENT version.
func (t target) batchable() bool {
	return t.version == "" && (t.stage == "" || t.stage == StageCurrent)
}

func (t target) String() string {
	s := t.id
	if t.version != "" {
		s += " version " + t.version
	}
	if t.stage != "" {
		s += " stage " + t.stage
	}
	return s
}

func targetOf(ref providers.Ref) target {
	t := target{id: ref.Path, stage: ref.Params[ParamVersionStage], version: ref.Params[ParamVersionID]}
	if a, ok := parseSecretARN(ref.Path); ok {
		t.region = a.region
	}
	return t
}

// callOptions returns the per-call options that send a request for t to
// the ARN's region when it differs from the client's.
func callOptions(t target, clientRegion string) []func(*secretsmanager.Options) {
	if t.region == "" || t.region == clientRegion {
		return nil
	}
	r := t.region
	return []func(*secretsmanager.Options){func(o *secretsmanager.Options) { o.Region = r }}
}

// Fetch reads the secret ref names with GetSecretValue: the version
// ?version-id= names, else the one holding ?version-stage=, else
// AWSCURRENT. The Secret's Value is the SecretString or the SecretBinary
// bytes; when the SecretString is a JSON object, Data holds it parsed (so
// #field selects its keys, a.b walking nested objects). Version is the
// AWS version id.
//
// A reference by ARN is sent to the ARN's region. Throttling, 5xx answers
// and network errors are retried with capped exponential backoff and full
// jitter, at most MaxAttempts times. Errors name the secret and the AWS
// error code and wrap providers.ErrNotFound (ResourceNotFoundException),
// providers.ErrPermissionDenied (AccessDeniedException, DecryptionFailure,
// invalid or expired credentials) or ctx's error; they never hold a value.
func (p *Provider) Fetch(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
	if err := CheckRef(ref); err != nil {
		return providers.Secret{}, err
	}
	t := targetOf(ref)
	if err := ctx.Err(); err != nil {
		return providers.Secret{}, fmt.Errorf("GetSecretValue %s: %w", t, err)
	}
	client, region, err := p.getClient(ctx)
	if err != nil {
		return providers.Secret{}, err
	}
	return p.get(ctx, client, region, t)
}

func (p *Provider) get(ctx context.Context, client api, region string, t target) (providers.Secret, error) {
	const op = "GetSecretValue"
	if err := needRegion(op, t, region); err != nil {
		return providers.Secret{}, err
	}
	in := &secretsmanager.GetSecretValueInput{SecretId: awssdk.String(t.id)}
	if t.stage != "" {
		in.VersionStage = awssdk.String(t.stage)
	}
	if t.version != "" {
		in.VersionId = awssdk.String(t.version)
	}
	att := p.retries.Call(op, t.String())
	out, err := client.GetSecretValue(ctx, in, append(callOptions(t, region), p.observe(att))...)
	if err != nil {
		return providers.Secret{}, p.apiError(ctx, op, t.String(), err, att)
	}
	return secretOf(out.SecretString, out.SecretBinary, out.VersionId), nil
}

// needRegion fails early, without I/O, when no region is known for t.
func needRegion(op string, t target, clientRegion string) error {
	if t.region == "" && clientRegion == "" {
		return fmt.Errorf("%s %s: no AWS region: set the instance's region option, AWS_REGION, or a profile's region, or name the secret by ARN", op, t)
	}
	return nil
}

// secretOf builds the Secret of one AWS secret version.
func secretOf(str *string, bin []byte, versionID *string) providers.Secret {
	var s providers.Secret
	if str != nil {
		s.Value = providers.StringValue(*str)
		s.Data = jsonObject(s.Value.Bytes())
	} else {
		s.Value = providers.NewValue(bin)
	}
	if versionID != nil {
		s.Version = *versionID
	}
	return s
}

// jsonObject parses b as one JSON object (numbers kept as json.Number), as
// providers.Secret.Field does for a secret without Data; nil when b is not
// exactly one JSON object.
func jsonObject(b []byte) map[string]any {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || dec.More() {
		return nil
	}
	return m
}

// secretARN is the parsed form of arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME.
type secretARN struct {
	partition, region, account, name string
}

// parseSecretARN parses s as a Secrets Manager secret ARN; ok is false
// when s does not start with "arn:".
func parseSecretARN(s string) (secretARN, bool) {
	if !strings.HasPrefix(s, "arn:") {
		return secretARN{}, false
	}
	parts := strings.SplitN(s, ":", 7)
	if len(parts) < 7 {
		return secretARN{}, true
	}
	return secretARN{partition: parts[1], region: parts[3], account: parts[4], name: parts[6]}, parts[2] == "secretsmanager" && parts[5] == "secret"
}

var (
	partitionRe = regexp.MustCompile(`^aws(-[a-z]+)*$`)
	accountRe   = regexp.MustCompile(`^[0-9]{12}$`)
)

// CheckRef validates an awssm reference without I/O: the path is a secret
// name (letters, digits and /_+=.@-, at most 512) or a Secrets Manager
// secret ARN, and ?version-stage= and ?version-id= have valid values.
// Errors wrap providers.ErrInvalidReference.
func CheckRef(ref providers.Ref) error {
	id := ref.Path
	if strings.HasPrefix(id, "arn:") {
		a, ok := parseSecretARN(id)
		switch {
		case !ok || a.name == "":
			return fmt.Errorf("%q is not a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME): %w", id, providers.ErrInvalidReference)
		case !partitionRe.MatchString(a.partition):
			return fmt.Errorf("ARN partition %q is not an AWS partition: %w", a.partition, providers.ErrInvalidReference)
		case !regionRe.MatchString(a.region):
			return fmt.Errorf("ARN region %q is not a region name: %w", a.region, providers.ErrInvalidReference)
		case !accountRe.MatchString(a.account):
			return fmt.Errorf("ARN account %q is not a 12-digit account id: %w", a.account, providers.ErrInvalidReference)
		case strings.Contains(a.name, ":"):
			return fmt.Errorf("ARN has ':' after the secret name: write the JSON key as #key and the version as ?version-stage= or ?version-id= (or use the arn:aws:secretsmanager:… form without awssm://): %w", providers.ErrInvalidReference)
		case !validSecretName(a.name):
			return fmt.Errorf("ARN secret name %q may hold only letters, digits and /_+=.@- (at most 512): %w", a.name, providers.ErrInvalidReference)
		}
	} else if !validSecretName(id) {
		return fmt.Errorf("secret name %q may hold only letters, digits and /_+=.@- (at most 512), or be an ARN: %w", id, providers.ErrInvalidReference)
	}
	if s, ok := ref.Params[ParamVersionStage]; ok && (len(s) > 256 || strings.ContainsAny(s, " \t")) {
		return fmt.Errorf("%s %q must be 1 to 256 characters without spaces: %w", ParamVersionStage, s, providers.ErrInvalidReference)
	}
	if v, ok := ref.Params[ParamVersionID]; ok && (len(v) < 32 || len(v) > 64 || strings.ContainsAny(v, " \t")) {
		return fmt.Errorf("%s %q must be 32 to 64 characters without spaces: %w", ParamVersionID, v, providers.ErrInvalidReference)
	}
	return nil
}

// validSecretName reports whether s is a valid Secrets Manager secret name:
// 1 to 512 of A-Z a-z 0-9 / _ + = . @ -. (A hand-written check: the
// equivalent regexp with {1,512} compiles to a large program at start-up.)
func validSecretName(s string) bool {
	if len(s) == 0 || len(s) > 512 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("/_+=.@-", c) >= 0) {
			return false
		}
	}
	return true
}
