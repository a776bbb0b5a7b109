//go:build integration

package aws

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers"
)

// moto is the one moto_server of this package's test binary.
var moto *testenv.Moto

// The emulated account and the region the tests use by default.
const (
	testRegion  = "us-east-1"
	testAccount = "123456789012"
)

// TestMain starts moto_server once for every test of the package. Without
// it the run fails: integration tests never skip silently.
func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	// Keep the machine's own AWS configuration out of the tests; the
	// static keys are what moto accepts while IAM checks are off.
	dir, err := os.MkdirTemp("", "keyward-aws-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	for k, v := range map[string]string{
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_ACCESS_KEY_ID":           "testing",
		"AWS_SECRET_ACCESS_KEY":       "testing",
		"AWS_REGION":                  testRegion,
		"AWS_EC2_METADATA_DISABLED":   "true",
	} {
		os.Setenv(k, v)
	}
	for _, k := range []string{"AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_MAX_ATTEMPTS", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"} {
		os.Unsetenv(k)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	moto, err = testenv.StartMoto(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the AWS integration tests need moto_server: %v\n", err)
		return 1
	}
	defer moto.Stop()
	return m.Run()
}

// admin returns an SDK client talking to moto directly, for arranging
// secrets. region "" is testRegion.
func admin(t testing.TB, region string) *secretsmanager.Client {
	t.Helper()
	if region == "" {
		region = testRegion
	}
	cfg, err := config.LoadDefaultConfig(t.Context(),
		config.WithRegion(region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("testing", "testing", "")),
	)
	if err != nil {
		t.Fatal(err)
	}
	return secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		o.BaseEndpoint = awssdk.String(moto.Endpoint)
	})
}

// created is what createSecret returns.
type created struct {
	ARN, VersionID string
}

// createSecret creates name holding value (a SecretString when str, else
// a SecretBinary) with the admin client.
func createSecret(t testing.TB, c *secretsmanager.Client, name string, value []byte, str bool) created {
	t.Helper()
	in := &secretsmanager.CreateSecretInput{Name: awssdk.String(name)}
	if str {
		in.SecretString = awssdk.String(string(value))
	} else {
		in.SecretBinary = value
	}
	out, err := c.CreateSecret(t.Context(), in)
	if err != nil {
		t.Fatalf("CreateSecret %s: %v", name, err)
	}
	return created{ARN: awssdk.ToString(out.ARN), VersionID: awssdk.ToString(out.VersionId)}
}

// putValue stores a new version of name; stages nil moves AWSCURRENT.
func putValue(t testing.TB, c *secretsmanager.Client, name string, value []byte, str bool, stages ...string) string {
	t.Helper()
	in := &secretsmanager.PutSecretValueInput{SecretId: awssdk.String(name), VersionStages: stages}
	if str {
		in.SecretString = awssdk.String(string(value))
	} else {
		in.SecretBinary = value
	}
	out, err := c.PutSecretValue(t.Context(), in)
	if err != nil {
		t.Fatalf("PutSecretValue %s: %v", name, err)
	}
	return awssdk.ToString(out.VersionId)
}

// newProvider returns a provider whose endpoint is endpoint (moto or a
// proxy in front of it) and closes it at the end of the test.
func newProvider(t testing.TB, endpoint string, mod ...func(*Options)) *Provider {
	t.Helper()
	opts := Options{Region: testRegion, Endpoint: endpoint}
	for _, f := range mod {
		f(&opts)
	}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func mustParse(t testing.TB, s string) providers.Ref {
	t.Helper()
	r, err := providers.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ref(name string, params ...string) providers.Ref {
	r := providers.Ref{Scheme: KindName, Path: name}
	for i := 0; i+1 < len(params); i += 2 {
		if r.Params == nil {
			r.Params = map[string]string{}
		}
		r.Params[params[i]] = params[i+1]
	}
	return r
}

// proxy is a reverse proxy in front of moto that counts the Secrets
// Manager operations it forwards, and can add latency to every call or
// answer some calls itself with an AWS JSON error.
type proxy struct {
	URL string

	// latency is added before forwarding each call.
	latency time.Duration
	// fault, when set, may answer a call instead of moto: it returns
	// the HTTP status, the AWS error code and message, and true.
	fault func(op string, body []byte) (status int, code, msg string, ok bool)

	mu    sync.Mutex
	calls []call
}

// call is one request the proxy saw.
type call struct {
	Op      string
	At      time.Time
	Faulted bool
	Body    []byte
}

func newProxy(t testing.TB, setup ...func(*proxy)) *proxy {
	t.Helper()
	target, err := url.Parse(moto.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{}
	for _, f := range setup {
		f(p)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "secretsmanager.")
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		c := call{Op: op, At: time.Now(), Body: body}
		if p.latency > 0 {
			select {
			case <-time.After(p.latency):
			case <-r.Context().Done():
				return
			}
		}
		if p.fault != nil {
			if status, code, msg, ok := p.fault(op, body); ok {
				c.Faulted = true
				p.record(c)
				awsError(w, status, code, msg)
				return
			}
		}
		p.record(c)
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *proxy) record(c call) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, c)
}

// count returns how many calls of op the proxy saw ("" counts all).
func (p *proxy) count(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.calls {
		if op == "" || c.Op == op {
			n++
		}
	}
	return n
}

// seen returns a copy of the calls so far.
func (p *proxy) seen() []call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]call(nil), p.calls...)
}

// reset forgets the calls counted so far.
func (p *proxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = nil
}

// awsError writes an error in the shape of the AWS JSON 1.1 protocol.
func awsError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Errortype", code)
	w.Header().Set("X-Amzn-Requestid", "00000000-0000-0000-0000-000000000000")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
}

// secretIDs returns the secret ids a request body names.
func secretIDs(body []byte) []string {
	var in struct {
		SecretId     string
		SecretIdList []string
	}
	_ = json.Unmarshal(body, &in)
	if in.SecretId != "" {
		return []string{in.SecretId}
	}
	return in.SecretIdList
}
