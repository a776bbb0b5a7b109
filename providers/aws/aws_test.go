package aws

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/processcreds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/providertest"
)

const fakeRegion = "us-east-1"

// version is one version of a fake secret.
type version struct {
	id     string
	str    *string
	bin    []byte
	stages []string
}

// fakeAPI is an in-memory Secrets Manager behind the provider's api
// seam. Secrets live per region; every call is recorded.
type fakeAPI struct {
	mu      sync.Mutex
	secrets map[string]map[string][]version // region → name → versions
	calls   []fakeCall
	ids     int // version ids ever given out: unique, as AWS's UUIDs are

	// errFor, when set, answers a call instead of the store.
	errFor func(op, id string) error
	// batchErr, when set, fails every BatchGetSecretValue call.
	batchErr error
	// omit lists ids a batch answer leaves out entirely.
	omit map[string]bool
	// pageSize > 0 makes batch answers page with NextToken.
	pageSize int

	inflight, maxInflight atomic.Int32
	// entered and hold, when set, are sent to and received from in
	// every call, so a test can see how many calls are in flight.
	entered, hold chan struct{}
}

type fakeCall struct {
	Op     string
	IDs    []string
	Region string
	Stage  string
	Ver    string
}

var _ api = (*fakeAPI)(nil)

func newFake() *fakeAPI { return &fakeAPI{secrets: map[string]map[string][]version{}} }

func arnOf(region, name string) string {
	return "arn:aws:secretsmanager:" + region + ":123456789012:secret:" + name + "-AbCdEf"
}

// put adds a version of name in region holding a string (str) or bytes,
// moving AWSCURRENT to it; it returns the version id.
func (f *fakeAPI) put(region, name string, value []byte, str bool) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.secrets[region] == nil {
		f.secrets[region] = map[string][]version{}
	}
	vs := f.secrets[region][name]
	for i := range vs {
		vs[i].stages = slices.DeleteFunc(vs[i].stages, func(s string) bool { return s == "AWSPREVIOUS" })
		for j, s := range vs[i].stages {
			if s == StageCurrent {
				vs[i].stages[j] = "AWSPREVIOUS"
			}
		}
	}
	f.ids++
	v := version{id: fmt.Sprintf("%08d-0000-0000-0000-%012d", f.ids, len(name)), stages: []string{StageCurrent}}
	if str {
		s := string(value)
		v.str = &s
	} else {
		v.bin = append([]byte(nil), value...)
	}
	f.secrets[region][name] = append(vs, v)
	return v.id
}

// remove deletes name in region with its versions (DeleteSecret with
// ForceDeleteWithoutRecovery).
func (f *fakeAPI) remove(region, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.secrets[region], name)
}

// lookup finds a secret by name, full ARN or partial ARN.
func (f *fakeAPI) lookup(region, id string) (string, []version, bool) {
	for name, vs := range f.secrets[region] {
		if id == name || id == arnOf(region, name) || id == strings.TrimSuffix(arnOf(region, name), "-AbCdEf") {
			return name, vs, true
		}
	}
	return "", nil, false
}

func (f *fakeAPI) enter(op string, ids []string, opts []func(*secretsmanager.Options), stage, ver string) (string, func()) {
	o := secretsmanager.Options{Region: fakeRegion}
	for _, fn := range opts {
		fn(&o)
	}
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{Op: op, IDs: ids, Region: o.Region, Stage: stage, Ver: ver})
	f.mu.Unlock()
	n := f.inflight.Add(1)
	for {
		m := f.maxInflight.Load()
		if n <= m || f.maxInflight.CompareAndSwap(m, n) {
			break
		}
	}
	if f.entered != nil {
		f.entered <- struct{}{}
		<-f.hold
	}
	return o.Region, func() { f.inflight.Add(-1) }
}

func (f *fakeAPI) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c.Op == op {
			n++
		}
	}
	return n
}

func (f *fakeAPI) callsOf(op string) []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeCall
	for _, c := range f.calls {
		if c.Op == op {
			out = append(out, c)
		}
	}
	return out
}

func notFound() error {
	return &types.ResourceNotFoundException{Message: awssdk.String("Secrets Manager can't find the specified secret.")}
}

func (f *fakeAPI) find(region, id, stage, ver string) (string, version, error) {
	name, vs, ok := f.lookup(region, id)
	if !ok {
		return "", version{}, notFound()
	}
	if stage == "" && ver == "" {
		stage = StageCurrent
	}
	for _, v := range vs {
		if (ver == "" || v.id == ver) && (stage == "" || slices.Contains(v.stages, stage)) {
			return name, v, nil
		}
	}
	return "", version{}, notFound()
}

func (f *fakeAPI) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	id := awssdk.ToString(in.SecretId)
	region, done := f.enter("GetSecretValue", []string{id}, opts, awssdk.ToString(in.VersionStage), awssdk.ToString(in.VersionId))
	defer done()
	if err := ctx.Err(); err != nil {
		return nil, &smithy.OperationError{ServiceID: "Secrets Manager", OperationName: "GetSecretValue", Err: err}
	}
	if f.errFor != nil {
		if err := f.errFor("GetSecretValue", id); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	name, v, err := f.find(region, id, awssdk.ToString(in.VersionStage), awssdk.ToString(in.VersionId))
	if err != nil {
		return nil, err
	}
	return &secretsmanager.GetSecretValueOutput{Name: &name, ARN: awssdk.String(arnOf(region, name)), VersionId: &v.id, SecretString: v.str, SecretBinary: v.bin, VersionStages: v.stages}, nil
}

