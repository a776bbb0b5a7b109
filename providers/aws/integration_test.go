//go:build integration

package aws

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/providertest"
)

// uniq returns a secret name unique to this run.
func uniq(t testing.TB, prefix string) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "kwit/" + prefix + "-" + hex.EncodeToString(b)
}

func randomUUID(t testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// store creates name or, when it exists, puts a new current version.
func store(t testing.TB, c *secretsmanager.Client, name string, value []byte) string {
	t.Helper()
	str := utf8.Valid(value) && !bytes.ContainsRune(value, 0)
	in := &secretsmanager.CreateSecretInput{Name: awssdk.String(name)}
	if str {
		in.SecretString = awssdk.String(string(value))
	} else {
		in.SecretBinary = value
	}
	out, err := c.CreateSecret(t.Context(), in)
	var exists *types.ResourceExistsException
	if errors.As(err, &exists) {
		return putValue(t, c, name, value, str)
	}
	if err != nil {
		t.Fatalf("CreateSecret %s: %v", name, err)
	}
	return awssdk.ToString(out.VersionId)
}

// denyProxy answers GetSecretValue and DescribeSecret for the secrets
// in denied with AccessDeniedException, as IAM does for a role whose
// policy does not cover them.
//
// moto 5.2.1 can enforce IAM (INITIAL_NO_AUTH_ACTION_COUNT), but it
// evaluates every Secrets Manager action against resource "*" and
// answers a denial with an XML body that no AWS SDK decodes for this
// JSON-protocol service, so denials are produced here, in the shape AWS
// sends them.
func denyProxy(t testing.TB, denied *sync.Map) *proxy {
	return newProxy(t, func(p *proxy) {
		p.fault = func(op string, body []byte) (int, string, string, bool) {
			if op != "GetSecretValue" && op != "DescribeSecret" {
				return 0, "", "", false
			}
			for _, id := range secretIDs(body) {
				if _, ok := denied.Load(id); ok {
					return 400, "AccessDeniedException", fmt.Sprintf(
						"User: arn:aws:sts::%s:assumed-role/app/keyward is not authorized to perform: secretsmanager:%s on resource: %s because no identity-based policy allows the secretsmanager:%s action",
						testAccount, op, id, op), true
				}
			}
			return 0, "", "", false
		}
	})
}

func TestConformance(t *testing.T) {
	t.Parallel()
	c := admin(t, "")
	var denied sync.Map
	px := denyProxy(t, &denied)
	providertest.Run(t, providertest.Harness{
		Kind:       KindName,
		New:        func(t *testing.T) providers.Provider { return newProvider(t, px.URL) },
		BinarySafe: true,
		PutValue: func(t *testing.T, name string, value []byte) providers.Ref {
			store(t, c, name, value)
			return ref(name)
		},
		PutObject: func(t *testing.T, name string, fields map[string]any) providers.Ref {
			b, err := json.Marshal(fields)
			if err != nil {
				t.Fatal(err)
			}
			store(t, c, name, b)
			return ref(name)
		},
		PutVersions: func(t *testing.T, name string, values [][]byte) providertest.Versions {
			var vs providertest.Versions
			for _, v := range values {
				vs.Pinned = append(vs.Pinned, ref(name, ParamVersionID, store(t, c, name, v)))
			}
			vs.Latest = ref(name)
			vs.Missing = ref(name, ParamVersionID, randomUUID(t))
			return vs
		},
		Delete: func(t *testing.T, name string) {
			_, err := c.DeleteSecret(t.Context(), &secretsmanager.DeleteSecretInput{SecretId: awssdk.String(name), ForceDeleteWithoutRecovery: awssdk.Bool(true)})
			if err != nil {
				t.Fatalf("DeleteSecret %s: %v", name, err)
			}
		},
		Missing: func(t *testing.T, name string) providers.Ref { return ref(name) },
		Denied: func(t *testing.T, name string, value []byte) providers.Ref {
			store(t, c, name, value)
			denied.Store(name, true)
			return ref(name)
		},
		PutMalformed: func(t *testing.T, name string, value []byte) providers.Ref {
			store(t, c, name, []byte(`{"password": "`+string(value)))
			r := ref(name)
			r.Field = "password"
			return r
		},
	})
}

// TestStages: PutSecretValue moves AWSCURRENT and AWSPREVIOUS; both are
// readable, custom stages too, and the version probe sees each move with
// one DescribeSecret and no read.
func TestStages(t *testing.T) {
	t.Parallel()
	c := admin(t, "")
	name := uniq(t, "stages")
	v1 := createSecret(t, c, name, []byte("one"), true).VersionID
	v2 := putValue(t, c, name, []byte("two"), true)
	px := newProxy(t)
	p := newProvider(t, px.URL)

	fetch := func(r providers.Ref, want, wantVersion string) {
		t.Helper()
		sec, err := p.Fetch(t.Context(), r)
		if err != nil {
			t.Fatalf("Fetch(%s): %v", r, err)
		}
		if sec.Value.Reveal() != want || sec.Version != wantVersion {
			t.Fatalf("Fetch(%s) = %s version %s, want %d bytes version %s", r, sec.Value.Fingerprint(), sec.Version, len(want), wantVersion)
		}
	}
	probe := func(r providers.Ref, want string) {
		t.Helper()
		got, err := p.ProbeVersion(t.Context(), r)
		if err != nil || got != want {
			t.Fatalf("ProbeVersion(%s) = %q, %v; want %q", r, got, err, want)
		}
	}
	previous := ref(name, ParamVersionStage, "AWSPREVIOUS")
	fetch(ref(name), "two", v2)
	fetch(previous, "one", v1)
	fetch(ref(name, ParamVersionID, v1), "one", v1)

	px.reset()
	probe(ref(name), v2)
	probe(previous, v1)
	if gets, describes := px.count("GetSecretValue"), px.count("DescribeSecret"); gets != 0 || describes != 2 {
		t.Errorf("two probes made %d GetSecretValue and %d DescribeSecret calls, want 0 and 2", gets, describes)
	}

	// Rotation: the probe sees AWSCURRENT move, and Fetch agrees.
	v3 := putValue(t, c, name, []byte("three"), true)
	probe(ref(name), v3)
	probe(previous, v2)
	fetch(ref(name), "three", v3)
	fetch(previous, "two", v2)

	// A custom stage does not move AWSCURRENT.
	pending := putValue(t, c, name, []byte("pending"), true, "AWSPENDING")
	fetch(ref(name, ParamVersionStage, "AWSPENDING"), "pending", pending)
	probe(ref(name, ParamVersionStage, "AWSPENDING"), pending)
	probe(ref(name), v3)

	for _, r := range []providers.Ref{ref(name, ParamVersionStage, "NOPE"), ref(name, ParamVersionID, randomUUID(t))} {
		if _, err := p.Fetch(t.Context(), r); !errors.Is(err, providers.ErrNotFound) {
			t.Errorf("Fetch(%s): %v, want ErrNotFound", r, err)
		}
		if _, err := p.ProbeVersion(t.Context(), r); !errors.Is(err, providers.ErrNotFound) {
			t.Errorf("ProbeVersion(%s): %v, want ErrNotFound", r, err)
		}
	}
}

// TestPayloads: SecretString (plain and JSON, nested), SecretBinary.
func TestPayloads(t *testing.T) {
	t.Parallel()
	c := admin(t, "")
	p := newProvider(t, moto.Endpoint)
	bin := []byte{0, 0xff, 0xfe, '\n', 0xc3, 'x', 0}
	binName := uniq(t, "binary")
	createSecret(t, c, binName, bin, false)
	jsonName := uniq(t, "json")
	createSecret(t, c, jsonName, []byte(`{"username":"app","db":{"password":"pw-1","port":5432},"tls.crt":"CERT","flags":[1,2],"on":false}`), true)
	plainName := uniq(t, "plain")
	createSecret(t, c, plainName, []byte("just a string\n"), true)
	arrayName := uniq(t, "array")
	createSecret(t, c, arrayName, []byte(`["a","b"]`), true)

	tests := []struct {
		ref     providers.Ref
		want    []byte
		wantErr error
	}{
		{ref: ref(binName), want: bin},
		{ref: ref(plainName), want: []byte("just a string\n")},
		{ref: ref(arrayName), want: []byte(`["a","b"]`)},
		{ref: withField(ref(jsonName), "username"), want: []byte("app")},
		{ref: withField(ref(jsonName), "db.password"), want: []byte("pw-1")},
		{ref: withField(ref(jsonName), "db.port"), want: []byte("5432")},
		{ref: withField(ref(jsonName), "db"), want: []byte(`{"password":"pw-1","port":5432}`)},
		{ref: withField(ref(jsonName), "tls.crt"), want: []byte("CERT")},
		{ref: withField(ref(jsonName), "flags"), want: []byte("[1,2]")},
		{ref: withField(ref(jsonName), "on"), want: []byte("false")},
		{ref: withField(ref(jsonName), "nope"), wantErr: providers.ErrNotFound},
		{ref: withField(ref(plainName), "x"), wantErr: providers.ErrNotObject},
		{ref: withField(ref(arrayName), "x"), wantErr: providers.ErrNotObject},
		{ref: withField(ref(binName), "x"), wantErr: providers.ErrNotObject},
	}
	for _, tt := range tests {
		sec, err := p.Fetch(t.Context(), tt.ref.Whole())
		if err != nil {
			t.Errorf("Fetch(%s): %v", tt.ref, err)
			continue
		}
		got := sec.Value
		if tt.ref.Field != "" {
			got, err = sec.Field(tt.ref.Field)
		}
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("%s: %v, want %v", tt.ref, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !bytes.Equal(got.Bytes(), tt.want) {
			t.Errorf("%s = %s, %v; want %d bytes", tt.ref, got.Fingerprint(), err, len(tt.want))
		}
	}

	// A whole JSON secret rendered as a map has its top-level fields.
	sec, err := p.Fetch(t.Context(), ref(jsonName))
	if err != nil {
		t.Fatal(err)
	}
	_, fields, err := sec.Whole()
	if err != nil || fields["username"].Reveal() != "app" || fields["tls.crt"].Reveal() != "CERT" {
		t.Errorf("Whole: %d fields, %v", len(fields), err)
	}
}

func withField(r providers.Ref, f string) providers.Ref {
	r.Field = f
	return r
}

// instanceSet returns a Set whose awssm instance (the default name, so
// ECS-form ARNs reach it) talks to endpoint.
func instanceSet(t testing.TB, endpoint string) *providers.Set {
	t.Helper()
	opts := Options{Region: testRegion, Endpoint: endpoint}
	set := providers.NewSet(providers.Instance{Getenv: os.Getenv}, []providers.Instance{{
		Name: KindName, Kind: KindName,
		Decode: func(into any) error { *(into.(*Options)) = opts; return nil },
	}})
	t.Cleanup(func() { set.Close() })
	return set
}

// TestARNs resolves one secret by name, full ARN, partial ARN and the
// ECS form with key, stage and version id, plus a secret in another
// region by ARN, through providers.Set as keyward does.
func TestARNs(t *testing.T) {
	t.Parallel()
	c := admin(t, "")
	name := uniq(t, "arns")
	first := createSecret(t, c, name, []byte(`{"password":"old"}`), true)
	current := putValue(t, c, name, []byte(`{"password":"new"}`), true)
	arn := first.ARN
	partial := arn[:len(arn)-7] // without AWS's "-XXXXXX" suffix
	if !strings.HasSuffix(partial, ":"+name) {
		t.Fatalf("unexpected ARN shape %s", arn)
	}
	farName := uniq(t, "far")
	far := createSecret(t, admin(t, "eu-west-1"), farName, []byte(`{"password":"far"}`), true)

	px := newProxy(t)
	set := instanceSet(t, px.URL)
	refs := map[string]string{
		"BY_NAME":        "awssm://" + name + "#password",
		"BY_ARN":         "awssm://" + arn + "#password",
		"BY_PARTIAL_ARN": "awssm://" + partial + "#password",
		"ECS":            arn + ":password",
		"ECS_PREVIOUS":   arn + ":password:AWSPREVIOUS",
		"ECS_VERSION_ID": arn + ":password::" + current,
		"OTHER_REGION":   far.ARN + ":password",
	}
	want := map[string]string{
		"BY_NAME": "new", "BY_ARN": "new", "BY_PARTIAL_ARN": "new", "ECS": "new",
		"ECS_PREVIOUS": "old", "ECS_VERSION_ID": "new", "OTHER_REGION": "far",
	}
	parsed := map[string]providers.Ref{}
	for k, s := range refs {
		parsed[k] = mustParse(t, s)
	}
	got, err := set.Resolve(t.Context(), parsed)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	for k, w := range want {
		if got[k].Value.Reveal() != w {
			t.Errorf("%s (%s) = %s, want %q", k, refs[k], got[k].Value.Fingerprint(), w)
		}
	}
	if got["ECS"].Version != current || got["ECS_PREVIOUS"].Version != first.VersionID {
		t.Errorf("versions: ECS %s, ECS_PREVIOUS %s", got["ECS"].Version, got["ECS_PREVIOUS"].Version)
	}
	// Name, ARN and partial ARN of us-east-1 in one batch; the stage, the
	// version id and the other region singly.
	if b, g := px.count("BatchGetSecretValue"), px.count("GetSecretValue"); b != 1 || g != 3 {
		t.Errorf("%d BatchGetSecretValue and %d GetSecretValue calls, want 1 and 3", b, g)
	}
}

// TestBatch resolves 45 secrets × 3 fields plus duplicates, a stage and a
// missing secret, counting calls at a proxy in front of moto.
func TestBatch(t *testing.T) {
	t.Parallel()
	c := admin(t, "")
	prefix := uniq(t, "batch")
	refs := map[string]providers.Ref{}
	want := map[string]string{}
	for i := range 45 {
		name := fmt.Sprintf("%s/%02d", prefix, i)
		createSecret(t, c, name, fmt.Appendf(nil, `{"a":"a%d","b":"b%d","c":{"d":"d%d"}}`, i, i, i), true)
		for _, f := range []string{"a", "b", "c.d"} {
			k := fmt.Sprintf("S%02d_%s", i, strings.ReplaceAll(f, ".", "_"))
			refs[k] = withField(ref(name), f)
			want[k] = fmt.Sprintf("%s%d", f[len(f)-1:], i)
		}
	}
	refs["DUP_STAGE"] = withField(ref(prefix+"/00", ParamVersionStage, StageCurrent), "a")
	want["DUP_STAGE"] = "a0"
	putValue(t, c, prefix+"/01", []byte(`{"a":"rotated"}`), true)
	want["S01_a"] = "rotated"
	for _, k := range []string{"S01_b", "S01_c_d"} { // not in the rotated version
		delete(refs, k)
		delete(want, k)
	}
	refs["PREVIOUS"] = withField(ref(prefix+"/01", ParamVersionStage, "AWSPREVIOUS"), "b")
	want["PREVIOUS"] = "b1"

	px := newProxy(t)
	set := instanceSet(t, px.URL)
	got, err := set.Resolve(t.Context(), refs)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	for k, w := range want {
		if got[k].Value.Reveal() != w {
			t.Errorf("%s = %s, want %q", k, got[k].Value.Fingerprint(), w)
		}
	}
	// 45 distinct current versions (DUP_STAGE is S00's) → 3 calls of ≤20;
	// AWSPREVIOUS → one GetSecretValue.
	if b, g := px.count("BatchGetSecretValue"), px.count("GetSecretValue"); b != 3 || g != 1 {
		t.Errorf("%d BatchGetSecretValue and %d GetSecretValue calls, want 3 and 1", b, g)
	}
	for _, call := range px.seen() {
		if ids := secretIDs(call.Body); call.Op == "BatchGetSecretValue" && len(ids) > BatchSize {
			t.Errorf("a batch of %d ids", len(ids))
		}
	}

	// A missing secret fails alone, named, as not found.
	px.reset()
	refs["MISSING"] = ref(prefix + "/missing")
	_, err = set.Resolve(t.Context(), refs)
	var re *providers.ResolveError
	if !errors.As(err, &re) || len(re.Failures) != 1 || re.Failures[0].Name != "MISSING" {
		t.Fatalf("Resolve with a missing secret: %v", err)
	}
	if !errors.Is(err, providers.ErrNotFound) || !strings.Contains(err.Error(), "ResourceNotFoundException") || !strings.Contains(err.Error(), prefix+"/missing") {
		t.Errorf("error %q: want ErrNotFound naming the secret and the AWS code", err)
	}
	if b := px.count("BatchGetSecretValue"); b != 3 {
		t.Errorf("%d BatchGetSecretValue calls with the missing secret, want 3", b)
	}
}

// TestBatchDenied: a policy proxy denies BatchGetSecretValue as IAM does
// when the role lacks that permission; every secret is then read with
// GetSecretValue, and later resolves do not try the batch again.
func TestBatchDenied(t *testing.T) {
	t.Parallel()
	c := admin(t, "")
	prefix := uniq(t, "denied")
	refs := map[string]providers.Ref{}
	for i := range 25 {
		name := fmt.Sprintf("%s/%02d", prefix, i)
		createSecret(t, c, name, fmt.Appendf(nil, "v%02d", i), true)
		refs[fmt.Sprintf("S%02d", i)] = ref(name)
	}
	px := newProxy(t, func(p *proxy) {
		p.fault = func(op string, _ []byte) (int, string, string, bool) {
			if op == "BatchGetSecretValue" {
				return 400, "AccessDeniedException", "User: arn:aws:sts::" + testAccount + ":assumed-role/app/keyward is not authorized to perform: secretsmanager:BatchGetSecretValue because no identity-based policy allows the secretsmanager:BatchGetSecretValue action", true
			}
			return 0, "", "", false
		}
	})
	set := instanceSet(t, px.URL)
	for round := range 2 {
		px.reset()
		got, err := set.Resolve(t.Context(), refs)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for k := range refs {
			if got[k].Value.Reveal() != "v"+k[1:] {
				t.Errorf("round %d: %s wrong", round, k)
			}
		}
		b, g := px.count("BatchGetSecretValue"), px.count("GetSecretValue")
		if g != 25 {
			t.Errorf("round %d: %d GetSecretValue calls, want 25", round, g)
		}
		if round == 0 && (b < 1 || b > 2) {
			t.Errorf("round 0: %d BatchGetSecretValue calls, want 1 or 2 (the two chunks may both be tried)", b)
		}
		if round == 1 && b != 0 {
			t.Errorf("round 1: %d BatchGetSecretValue calls after the denial was learned", b)
		}
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	p := newProvider(t, moto.Endpoint)
	name := uniq(t, "missing")
	for _, r := range []providers.Ref{ref(name), ref("arn:aws:secretsmanager:" + testRegion + ":" + testAccount + ":secret:" + name + "-AbCdEf")} {
		_, err := p.Fetch(t.Context(), r)
		if !errors.Is(err, providers.ErrNotFound) || errors.Is(err, providers.ErrPermissionDenied) {
			t.Errorf("Fetch(%s): %v, want ErrNotFound only", r, err)
		}
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != "ResourceNotFoundException" || !strings.Contains(err.Error(), r.Path) {
			t.Errorf("Fetch(%s): %v: want an *APIError naming the secret and ResourceNotFoundException", r, err)
		}
		if _, err := p.ProbeVersion(t.Context(), r); !errors.Is(err, providers.ErrNotFound) {
			t.Errorf("ProbeVersion(%s): %v", r, err)
		}
	}
	_, errs := p.FetchBatch(t.Context(), []providers.Ref{ref(name), ref(name + "-2")})
	for _, err := range errs {
		if !errors.Is(err, providers.ErrNotFound) {
			t.Errorf("FetchBatch: %v", err)
		}
	}
}

// TestThrottling puts a proxy in front of moto that answers the first N
// calls with 400 ThrottlingException (the AWS JSON error shape) and then
// passes calls through: the provider retries with growing, jittered
// delays (here the jitter is pinned to its maximum so the spacing can be
// checked), and gives up after MaxAttempts.
func TestThrottling(t *testing.T) {
	t.Parallel()
	c := admin(t, "")
	name := uniq(t, "throttled")
	createSecret(t, c, name, []byte("value"), true)
	other := uniq(t, "throttled")
	createSecret(t, c, other, []byte("other"), true)

	tests := []struct {
		name      string
		throttles int
		refs      []providers.Ref
		wantOK    bool
		attempts  int
	}{
		{name: "get recovers", throttles: 3, refs: []providers.Ref{ref(name)}, wantOK: true, attempts: 4},
		{name: "batch recovers", throttles: 2, refs: []providers.Ref{ref(name), ref(other)}, wantOK: true, attempts: 3},
		{name: "gives up", throttles: 1000, refs: []providers.Ref{ref(name)}, wantOK: false, attempts: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			n := 0
			px := newProxy(t, func(p *proxy) {
				p.fault = func(string, []byte) (int, string, string, bool) {
					mu.Lock()
					defer mu.Unlock()
					n++
					return 400, "ThrottlingException", "Rate exceeded", n <= tt.throttles
				}
			})
			p := newProvider(t, px.URL, func(o *Options) { o.MaxAttempts = 5 })
			p.delays.setRand(func() float64 { return 1 })
			p.delays.throttled.Base = 40 * time.Millisecond
			start := time.Now()
			secs, errs := p.FetchBatch(t.Context(), tt.refs)
			elapsed := time.Since(start)
			for i, err := range errs {
				if tt.wantOK != (err == nil) {
					t.Fatalf("%s: %v", tt.refs[i], err)
				}
				if err == nil && secs[i].Value.Len() == 0 {
					t.Errorf("%s: empty", tt.refs[i])
				}
				if err != nil {
					var ae *APIError
					if !errors.As(err, &ae) || !ae.Throttled() || ae.Attempts != tt.attempts || !strings.Contains(err.Error(), "ThrottlingException after 5 attempts") {
						t.Errorf("error %q: want ThrottlingException after %d attempts", err, tt.attempts)
					}
				}
			}
			calls := px.seen()
			if len(calls) != tt.attempts {
				t.Fatalf("%d calls reached the proxy, want %d", len(calls), tt.attempts)
			}
			var minTotal time.Duration
			for i := 1; i < len(calls); i++ {
				want := p.delays.throttled.Base << (i - 1)
				minTotal += want
				if gap := calls[i].At.Sub(calls[i-1].At); gap < want {
					t.Errorf("gap before attempt %d: %v, want at least %v (no tight loop)", i+1, gap, want)
				}
			}
			if elapsed < minTotal {
				t.Errorf("took %v, less than the %v of backoff", elapsed, minTotal)
			}
		})
	}
}

// TestRealBinary runs the keyward binary, built with this provider, as
// users do: `keyward get` of an ECS-form ARN, and `keyward exec` with
// examples/aws/exec/keyward.yaml, reaching moto through the SDK's
// standard AWS_ENDPOINT_URL_SECRETS_MANAGER and AWS_ENDPOINT_URL.
func TestRealBinary(t *testing.T) {
	t.Parallel()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "keyward")
	build := exec.CommandContext(t.Context(), "go", "build", "-trimpath", "-o", bin, "./cmd/keyward")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	home := t.TempDir()
	baseEnv := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home,
		"AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing",
		"AWS_CONFIG_FILE=" + filepath.Join(home, "config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
	}
	run := func(dir string, env []string, args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), bin, args...)
		cmd.Dir = dir
		cmd.Env = append(append([]string(nil), baseEnv...), env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return stdout.String(), stderr.String(), code
	}

	t.Run("get ECS ARN", func(t *testing.T) {
		c := admin(t, "")
		name := uniq(t, "binary")
		arn := createSecret(t, c, name, []byte(`{"api_key":"sk_test_get"}`), true).ARN
		env := []string{"AWS_REGION=" + testRegion, "AWS_ENDPOINT_URL_SECRETS_MANAGER=" + moto.Endpoint}
		out, stderr, code := run(t.TempDir(), env, "get", arn+":api_key")
		if code != 0 || out != "sk_test_get" {
			t.Fatalf("keyward get: exit %d, %d bytes out, stderr: %s", code, len(out), stderr)
		}
		_, stderr, code = run(t.TempDir(), env, "get", "awssm://"+name+"-missing")
		if code != 1 || !strings.Contains(stderr, "ResourceNotFoundException") || !strings.Contains(stderr, name+"-missing") {
			t.Errorf("keyward get of a missing secret: exit %d, stderr: %s", code, stderr)
		}
		// Zero-config exec: an environment variable holding an ECS ARN.
		out, stderr, code = run(t.TempDir(), append(env, "API_KEY="+arn+":api_key"), "exec", "--", "sh", "-c", `printf %s "$API_KEY"`)
		if code != 0 || out != "sk_test_get" {
			t.Fatalf("keyward exec with an ARN in the environment: exit %d, %d bytes out, stderr: %s", code, len(out), stderr)
		}
	})

	t.Run("exec example", func(t *testing.T) {
		// The example's secrets, in the example's region.
		c := admin(t, "eu-west-1")
		for name, value := range exampleSecrets {
			store(t, c, name, value)
		}
		dir := t.TempDir()
		src, err := os.ReadFile(filepath.Join(root, "examples", "aws", "exec", "keyward.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "keyward.yaml"), src, 0o600); err != nil {
			t.Fatal(err)
		}
		env := []string{"AWS_ENDPOINT_URL=" + moto.Endpoint}
		out, stderr, code := run(dir, env, "exec", "-c", "keyward.yaml", "--", "sh", "-c",
			`printf '%s|%s|%s' "$DATABASE_USER" "$DATABASE_PASSWORD" "$STRIPE_API_KEY"`)
		if code != 0 {
			t.Fatalf("keyward exec: exit %d, stderr: %s", code, stderr)
		}
		if want := "app|pw-example|sk_test_example"; out != want {
			t.Errorf("the child saw %d bytes, want %d", len(out), len(want))
		}
		for _, v := range exampleSecrets {
			providertest.AssertRedacted(t, stderr, v)
		}
		got, err := os.ReadFile(filepath.Join(dir, "secrets", "signing.key"))
		if err != nil || !bytes.Equal(got, exampleSecrets["prod/payments/signing-key"]) {
			t.Errorf("rendered signing.key: %d bytes, %v", len(got), err)
		}
	})
}

// exampleSecrets are what examples/aws/exec/keyward.yaml references.
var exampleSecrets = map[string][]byte{
	"prod/payments/db":          []byte(`{"username":"app","password":"pw-example","host":"db.internal"}`),
	"prod/stripe":               []byte(`{"api_key":"sk_test_example"}`),
	"prod/payments/signing-key": {0x30, 0x82, 0x01, 0x0a, 0x00, 0xff},
}

// TestMotoReset checks testenv's reset of moto. It is not parallel: Go
// runs it before any parallel test starts, so the reset wipes no other
// test's secrets.
func TestMotoReset(t *testing.T) {
	c := admin(t, "")
	name := uniq(t, "reset")
	createSecret(t, c, name, []byte("v"), true)
	if err := moto.Reset(t.Context()); err != nil {
		t.Fatal(err)
	}
	p := newProvider(t, moto.Endpoint)
	if _, err := p.Fetch(t.Context(), ref(name)); !errors.Is(err, providers.ErrNotFound) {
		t.Fatalf("after Reset: %v, want ErrNotFound", err)
	}
}