func (f *fakeAPI) BatchGetSecretValue(ctx context.Context, in *secretsmanager.BatchGetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error) {
	region, done := f.enter("BatchGetSecretValue", in.SecretIdList, opts, "", "")
	defer done()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.batchErr != nil {
		return nil, f.batchErr
	}
	if len(in.SecretIdList) > BatchSize {
		return nil, &types.InvalidParameterException{Message: awssdk.String("too many ids")}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &secretsmanager.BatchGetSecretValueOutput{}
	start := 0
	if in.NextToken != nil {
		fmt.Sscan(*in.NextToken, &start)
	}
	ids := in.SecretIdList[start:]
	if f.pageSize > 0 && len(ids) > f.pageSize {
		ids = ids[:f.pageSize]
		out.NextToken = awssdk.String(fmt.Sprint(start + f.pageSize))
	}
	for _, id := range ids {
		if f.omit[id] {
			continue
		}
		if f.errFor != nil {
			if err := f.errFor("BatchGetSecretValue", id); err != nil {
				var ae smithy.APIError
				errors.As(err, &ae)
				out.Errors = append(out.Errors, types.APIErrorType{SecretId: awssdk.String(id), ErrorCode: awssdk.String(ae.ErrorCode()), Message: awssdk.String(ae.ErrorMessage())})
				continue
			}
		}
		name, v, err := f.find(region, id, "", "")
		if err != nil {
			out.Errors = append(out.Errors, types.APIErrorType{SecretId: awssdk.String(id), ErrorCode: awssdk.String("ResourceNotFoundException"), Message: awssdk.String("Secrets Manager can't find the specified secret.")})
			continue
		}
		out.SecretValues = append(out.SecretValues, types.SecretValueEntry{Name: &name, ARN: awssdk.String(arnOf(region, name)), VersionId: &v.id, SecretString: v.str, SecretBinary: v.bin, VersionStages: v.stages})
	}
	return out, nil
}

func (f *fakeAPI) DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	id := awssdk.ToString(in.SecretId)
	region, done := f.enter("DescribeSecret", []string{id}, opts, "", "")
	defer done()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.errFor != nil {
		if err := f.errFor("DescribeSecret", id); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	name, vs, ok := f.lookup(region, id)
	if !ok {
		return nil, notFound()
	}
	m := map[string][]string{}
	for _, v := range vs {
		if len(v.stages) > 0 {
			m[v.id] = slices.Clone(v.stages)
		}
	}
	return &secretsmanager.DescribeSecretOutput{Name: &name, VersionIdsToStages: m}, nil
}

func fakeProvider(t *testing.T, f *fakeAPI, mod ...func(*Options)) *Provider {
	t.Helper()
	var opts Options
	for _, fn := range mod {
		fn(&opts)
	}
	return newWithAPI(f, fakeRegion, opts)
}

func parse(t *testing.T, s string) providers.Ref {
	t.Helper()
	r, err := providers.Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return r
}

func TestCheckRef(t *testing.T) {
	t.Parallel()
	arn := "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf"
	tests := []struct {
		ref     string
		wantErr string // "" means valid
	}{
		{ref: "awssm://prod/stripe#api_key"},
		{ref: "awssm:///leading/slash"},
		{ref: "awssm://a_b+c=d.e@f-g"},
		{ref: "awssm://" + arn + "#password"},
		{ref: "awssm://arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:x"},
		{ref: arn + ":password:AWSPREVIOUS"},
		{ref: arn + "::AWSPENDING:0123456789abcdef0123456789abcdef"},
		{ref: "awssm://prod/db?version-stage=AWSPREVIOUS"},
		{ref: "awssm://prod/db?version-id=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"},
		{ref: "awssm://prod db", wantErr: "may hold only"},
		{ref: "awssm://prod:db", wantErr: "may hold only"},
		{ref: "awssm://" + strings.Repeat("a", 513), wantErr: "at most 512"},
		{ref: "awssm://arn:aws:secretsmanager:eu-west-1:123456789012:secret:", wantErr: "is not a Secrets Manager secret ARN"},
		{ref: "awssm://arn:aws:s3:::bucket", wantErr: "is not a Secrets Manager secret ARN"},
		{ref: "awssm://arn:aws:secretsmanager:eu-west-1:1234:secret:x", wantErr: "12-digit"},
		{ref: "awssm://arn:nope:secretsmanager:eu-west-1:123456789012:secret:x", wantErr: "partition"},
		{ref: "awssm://arn:aws:secretsmanager:EU:123456789012:secret:x", wantErr: "region"},
		{ref: "awssm://" + arn + ":password", wantErr: "write the JSON key as #key"},
		{ref: "awssm://prod/db?version-id=short", wantErr: "32 to 64"},
		{ref: "awssm://prod/db?version-stage=" + strings.Repeat("S", 257), wantErr: "1 to 256"},
	}
	for _, tt := range tests {
		t.Run(tt.ref[:min(len(tt.ref), 60)], func(t *testing.T) {
			t.Parallel()
			err := CheckRef(parse(t, tt.ref))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckRef: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckRef = %v, want an error containing %q", err, tt.wantErr)
			}
			if !errors.Is(err, providers.ErrInvalidReference) {
				t.Errorf("CheckRef error %v does not wrap ErrInvalidReference", err)
			}
		})
	}
}

func TestKindRegistered(t *testing.T) {
	t.Parallel()
	k, ok := providers.LookupKind(KindName)
	if !ok {
		t.Fatal("kind awssm not registered")
	}
	set := providers.NewSet(providers.Instance{}, nil)
	if err := set.CheckRef(parse(t, "awssm://prod/db?version-stage=AWSPREVIOUS")); err != nil {
		t.Errorf("Set.CheckRef: %v", err)
	}
	if err := set.CheckRef(parse(t, "awssm://prod/db?version=3")); !errors.Is(err, providers.ErrInvalidReference) {
		t.Errorf("unknown ?version= accepted: %v", err)
	}
	if !slices.Equal(k.Params, []string{ParamVersionStage, ParamVersionID}) {
		t.Errorf("Params = %v", k.Params)
	}
}

func TestNewInstanceOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{name: "empty"},
		{name: "all", opts: Options{Region: "eu-west-1", Profile: "prod", RoleARN: "arn:aws:iam::123456789012:role/keyward-reader", Endpoint: "https://vpce-123.secretsmanager.eu-west-1.vpce.amazonaws.com"}},
		{name: "bad region", opts: Options{Region: "EU West"}, wantErr: "region"},
		{name: "bad role", opts: Options{RoleARN: "keyward-reader"}, wantErr: "role_arn"},
		{name: "bad endpoint", opts: Options{Endpoint: "localhost:4566"}, wantErr: "endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, _ := providers.LookupKind(KindName)
			p, err := k.New(providers.Instance{Name: "aws-eu", Kind: KindName, Decode: func(into any) error {
				*(into.(*Options)) = tt.opts
				return nil
			}})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestLazy: building a provider and closing it unused touches nothing,
// and a provider with no region fails without a call.
func TestLazy(t *testing.T) {
	t.Parallel()
	f := newFake()
	p := newWithAPI(f, "", Options{})
	_, err := p.Fetch(t.Context(), parse(t, "awssm://prod/db"))
	if err == nil || !strings.Contains(err.Error(), "no AWS region") {
		t.Fatalf("Fetch without a region: %v", err)
	}
	if n := len(f.calls); n != 0 {
		t.Fatalf("%d calls made without a region", n)
	}
	// An ARN brings its region.
	f.put("eu-west-1", "prod/db", []byte("x"), true)
	if _, err := p.Fetch(t.Context(), parse(t, "awssm://"+arnOf("eu-west-1", "prod/db"))); err != nil {
		t.Fatalf("Fetch by ARN without a configured region: %v", err)
	}
}

func TestFetch(t *testing.T) {
	t.Parallel()
	f := newFake()
	p := fakeProvider(t, f)
	f.put(fakeRegion, "plain", []byte("hunter2"), true)
	f.put(fakeRegion, "json", []byte(`{"user":"app","db":{"password":"s3cret","port":5432},"on":true}`), true)
	f.put(fakeRegion, "bin", []byte{0, 1, 0xff, '\n'}, false)
	v1 := f.put(fakeRegion, "rotated", []byte("one"), true)
	v2 := f.put(fakeRegion, "rotated", []byte("two"), true)
	f.put("eu-west-1", "far", []byte("away"), true)

	tests := []struct {
		ref       string
		want      string
		version   string
		wantStage string
		wantVer   string
		region    string
	}{
		{ref: "awssm://plain", want: "hunter2"},
		{ref: "awssm://json#user", want: "app"},
		{ref: "awssm://json#db.password", want: "s3cret"},
		{ref: "awssm://json#db.port", want: "5432"},
		{ref: "awssm://json#on", want: "true"},
		{ref: "awssm://bin", want: "\x00\x01\xff\n"},
		{ref: "awssm://rotated", want: "two", version: v2},
		{ref: "awssm://rotated?version-stage=AWSPREVIOUS", want: "one", version: v1, wantStage: "AWSPREVIOUS"},
		{ref: "awssm://rotated?version-id=" + v1, want: "one", version: v1, wantVer: v1},
		{ref: arnOf("eu-west-1", "far"), want: "away", region: "eu-west-1"},
		{ref: "awssm://" + arnOf(fakeRegion, "json") + "#user", want: "app"},
		{ref: arnOf(fakeRegion, "json") + ":db.password", want: "s3cret"},
		{ref: arnOf(fakeRegion, "rotated") + "::AWSPREVIOUS", want: "one", wantStage: "AWSPREVIOUS"},
	}
	for _, tt := range tests {
		r := parse(t, tt.ref)
		before := len(f.callsOf("GetSecretValue"))
		sec, err := p.Fetch(t.Context(), r.Whole())
		if err != nil {
			t.Errorf("Fetch(%s): %v", tt.ref, err)
			continue
		}
		got := sec.Value
		if r.Field != "" {
			got, err = sec.Field(r.Field)
			if err != nil {
				t.Errorf("%s: Field: %v", tt.ref, err)
				continue
			}
		}
		if got.Reveal() != tt.want {
			t.Errorf("Fetch(%s) = %s, want %d bytes", tt.ref, got.Fingerprint(), len(tt.want))
		}
		if tt.version != "" && sec.Version != tt.version {
			t.Errorf("Fetch(%s).Version = %q, want %q", tt.ref, sec.Version, tt.version)
		}
		calls := f.callsOf("GetSecretValue")
		if len(calls) != before+1 {
			t.Fatalf("Fetch(%s) made %d calls", tt.ref, len(calls)-before)
		}
		c := calls[len(calls)-1]
		wantRegion := cmpOr(tt.region, fakeRegion)
		if c.Stage != tt.wantStage || c.Ver != tt.wantVer || c.Region != wantRegion {
			t.Errorf("Fetch(%s) sent stage %q version %q region %q, want %q %q %q", tt.ref, c.Stage, c.Ver, c.Region, tt.wantStage, tt.wantVer, wantRegion)
		}
	}

	// JSON becomes Data, so a whole render sees the fields; a plain
	// string does not, and a #field of it is ErrNotObject.
	sec, err := p.Fetch(t.Context(), parse(t, "awssm://json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, fields, err := sec.Whole(); err != nil || fields["user"].Reveal() != "app" {
		t.Errorf("Whole of a JSON secret: fields %v, %v", fields, err)
	}
	sec, err = p.Fetch(t.Context(), parse(t, "awssm://plain"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sec.Field("x"); !errors.Is(err, providers.ErrNotObject) {
		t.Errorf("#x of a plain string: %v", err)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestFetchErrors(t *testing.T) {
	t.Parallel()
	const value = "sk_live_do-not-print-this-value"
	throttled := &retry.MaxAttemptsError{Attempt: 5, Err: &smithy.OperationError{ServiceID: "Secrets Manager", OperationName: "GetSecretValue",
		Err: &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}}}
	tests := []struct {
		name   string
		err    error
		is     error
		isNot  error
		substr []string
	}{
		{name: "not found", err: notFound(), is: providers.ErrNotFound, isNot: providers.ErrPermissionDenied,
			substr: []string{"GetSecretValue prod/db", "ResourceNotFoundException", "can't find"}},
		{name: "denied", err: &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "User: arn:aws:iam::123456789012:user/x is not authorized to perform: secretsmanager:GetSecretValue"},
			is: providers.ErrPermissionDenied, isNot: providers.ErrNotFound, substr: []string{"AccessDeniedException", "not authorized"}},
		{name: "kms", err: &types.DecryptionFailure{Message: awssdk.String("can't decrypt")}, is: providers.ErrPermissionDenied, substr: []string{"DecryptionFailure"}},
		{name: "bad credentials", err: &smithy.GenericAPIError{Code: "UnrecognizedClientException"}, is: providers.ErrPermissionDenied},
		{name: "internal", err: &types.InternalServiceError{Message: awssdk.String("boom")}, isNot: providers.ErrNotFound, substr: []string{"InternalServiceError", "boom"}},
		{name: "throttled", err: throttled, substr: []string{"ThrottlingException after 5 attempts", "Rate exceeded"}},
		{name: "control characters", err: &smithy.GenericAPIError{Code: "X", Message: "a\nb\x1b[31mc"}, substr: []string{"(a b [31mc)"}},
		{name: "long message", err: &smithy.GenericAPIError{Code: "X", Message: strings.Repeat("é", 400)}, substr: []string{"…)"}},
		{name: "network", err: errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), substr: []string{"GetSecretValue prod/db: dial tcp"}},
		{name: "deadline", err: &smithy.OperationError{Err: context.DeadlineExceeded}, is: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake()
			f.put(fakeRegion, "prod/db", []byte(value), true)
			f.errFor = func(string, string) error { return tt.err }
			p := fakeProvider(t, f)
			_, err := p.Fetch(t.Context(), parse(t, "awssm://prod/db"))
			if err == nil {
				t.Fatal("Fetch succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("%v does not wrap %v", err, tt.is)
			}
			if tt.isNot != nil && errors.Is(err, tt.isNot) {
				t.Errorf("%v wraps %v", err, tt.isNot)
			}
			for _, s := range tt.substr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if len(err.Error()) > 600 {
				t.Errorf("error is %d bytes long", len(err.Error()))
			}
			providertest.AssertRedacted(t, err.Error(), []byte(value))
			var ae *APIError
			if errors.As(tt.err, new(smithy.APIError)) && !errors.As(err, &ae) {
				t.Errorf("%v is not an *APIError", err)
			}
		})
	}
}

// TestFetchErrorUnwrapsSDKType: callers can still reach the SDK's typed error.
func TestFetchErrorUnwrapsSDKType(t *testing.T) {
	t.Parallel()
	f := newFake()
	p := fakeProvider(t, f)
	_, err := p.Fetch(t.Context(), parse(t, "awssm://missing"))
	var rnf *types.ResourceNotFoundException
	if !errors.As(err, &rnf) {
		t.Fatalf("%v does not unwrap to *types.ResourceNotFoundException", err)
	}
}

func TestFetchCancelled(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.put(fakeRegion, "x", []byte("v"), true)
	p := fakeProvider(t, f)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := p.Fetch(ctx, parse(t, "awssm://x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Fetch: %v", err)
	}
	if _, err := p.ProbeVersion(ctx, parse(t, "awssm://x")); !errors.Is(err, context.Canceled) {
		t.Errorf("ProbeVersion: %v", err)
	}
	_, errs := p.FetchBatch(ctx, []providers.Ref{parse(t, "awssm://x"), parse(t, "awssm://y")})
	for i, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("FetchBatch[%d]: %v", i, err)
		}
	}
}

func TestFetchBatch(t *testing.T) {
	t.Parallel()
	f := newFake()
	p := fakeProvider(t, f)
	var refs []providers.Ref
	want := map[int]string{}
	for i := range 45 {
		name := fmt.Sprintf("app/s%02d", i)
		f.put(fakeRegion, name, fmt.Appendf(nil, `{"k":"v%d"}`, i), true)
		refs = append(refs, parse(t, "awssm://"+name))
		want[len(refs)-1] = fmt.Sprintf(`{"k":"v%d"}`, i)
	}
	// Duplicates: the same secret by name, by the default stage spelled
	// out, by full and by partial ARN.
	refs = append(refs, parse(t, "awssm://app/s00"))
	want[len(refs)-1] = `{"k":"v0"}`
	refs = append(refs, parse(t, "awssm://app/s01?version-stage=AWSCURRENT"))
	want[len(refs)-1] = `{"k":"v1"}`
	refs = append(refs, parse(t, "awssm://"+arnOf(fakeRegion, "app/s02")))
	want[len(refs)-1] = `{"k":"v2"}`
	refs = append(refs, parse(t, "awssm://"+strings.TrimSuffix(arnOf(fakeRegion, "app/s03"), "-AbCdEf")))
	want[len(refs)-1] = `{"k":"v3"}`
	// Versioned: batch cannot read it.
	f.put(fakeRegion, "app/s04", []byte(`{"k":"new"}`), true)
	refs = append(refs, parse(t, "awssm://app/s04?version-stage=AWSPREVIOUS"))
	want[len(refs)-1] = `{"k":"v4"}`
	want[4] = `{"k":"new"}`
	// Missing, and invalid.
	refs = append(refs, parse(t, "awssm://app/missing"))
	missing := len(refs) - 1
	refs = append(refs, providers.Ref{Scheme: KindName, Path: "bad name"})
	invalid := len(refs) - 1

	secs, errs := p.FetchBatch(t.Context(), refs)
	if len(secs) != len(refs) || len(errs) != len(refs) {
		t.Fatalf("FetchBatch returned %d secrets and %d errors for %d refs", len(secs), len(errs), len(refs))
	}
	for i, w := range want {
		if errs[i] != nil {
			t.Errorf("ref %d (%s): %v", i, refs[i], errs[i])
			continue
		}
		if secs[i].Value.Reveal() != w {
			t.Errorf("ref %d (%s): different value", i, refs[i])
		}
		if secs[i].Version == "" {
			t.Errorf("ref %d (%s): no version", i, refs[i])
		}
	}
	if !errors.Is(errs[missing], providers.ErrNotFound) || !strings.Contains(errs[missing].Error(), "app/missing") {
		t.Errorf("missing: %v", errs[missing])
	}
	if !errors.Is(errs[invalid], providers.ErrInvalidReference) {
		t.Errorf("invalid: %v", errs[invalid])
	}

	batches := f.callsOf("BatchGetSecretValue")
	if len(batches) != 3 {
		t.Errorf("%d BatchGetSecretValue calls, want 3 (47 distinct ids, 20 per call)", len(batches))
	}
	seen := map[string]bool{}
	for _, c := range batches {
		if len(c.IDs) > BatchSize {
			t.Errorf("a batch of %d ids", len(c.IDs))
		}
		for _, id := range c.IDs {
			if seen[id] {
				t.Errorf("id %s asked twice", id)
			}
			seen[id] = true
		}
	}
	if gets := f.callsOf("GetSecretValue"); len(gets) != 1 || gets[0].Stage != "AWSPREVIOUS" {
		t.Errorf("GetSecretValue calls %+v, want only the AWSPREVIOUS one", gets)
	}
}

func TestFetchBatchRegions(t *testing.T) {
	t.Parallel()
	f := newFake()
	p := fakeProvider(t, f)
	var refs []providers.Ref
	for _, region := range []string{fakeRegion, "eu-west-1", "eu-west-1", "ap-south-1"} {
		name := fmt.Sprintf("r/%d", len(refs))
		f.put(region, name, []byte(region), true)
		refs = append(refs, parse(t, "awssm://"+arnOf(region, name)))
	}
	refs = append(refs, parse(t, "awssm://r/local"))
	f.put(fakeRegion, "r/local", []byte(fakeRegion), true)
	secs, errs := p.FetchBatch(t.Context(), refs)
	for i := range refs {
		if errs[i] != nil {
			t.Fatalf("%s: %v", refs[i], errs[i])
		}
		_ = secs[i]
	}
	regions := map[string]string{}
	for _, c := range f.calls {
		regions[c.Region] += c.Op + " "
	}
	wantRegions := map[string]string{
		fakeRegion:   "BatchGetSecretValue ",
		"eu-west-1":  "BatchGetSecretValue ",
		"ap-south-1": "GetSecretValue ",
	}
	if fmt.Sprint(regions) != fmt.Sprint(wantRegions) {
		t.Errorf("calls by region %v, want %v", regions, wantRegions)
	}
}

func TestFetchBatchPagesAndGaps(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.pageSize = 3
	p := fakeProvider(t, f)
	var refs []providers.Ref
	for i := range 8 {
		name := fmt.Sprintf("p/%d", i)
		f.put(fakeRegion, name, []byte(name), true)
		refs = append(refs, parse(t, "awssm://"+name))
	}
	f.omit = map[string]bool{"p/5": true} // the answer forgets one
	secs, errs := p.FetchBatch(t.Context(), refs)
	for i := range refs {
		if errs[i] != nil || secs[i].Value.Reveal() != refs[i].Path {
			t.Fatalf("%s: %v", refs[i], errs[i])
		}
	}
	if n := f.count("BatchGetSecretValue"); n != 3 {
		t.Errorf("%d batch calls, want 3 pages", n)
	}
	if gets := f.callsOf("GetSecretValue"); len(gets) != 1 || gets[0].IDs[0] != "p/5" {
		t.Errorf("GetSecretValue calls %+v, want one for the forgotten p/5", gets)
	}
}

func TestFetchBatchEntryErrors(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.errFor = func(op, id string) error {
		if id == "e/denied" {
			return &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized"}
		}
		if id == "e/kms" {
			return &smithy.GenericAPIError{Code: "DecryptionFailure", Message: "kms"}
		}
		return nil
	}
	p := fakeProvider(t, f)
	for _, n := range []string{"e/ok", "e/denied", "e/kms"} {
		f.put(fakeRegion, n, []byte("v"), true)
	}
	refs := []providers.Ref{parse(t, "awssm://e/ok"), parse(t, "awssm://e/denied"), parse(t, "awssm://e/kms"), parse(t, "awssm://e/none")}
	_, errs := p.FetchBatch(t.Context(), refs)
	if errs[0] != nil {
		t.Errorf("ok: %v", errs[0])
	}
	for i, want := range []error{nil, providers.ErrPermissionDenied, providers.ErrPermissionDenied, providers.ErrNotFound} {
		if want != nil && !errors.Is(errs[i], want) {
			t.Errorf("%s: %v, want %v", refs[i], errs[i], want)
		}
		if want != nil && !strings.Contains(errs[i].Error(), "BatchGetSecretValue "+refs[i].Path+":") {
			t.Errorf("%s: error %q does not name the secret", refs[i], errs[i])
		}
	}
	if n := f.count("GetSecretValue"); n != 0 {
		t.Errorf("%d GetSecretValue calls for entries the batch answered", n)
	}
}

// TestFetchBatchDenied: when IAM denies BatchGetSecretValue, every secret
// is read with GetSecretValue, at most Concurrency at once, and later
// batches go straight to GetSecretValue.
func TestFetchBatchDenied(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.batchErr = &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized to perform: secretsmanager:BatchGetSecretValue"}
	p := fakeProvider(t, f, func(o *Options) { o.Concurrency = 3 })
	var refs []providers.Ref
	for i := range 30 {
		name := fmt.Sprintf("d/%d", i)
		f.put(fakeRegion, name, []byte(name), true)
		refs = append(refs, parse(t, "awssm://"+name))
	}
	secs, errs := p.FetchBatch(t.Context(), refs)
	for i := range refs {
		if errs[i] != nil || secs[i].Value.Reveal() != refs[i].Path {
			t.Fatalf("%s: %v", refs[i], errs[i])
		}
	}
	if n := f.count("BatchGetSecretValue"); n < 1 || n > 2 {
		t.Errorf("%d batch calls, want 1 or 2 (two chunks may race to learn the denial)", n)
	}
	if n := f.count("GetSecretValue"); n != 30 {
		t.Errorf("%d GetSecretValue calls, want 30", n)
	}
	if m := f.maxInflight.Load(); m > 3 {
		t.Errorf("%d calls in flight at once, want at most 3", m)
	}
	before := f.count("BatchGetSecretValue")
	if _, errs := p.FetchBatch(t.Context(), refs[:5]); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if n := f.count("BatchGetSecretValue"); n != before {
		t.Errorf("a batch call after the denial was learned")
	}
}

// TestFetchBatchConcurrencyBound holds every call until the test lets
// it go: exactly Concurrency calls are in flight at once.
func TestFetchBatchConcurrencyBound(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.entered, f.hold = make(chan struct{}), make(chan struct{})
	p := fakeProvider(t, f, func(o *Options) { o.Concurrency = 4 })
	var refs []providers.Ref
	for i := range 12 {
		name := fmt.Sprintf("c/%d", i)
		f.put(fakeRegion, name, []byte(name), true)
		refs = append(refs, parse(t, "awssm://"+name+"?version-stage=AWSCURRENT&version-id="+strings.Repeat("0", 31)+fmt.Sprint(i%10)))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.FetchBatch(t.Context(), refs)
	}()
	for range 4 { // four calls run at once …
		<-f.entered
	}
	for range 12 - 4 { // … and each that ends lets the next one start
		f.hold <- struct{}{}
		<-f.entered
	}
	for range 4 {
		f.hold <- struct{}{}
	}
	<-done
	if m := f.maxInflight.Load(); m != 4 {
		t.Errorf("max in flight %d, want exactly 4", m)
	}
}

func TestFetchBatchOtherError(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.batchErr = &types.InternalServiceError{Message: awssdk.String("boom")}
	p := fakeProvider(t, f)
	f.put(fakeRegion, "a", []byte("1"), true)
	f.put(fakeRegion, "b", []byte("2"), true)
	_, errs := p.FetchBatch(t.Context(), []providers.Ref{parse(t, "awssm://a"), parse(t, "awssm://b")})
	for _, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "InternalServiceError") {
			t.Errorf("got %v, want the batch's InternalServiceError", err)
		}
	}
	if n := f.count("GetSecretValue"); n != 0 {
		t.Errorf("%d GetSecretValue calls after a non-denial batch error", n)
	}
}

func TestProbeVersion(t *testing.T) {
	t.Parallel()
	f := newFake()
	p := fakeProvider(t, f)
	v1 := f.put(fakeRegion, "r", []byte("1"), true)
	v2 := f.put(fakeRegion, "r", []byte("2"), true)
	tests := []struct {
		ref     string
		want    string
		wantErr error
	}{
		{ref: "awssm://r", want: v2},
		{ref: "awssm://r?version-stage=AWSPREVIOUS", want: v1},
		{ref: "awssm://r?version-id=" + v1, want: v1},
		{ref: "awssm://r?version-id=" + v1 + "&version-stage=AWSPREVIOUS", want: v1},
		{ref: "awssm://r?version-id=" + v1 + "&version-stage=AWSCURRENT", wantErr: providers.ErrNotFound},
		{ref: "awssm://r?version-id=ffffffff-0000-0000-0000-000000000000", wantErr: providers.ErrNotFound},
		{ref: "awssm://r?version-stage=AWSPENDING", wantErr: providers.ErrNotFound},
		{ref: "awssm://none", wantErr: providers.ErrNotFound},
	}
	for _, tt := range tests {
		got, err := p.ProbeVersion(t.Context(), parse(t, tt.ref))
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("ProbeVersion(%s) = %q, %v; want %v", tt.ref, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ProbeVersion(%s) = %q, %v; want %q", tt.ref, got, err, tt.want)
		}
	}
	if n := f.count("GetSecretValue"); n != 0 {
		t.Errorf("ProbeVersion read %d values", n)
	}
	// The probe follows a rotation.
	v3 := f.put(fakeRegion, "r", []byte("3"), true)
	if got, err := p.ProbeVersion(t.Context(), parse(t, "awssm://r")); err != nil || got != v3 {
		t.Errorf("after rotation: %q, %v; want %q", got, err, v3)
	}
	sec, err := p.Fetch(t.Context(), parse(t, "awssm://r"))
	if err != nil || sec.Version != v3 {
		t.Errorf("Fetch version %q, %v: not comparable with the probe's %q", sec.Version, err, v3)
	}
}

func TestProbeVersionDescribeDenied(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.errFor = func(op, _ string) error {
		if op == "DescribeSecret" {
			return &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized"}
		}
		return nil
	}
	p := fakeProvider(t, f)
	v := f.put(fakeRegion, "r", []byte("1"), true)
	for range 3 {
		got, err := p.ProbeVersion(t.Context(), parse(t, "awssm://r"))
		if err != nil || got != v {
			t.Fatalf("ProbeVersion = %q, %v; want %q", got, err, v)
		}
	}
	if n := f.count("DescribeSecret"); n != 1 {
		t.Errorf("%d DescribeSecret calls, want 1 (the denial is remembered)", n)
	}
	if n := f.count("GetSecretValue"); n != 3 {
		t.Errorf("%d GetSecretValue calls, want 3", n)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	b := newDelays()
	b.setRand(func() float64 { return 1 })
	throttle := &smithy.GenericAPIError{Code: "ThrottlingException"}
	unavailable := &smithy.GenericAPIError{Code: "InternalFailure"}
	tests := []struct {
		attempt int
		err     error
		want    time.Duration
	}{
		{1, throttle, 500 * time.Millisecond},
		{2, throttle, time.Second},
		{3, throttle, 2 * time.Second},
		{7, throttle, maxRetryDelay},
		{100, throttle, maxRetryDelay},
		{1, unavailable, 100 * time.Millisecond},
		{2, unavailable, 200 * time.Millisecond},
		{0, unavailable, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		got, err := b.BackoffDelay(tt.attempt, tt.err)
		if err != nil || got != tt.want {
			t.Errorf("BackoffDelay(%d, %v) = %v, %v; want %v", tt.attempt, tt.err, got, err, tt.want)
		}
	}
	b.setRand(func() float64 { return 0 })
	if got, _ := b.BackoffDelay(3, throttle); got != 0 {
		t.Errorf("full jitter at 0: %v", got)
	}
	// The server's hint wins when it is longer, within the cap.
	withHeader := func(k, v string) error {
		resp := &http.Response{StatusCode: 400, Header: http.Header{}}
		resp.Header.Set(k, v)
		return &smithy.OperationError{Err: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: resp}, Err: throttle}}
	}
	for _, tt := range []struct {
		err  error
		want time.Duration
	}{
		{withHeader("X-Amz-Retry-After", "1500"), 1500 * time.Millisecond},
		{withHeader("Retry-After", "3"), 3 * time.Second},
		{withHeader("Retry-After", "3600"), maxRetryDelay},
		{withHeader("Retry-After", "soon"), 0},
	} {
		if got, _ := b.BackoffDelay(1, tt.err); got != tt.want {
			t.Errorf("BackoffDelay with %v = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestSDKRetriesThrottling runs the real SDK client, with the provider's
// retryer, against a local HTTP server that throttles: attempts are
// bounded by MaxAttempts and spaced by the backoff.
func TestSDKRetriesThrottling(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		throttles int
		wantOK    bool
		attempts  int
	}{
		{name: "recovers", throttles: 2, wantOK: true, attempts: 3},
		{name: "gives up", throttles: 100, wantOK: false, attempts: 4},
		{name: "server error then ok", throttles: -1, wantOK: true, attempts: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var at []time.Time
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				at = append(at, time.Now())
				n := len(at)
				mu.Unlock()
				w.Header().Set("Content-Type", "application/x-amz-json-1.1")
				switch {
				case tt.throttles < 0 && n == 1:
					w.WriteHeader(http.StatusServiceUnavailable)
					fmt.Fprint(w, `{"__type":"InternalServiceError","message":"try again"}`)
				case n <= tt.throttles:
					w.WriteHeader(http.StatusBadRequest)
					fmt.Fprint(w, `{"__type":"ThrottlingException","message":"Rate exceeded"}`)
				default:
					fmt.Fprint(w, `{"Name":"x","VersionId":"v1","SecretString":"ok"}`)
				}
			}))
			defer srv.Close()
			p, err := New(Options{Region: fakeRegion, Endpoint: srv.URL, MaxAttempts: 4, ConfigOptions: []func(*awsconfig.LoadOptions) error{
				awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("k", "s", "")),
				awsconfig.WithSharedConfigFiles(nil), awsconfig.WithSharedCredentialsFiles(nil),
			}})
			if err != nil {
				t.Fatal(err)
			}
			p.delays.setRand(func() float64 { return 1 })
			p.delays.normal.Base, p.delays.throttled.Base = 10*time.Millisecond, 20*time.Millisecond
			sec, err := p.Fetch(t.Context(), parse(t, "awssm://x"))
			if tt.wantOK != (err == nil) {
				t.Fatalf("Fetch: %v", err)
			}
			if err == nil && sec.Value.Reveal() != "ok" {
				t.Errorf("wrong value")
			}
			if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("ThrottlingException after %d attempts", tt.attempts)) {
				t.Errorf("error %q does not say the attempts ran out", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(at) != tt.attempts {
				t.Fatalf("%d attempts, want %d", len(at), tt.attempts)
			}
			base := 20 * time.Millisecond
			if tt.throttles < 0 {
				base = 10 * time.Millisecond
			}
			for i := 1; i < len(at); i++ {
				if gap, want := at[i].Sub(at[i-1]), base<<(i-1); gap < want {
					t.Errorf("gap before attempt %d: %v, want at least %v", i+1, gap, want)
				}
			}
		})
	}
}

// TestSortedStableProbe: a malformed answer giving a stage to two
// versions resolves the same way every time.
func TestSortedStableProbe(t *testing.T) {
	t.Parallel()
	f := newFake()
	p := fakeProvider(t, f)
	f.put(fakeRegion, "r", []byte("1"), true)
	f.put(fakeRegion, "r", []byte("2"), true)
	f.mu.Lock()
	for i := range f.secrets[fakeRegion]["r"] {
		f.secrets[fakeRegion]["r"][i].stages = []string{StageCurrent}
	}
	ids := []string{f.secrets[fakeRegion]["r"][0].id, f.secrets[fakeRegion]["r"][1].id}
	f.mu.Unlock()
	sort.Strings(ids)
	for range 5 {
		got, err := p.ProbeVersion(t.Context(), parse(t, "awssm://r"))
		if err != nil || got != ids[0] {
			t.Fatalf("ProbeVersion = %q, %v; want %q", got, err, ids[0])
		}
	}
}

// TestExamples checks the AWS examples without AWS: every awssm instance
// of examples/aws/**/keyward.yaml decodes strictly into Options and
// builds, and every reference it serves passes the Set's checks.
func TestExamples(t *testing.T) {
	t.Parallel()
	paths, err := filepath.Glob("../../examples/aws/*/keyward.yaml")
	if err != nil || len(paths) < 2 {
		t.Fatalf("examples/aws: %v, %v", paths, err)
	}
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Load(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			var declared []providers.Instance
			for name, p := range cfg.Providers {
				declared = append(declared, providers.Instance{Name: name, Kind: p.Kind, Decode: p.Decode})
			}
			set := providers.NewSet(providers.Instance{}, declared)
			defer set.Close()
			n := 0
			for name, s := range cfg.Secrets {
				if set.KindOf(s.Ref.Scheme) != KindName {
					continue
				}
				n++
				if err := set.CheckRef(s.Ref); err != nil {
					t.Errorf("%s: %v", name, err)
				}
				if _, err := set.Provider(s.Ref.Scheme); err != nil {
					t.Errorf("%s: building instance %s: %v", name, s.Ref.Scheme, err)
				}
			}
			if n == 0 {
				t.Error("no awssm reference")
			}
		})
	}
}

// TestCredentialProcessOutputNotShown: the SDK's credential_process errors
// can quote the process's output (the access keys); apiError keeps none of it.
func TestCredentialProcessOutputNotShown(t *testing.T) {
	t.Parallel()
	const key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	sdkErr := fmt.Errorf("failed to retrieve credentials: %w",
		&processcreds.ProviderError{Err: fmt.Errorf(`parse failed of process output: {"SecretAccessKey": %q}`, key)})
	err := apiError(t.Context(), "GetSecretValue", "prod/db", sdkErr, nil)
	if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "SecretAccessKey") {
		t.Fatalf("credential_process output in the error (%d bytes)", len(err.Error()))
	}
	if !errors.Is(err, providers.ErrPermissionDenied) || !strings.Contains(err.Error(), "credential_process") {
		t.Fatalf("error = %v", err)
	}
}

// TestCredentialChainErrorHidesProcessOutput: Credential, handing out
// temporary credentials from the default chain, keeps none of a failed
// credential_process's output (the access keys) in its error either.
func TestCredentialChainErrorHidesProcessOutput(t *testing.T) {
	t.Parallel()
	key := providertest.Credential(t)
	p := fakeProvider(t, newFake())
	p.cfg.Credentials = awssdk.CredentialsProviderFunc(func(context.Context) (awssdk.Credentials, error) {
		return awssdk.Credentials{}, fmt.Errorf("failed to refresh cached credentials: %w",
			&processcreds.ProviderError{Err: fmt.Errorf(`parse failed of process output: {"SecretAccessKey": %q}`, key)})
	})
	_, err := p.Credential(t.Context(), providers.CredentialRequest{})
	if err == nil {
		t.Fatal("Credential succeeded without credentials")
	}
	providertest.AssertErrorRedacted(t, err, []byte(key))
	if !errors.Is(err, providers.ErrPermissionDenied) || !strings.Contains(err.Error(), "credential_process") {
		t.Error("the error is not a permission denied naming credential_process")
	}
}

func TestPinned(t *testing.T) {
	t.Parallel()
	p := fakeProvider(t, newFake())
	for s, want := range map[string]bool{
		"awssm://prod/db": false,
		"awssm://prod/db?version-stage=AWSPREVIOUS":                                                            false,
		"awssm://prod/db?version-id=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0":                                      true,
		"arn:aws:secretsmanager:eu-west-1:123456789012:secret:db::AWSPENDING:0123456789abcdef0123456789abcdef": true,
	} {
		if got := p.Pinned(parse(t, s)); got != want {
			t.Errorf("Pinned(%s) = %v, want %v", s, got, want)
		}
	}
}

// TestServiceErrorScrubsSigningCredentials: a Secrets Manager (or a proxy
// in front of it) whose refusal echoes the session token the client sent,
// or the secret access key, raw, base64'd, percent-encoded or cut short,
// leaves neither in the error, whether the refusal is final or retried
// until the attempts run out; the error still says what AWS answered.
func TestServiceErrorScrubsSigningCredentials(t *testing.T) {
	t.Parallel()
	secretKey, session := providertest.Credential(t), providertest.Credential(t)
	for _, code := range []string{"AccessDeniedException", "InternalServiceError"} {
		for _, sent := range []string{secretKey, session} {
			for form, echo := range providertest.Echoes(sent) {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/x-amz-json-1.1")
					status := http.StatusBadRequest
					if code == "InternalServiceError" {
						status = http.StatusInternalServerError
					}
					w.WriteHeader(status)
					msg := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace("credential " + echo + " refused")
					fmt.Fprintf(w, `{"__type":%q,"message":"%s"}`, code, msg)
				}))
				p, err := New(Options{Region: fakeRegion, Endpoint: srv.URL, MaxAttempts: 2, ConfigOptions: []func(*awsconfig.LoadOptions) error{
					awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", secretKey, session)),
					awsconfig.WithSharedConfigFiles(nil), awsconfig.WithSharedCredentialsFiles(nil),
				}})
				if err != nil {
					t.Fatal(err)
				}
				p.delays.setRand(func() float64 { return 1 })
				p.delays.normal.Base, p.delays.throttled.Base = time.Millisecond, time.Millisecond
				_, err = p.Fetch(t.Context(), parse(t, "awssm://x"))
				srv.Close()
				if err == nil || !strings.Contains(err.Error(), code) || !strings.Contains(err.Error(), "refused") {
					t.Errorf("%s, echo %s: got no error, or one (%d bytes) not naming %s and quoting the rest of the message", code, form, errLen(err), code)
					continue
				}
				providertest.AssertErrorRedacted(t, err, []byte(secretKey), []byte(session))
			}
		}
	}
}

// errLen is the length of err's message, 0 for nil: a failure message
// says it rather than printing an error that may hold a credential.
func errLen(err error) int {
	if err == nil {
		return 0
	}
	return len(err.Error())
}
