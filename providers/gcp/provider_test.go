package gcp

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/providertest"
)

// fakeClient is a secretClient made of function fields.
type fakeClient struct {
	access func(context.Context, *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error)
	get    func(context.Context, *secretmanagerpb.GetSecretVersionRequest) (*secretmanagerpb.SecretVersion, error)

	mu     sync.Mutex
	names  []string
	closes int
}

var _ secretClient = (*fakeClient)(nil)

func (f *fakeClient) AccessSecretVersion(ctx context.Context, req *secretmanagerpb.AccessSecretVersionRequest, _ ...gax.CallOption) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	f.record(req.GetName())
	return f.access(ctx, req)
}

func (f *fakeClient) GetSecretVersion(ctx context.Context, req *secretmanagerpb.GetSecretVersionRequest, _ ...gax.CallOption) (*secretmanagerpb.SecretVersion, error) {
	f.record(req.GetName())
	if f.get == nil {
		return enabled(resolvedName, created), nil
	}
	return f.get(ctx, req)
}

// resolvedName and created describe the version a fakeClient without a
// get function reports for every name.
const resolvedName = "projects/100/secrets/db/versions/4"

var created = time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)

// enabled is the metadata of an enabled version.
func enabled(name string, at time.Time) *secretmanagerpb.SecretVersion {
	return &secretmanagerpb.SecretVersion{Name: name, State: secretmanagerpb.SecretVersion_ENABLED, CreateTime: timestamppb.New(at)}
}

func (f *fakeClient) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closes++
	return nil
}

func (f *fakeClient) record(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.names = append(f.names, name)
}

// unitProvider returns a Provider whose client is fc, and counts dials.
func unitProvider(t *testing.T, o Options, fc *fakeClient) (*Provider, *int) {
	t.Helper()
	p, err := New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	dials := new(int)
	p.dial = func(context.Context) (secretClient, error) {
		*dials++
		return fc, nil
	}
	return p, dials
}

const secretValue = "s3cr3t-value-never-printed"

func payload(data string) *secretmanagerpb.AccessSecretVersionResponse {
	crc := int64(crc32.Checksum([]byte(data), castagnoli))
	return &secretmanagerpb.AccessSecretVersionResponse{
		Name:    resolvedName,
		Payload: &secretmanagerpb.SecretPayload{Data: []byte(data), DataCrc32C: &crc},
	}
}

func ref(t *testing.T, s string) providers.Ref {
	t.Helper()
	r, err := providers.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestFetch(t *testing.T) {
	t.Parallel()
	fc := &fakeClient{access: func(context.Context, *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
		return payload(`{"user":"app","password":"` + secretValue + `"}`), nil
	}}
	p, dials := unitProvider(t, Options{Project: "default-proj"}, fc)
	if *dials != 0 {
		t.Fatalf("New dialled")
	}
	for _, tt := range []struct{ ref, name string }{
		{"gcpsm://my-project/db", "projects/my-project/secrets/db/versions/latest"},
		{"gcpsm://db?version=4", "projects/default-proj/secrets/db/versions/4"},
		{"sm://other-proj/db#prod", "projects/other-proj/secrets/db/versions/prod"},
	} {
		sec, err := p.Fetch(t.Context(), ref(t, tt.ref).Whole())
		if err != nil {
			t.Fatalf("Fetch(%s): %v", tt.ref, err)
		}
		if want := resolvedName + "@2026-03-01T12:00:00.123456Z"; sec.Version != want {
			t.Errorf("Version = %q, want %q", sec.Version, want)
		}
		if v, err := sec.Field("password"); err != nil || v.Reveal() != secretValue {
			t.Errorf("Field(password) = %d bytes, %v", v.Len(), err)
		}
		// The version is resolved first, then exactly that one is read.
		if got := fc.names[len(fc.names)-2:]; got[0] != tt.name || got[1] != resolvedName {
			t.Errorf("Fetch(%s) asked for %v, want [%s %s]", tt.ref, got, tt.name, resolvedName)
		}
	}
	if *dials != 1 {
		t.Errorf("%d dials for three fetches, want 1", *dials)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if fc.closes != 1 {
		t.Errorf("client closed %d times", fc.closes)
	}
	if _, err := p.Fetch(t.Context(), ref(t, "gcpsm://my-project/db")); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Fetch after Close = %v, want a closed error", err)
	}
}

func TestCloseUnusedDoesNotDial(t *testing.T) {
	t.Parallel()
	p, dials := unitProvider(t, Options{}, &fakeClient{})
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if *dials != 0 {
		t.Errorf("Close dialled")
	}
}

func TestDialErrorIsRetriedNextTime(t *testing.T) {
	t.Parallel()
	p, err := New(Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	fc := &fakeClient{access: func(context.Context, *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
		return payload(secretValue), nil
	}}
	calls := 0
	p.dial = func(context.Context) (secretClient, error) {
		calls++
		if calls == 1 {
			return nil, errors.New("credentials: could not find default credentials")
		}
		return fc, nil
	}
	r := ref(t, "gcpsm://my-project/db")
	_, err = p.Fetch(t.Context(), r)
	if err == nil || !strings.Contains(err.Error(), "could not find default credentials") || !strings.Contains(err.Error(), "projects/my-project/secrets/db/versions/latest") {
		t.Fatalf("first Fetch = %v, want the dial error naming the secret", err)
	}
	if _, err := p.Fetch(t.Context(), r); err != nil {
		t.Fatalf("second Fetch: %v", err)
	}
}

func TestNoProject(t *testing.T) {
	t.Parallel()
	p, dials := unitProvider(t, Options{}, &fakeClient{})
	_, err := p.Fetch(t.Context(), ref(t, "gcpsm://db"))
	if !errors.Is(err, providers.ErrInvalidReference) || !strings.Contains(err.Error(), "names no project") {
		t.Errorf("Fetch = %v, want a no-project error", err)
	}
	if *dials != 0 {
		t.Errorf("dialled for an invalid reference")
	}
}

func TestFetchChecksum(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		resp    func() *secretmanagerpb.AccessSecretVersionResponse
		wantErr error
	}{
		{"match", func() *secretmanagerpb.AccessSecretVersionResponse { return payload(secretValue) }, nil},
		{"mismatch", func() *secretmanagerpb.AccessSecretVersionResponse {
			r := payload(secretValue)
			r.Payload.DataCrc32C = proto.Int64(*r.Payload.DataCrc32C + 1)
			return r
		}, ErrChecksumMismatch},
		{"flipped bit", func() *secretmanagerpb.AccessSecretVersionResponse {
			r := payload(secretValue)
			r.Payload.Data[3] ^= 1
			return r
		}, ErrChecksumMismatch},
		{"empty payload", func() *secretmanagerpb.AccessSecretVersionResponse { return payload("") }, nil},
		{"no checksum sent", func() *secretmanagerpb.AccessSecretVersionResponse {
			r := payload(secretValue)
			r.Payload.DataCrc32C = nil
			return r
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := tt.resp()
			data := resp.Payload.Data
			fc := &fakeClient{access: func(context.Context, *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
				return resp, nil
			}}
			p, _ := unitProvider(t, Options{}, fc)
			sec, err := p.Fetch(t.Context(), ref(t, "gcpsm://my-project/db"))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				if !bytes.Equal(sec.Value.Bytes(), data) {
					t.Errorf("Fetch returned other bytes")
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Fetch = %v, want %v", err, tt.wantErr)
			}
			if sec.Value.Len() != 0 {
				t.Errorf("Fetch returned a value with the error")
			}
			if !strings.Contains(err.Error(), "projects/my-project/secrets/db/versions/latest") {
				t.Errorf("error %q does not name the secret", err)
			}
			providertest.AssertRedacted(t, err.Error(), []byte(secretValue))
		})
	}
}

// TestCallErrors maps each gRPC answer to the error Fetch and ProbeVersion
// return: the sentinel, the secret's name and the code in the message.
func TestCallErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    error
		is     []error
		isNot  []error
		phrase []string
	}{
		{"not found", status.Error(codes.NotFound, "Secret [projects/100/secrets/db] not found or has no versions."),
			[]error{providers.ErrNotFound}, []error{providers.ErrPermissionDenied}, []string{"gRPC NotFound"}},
		{"permission denied", status.Error(codes.PermissionDenied, "Permission 'secretmanager.versions.access' denied for resource 'projects/my-project/secrets/db/versions/latest' (or it may not exist)."),
			[]error{providers.ErrPermissionDenied}, []error{providers.ErrNotFound}, []string{"gRPC PermissionDenied", "roles/secretmanager.secretAccessor"}},
		{"unauthenticated", status.Error(codes.Unauthenticated, "Request had invalid authentication credentials."),
			[]error{providers.ErrPermissionDenied}, nil, []string{"gRPC Unauthenticated", "Application Default Credentials"}},
		{"disabled", status.Error(codes.FailedPrecondition, "Secret Version [projects/100/secrets/db/versions/4] is in DISABLED state."),
			[]error{ErrVersionDisabled}, []error{providers.ErrNotFound, providers.ErrPermissionDenied}, []string{"gRPC FailedPrecondition", "versions/4", "disabled"}},
		{"destroyed", status.Error(codes.FailedPrecondition, "Secret Version [projects/100/secrets/db/versions/4] is in DESTROYED state."),
			[]error{ErrVersionDestroyed, providers.ErrNotFound}, []error{ErrVersionDisabled}, []string{"gRPC FailedPrecondition", "destroyed"}},
		{"other precondition", status.Error(codes.FailedPrecondition, "something else"),
			nil, []error{ErrVersionDisabled, ErrVersionDestroyed, providers.ErrNotFound}, []string{"gRPC FailedPrecondition", "something else"}},
		{"invalid argument", status.Error(codes.InvalidArgument, "bad name"),
			[]error{providers.ErrInvalidReference}, nil, []string{"gRPC InvalidArgument", "bad name"}},
		{"internal", status.Error(codes.Internal, strings.Repeat("x", 500)),
			nil, []error{providers.ErrNotFound, providers.ErrPermissionDenied}, []string{"gRPC Internal", "…"}},
		{"not a status", errors.New("connection reset"),
			nil, []error{providers.ErrNotFound}, []string{"gRPC Unknown", "connection reset"}},
		{"credential source output", status.Error(codes.Unavailable, `connection error: desc = "transport: per-RPC creds failed due to error: credentials: executable output is not valid JSON: {\"id_token\": \"eyJhbGciOiJSUzI1NiJ9.tokenbody\"}"`),
			[]error{providers.ErrPermissionDenied}, []error{providers.ErrNotFound}, []string{"gRPC Unavailable", "details not shown"}},
		{"deadline from server", status.Error(codes.DeadlineExceeded, "deadline"),
			[]error{context.DeadlineExceeded}, nil, []string{"gRPC DeadlineExceeded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fc := &fakeClient{
				access: func(context.Context, *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
					return nil, tt.err
				},
				get: func(context.Context, *secretmanagerpb.GetSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
					return nil, tt.err
				},
			}
			p, _ := unitProvider(t, Options{}, fc)
			r := ref(t, "gcpsm://my-project/db")
			_, ferr := p.Fetch(t.Context(), r)
			_, perr := p.ProbeVersion(t.Context(), r)
			for _, err := range []error{ferr, perr} {
				if err == nil {
					t.Fatal("no error")
				}
				if strings.Contains(err.Error(), "eyJ") || strings.Contains(err.Error(), "tokenbody") {
					t.Fatalf("a credential source's output is in the error (%d bytes)", len(err.Error()))
				}
				for _, want := range tt.is {
					if !errors.Is(err, want) {
						t.Errorf("%q does not wrap %q", err, want)
					}
				}
				for _, not := range tt.isNot {
					if errors.Is(err, not) {
						t.Errorf("%q wraps %q", err, not)
					}
				}
				for _, ph := range append(tt.phrase, "projects/my-project/secrets/db/versions/latest") {
					if !strings.Contains(err.Error(), ph) {
						t.Errorf("%q does not mention %q", err, ph)
					}
				}
				if len(err.Error()) > 600 {
					t.Errorf("error is %d bytes long", len(err.Error()))
				}
			}
		})
	}
}

func TestCancelledContext(t *testing.T) {
	t.Parallel()
	fc := &fakeClient{access: func(ctx context.Context, _ *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
		return nil, status.FromContextError(ctx.Err()).Err()
	}}
	p, dials := unitProvider(t, Options{}, fc)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := p.Fetch(ctx, ref(t, "gcpsm://my-project/db")); !errors.Is(err, context.Canceled) {
		t.Errorf("Fetch = %v, want context.Canceled", err)
	}
	if _, err := p.ProbeVersion(ctx, ref(t, "gcpsm://my-project/db")); !errors.Is(err, context.Canceled) {
		t.Errorf("ProbeVersion = %v, want context.Canceled", err)
	}
	if *dials != 0 {
		t.Errorf("dialled with a cancelled context")
	}
}

func TestProbeVersionStates(t *testing.T) {
	t.Parallel()
	const resolved = "projects/100/secrets/db/versions/9"
	tests := []struct {
		state   secretmanagerpb.SecretVersion_State
		wantErr error
	}{
		{secretmanagerpb.SecretVersion_ENABLED, nil},
		{secretmanagerpb.SecretVersion_DISABLED, ErrVersionDisabled},
		{secretmanagerpb.SecretVersion_DESTROYED, ErrVersionDestroyed},
	}
	for _, tt := range tests {
		t.Run(tt.state.String(), func(t *testing.T) {
			t.Parallel()
			fc := &fakeClient{get: func(context.Context, *secretmanagerpb.GetSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
				return &secretmanagerpb.SecretVersion{Name: resolved, State: tt.state}, nil
			}}
			p, _ := unitProvider(t, Options{}, fc)
			got, err := p.ProbeVersion(t.Context(), ref(t, "gcpsm://my-project/db"))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("ProbeVersion = %q, %v; want error %v", got, err, tt.wantErr)
			}
			if err == nil && got != resolved {
				t.Errorf("ProbeVersion = %q, want %q", got, resolved)
			}
			if err != nil && !strings.Contains(err.Error(), resolved) {
				t.Errorf("error %q does not name the resolved version", err)
			}
			if fc.names[0] != "projects/my-project/secrets/db/versions/latest" {
				t.Errorf("asked for %s", fc.names[0])
			}
		})
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		o       Options
		wantErr string
	}{
		{Options{}, ""},
		{Options{Project: "p", Endpoint: "secretmanager.example.internal:443"}, ""},
		{Options{Endpoint: "127.0.0.1:9000", Insecure: true}, ""},
		{Options{Endpoint: "[::1]:9000", Insecure: true}, ""},
		{Options{Endpoint: "localhost:9000", Insecure: true}, ""},
		{Options{Insecure: true}, "loopback"},
		{Options{Endpoint: "10.0.0.1:9000", Insecure: true}, "loopback"},
		{Options{Endpoint: "secretmanager.example.internal:443", Insecure: true}, "loopback"},
		{Options{Endpoint: "https://secretmanager.example.internal"}, "HOST:PORT"},
		{Options{Endpoint: "secretmanager.example.internal"}, "HOST:PORT"},
	}
	for _, tt := range tests {
		_, err := New(tt.o, nil)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("New(%+v): %v", tt.o, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("New(%+v) = %v, want an error mentioning %q", tt.o, err, tt.wantErr)
		}
	}
}

// TestNewInstance checks the kind's factory: options decoded strictly, the
// default project from the environment, nothing dialled.
func TestNewInstance(t *testing.T) {
	t.Parallel()
	k, ok := providers.LookupKind(KindName)
	if !ok {
		t.Fatal("kind not registered")
	}
	env := map[string]string{"GOOGLE_CLOUD_PROJECT": "env-project", "CLOUDSDK_CORE_PROJECT": "gcloud-project"}
	tests := []struct {
		name    string
		decode  func(any) error
		env     map[string]string
		project string
	}{
		{"env", nil, env, "env-project"},
		{"gcloud env", nil, map[string]string{"CLOUDSDK_CORE_PROJECT": "gcloud-project"}, "gcloud-project"},
		{"option wins", func(v any) error { v.(*Options).Project = "opt-project"; return nil }, env, "opt-project"},
		{"none", nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := k.New(providers.Instance{Name: "gcpsm", Kind: KindName, Decode: tt.decode,
				Getenv: func(k string) string { return tt.env[k] }, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if got := p.(*Provider).project; got != tt.project {
				t.Errorf("project = %q, want %q", got, tt.project)
			}
		})
	}
	_, err := k.New(providers.Instance{Name: "gcpsm", Kind: KindName, Decode: func(any) error { return errors.New(`line 3: unknown key "projcet"`) }})
	if err == nil || !strings.Contains(err.Error(), "projcet") {
		t.Errorf("New with a bad option = %v", err)
	}
}

// TestRecreatedVersion: a secret deleted and created again starts at the
// same version number; its create_time tells the new version from the
// old one, so probe and fetch report a new identity.
func TestRecreatedVersion(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	at := created
	fc := &fakeClient{
		access: func(context.Context, *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
			return payload(secretValue), nil
		},
		get: func(context.Context, *secretmanagerpb.GetSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
			mu.Lock()
			defer mu.Unlock()
			return enabled(resolvedName, at), nil
		},
	}
	p, _ := unitProvider(t, Options{}, fc)
	r := ref(t, "gcpsm://my-project/db")
	before, err := p.Fetch(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	at = at.Add(time.Hour)
	mu.Unlock()
	probed, err := p.ProbeVersion(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	after, err := p.Fetch(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	if probed == before.Version || after.Version != probed {
		t.Errorf("versions: fetched %q, then probed %q and fetched %q; want a new identity, the same for both", before.Version, probed, after.Version)
	}
}

// TestAccessOnlyRole: credentials that may read payloads but not version
// metadata (roles/secretmanager.secretAccessor alone) still read, say so
// once, and probe by reading, with a version that changes with the
// payload.
func TestAccessOnlyRole(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	gets := 0
	data := "first-payload-value"
	fc := &fakeClient{
		access: func(context.Context, *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
			mu.Lock()
			defer mu.Unlock()
			return payload(data), nil
		},
		get: func(context.Context, *secretmanagerpb.GetSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
			mu.Lock()
			defer mu.Unlock()
			gets++
			return nil, status.Error(codes.PermissionDenied, "Permission 'secretmanager.versions.get' denied")
		},
	}
	var logs bytes.Buffer
	p, _ := unitProvider(t, Options{}, fc)
	p.logger = slog.New(slog.NewTextHandler(&logs, nil))
	r := ref(t, "gcpsm://my-project/db")
	sec, err := p.Fetch(t.Context(), r)
	if err != nil || sec.Value.Reveal() != data {
		t.Fatalf("Fetch with access only: %v", err)
	}
	probed, err := p.ProbeVersion(t.Context(), r)
	if err != nil || probed != sec.Version {
		t.Fatalf("ProbeVersion = %q, %v; Fetch reported %q", probed, err, sec.Version)
	}
	mu.Lock()
	data = "second-payload-value"
	mu.Unlock()
	moved, err := p.ProbeVersion(t.Context(), r)
	if err != nil || moved == probed {
		t.Errorf("ProbeVersion after the payload changed = %q, %v; was %q", moved, err, probed)
	}
	mu.Lock()
	defer mu.Unlock()
	if gets != 1 {
		t.Errorf("%d GetSecretVersion calls, want 1: after the first denial, only payloads are read", gets)
	}
	if n := strings.Count(logs.String(), "secretmanager.versions.get"); n != 1 {
		t.Errorf("the missing permission was logged %d times, want once:\n%s", n, logs.String())
	}
	providertest.AssertRedacted(t, logs.String(), []byte("first-payload-value"), []byte("second-payload-value"))
}

// TestAccessOnlyRoleProbeFirst: a probe that is the provider's first
// call under a role without secretmanager.versions.get asks for version
// metadata once, then reads the payload.
func TestAccessOnlyRoleProbeFirst(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	gets, accesses := 0, 0
	fc := &fakeClient{
		access: func(context.Context, *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
			mu.Lock()
			defer mu.Unlock()
			accesses++
			return payload("probe-first-value"), nil
		},
		get: func(context.Context, *secretmanagerpb.GetSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
			mu.Lock()
			defer mu.Unlock()
			gets++
			return nil, status.Error(codes.PermissionDenied, "Permission 'secretmanager.versions.get' denied")
		},
	}
	p, _ := unitProvider(t, Options{}, fc)
	r := ref(t, "gcpsm://my-project/db")
	probed, err := p.ProbeVersion(t.Context(), r)
	if err != nil || probed == "" {
		t.Fatalf("ProbeVersion with access only = %q, %v", probed, err)
	}
	sec, err := p.Fetch(t.Context(), r)
	if err != nil || sec.Version != probed {
		t.Fatalf("Fetch = %q, %v; ProbeVersion reported %q", sec.Version, err, probed)
	}
	mu.Lock()
	defer mu.Unlock()
	if gets != 1 || accesses != 2 {
		t.Errorf("%d GetSecretVersion and %d AccessSecretVersion calls, want 1 and 2: the denial is not asked twice", gets, accesses)
	}
}

func TestPinned(t *testing.T) {
	t.Parallel()
	p, _ := unitProvider(t, Options{}, &fakeClient{})
	for s, want := range map[string]bool{
		"gcpsm://my-project/db":                                false,
		"gcpsm://my-project/db?version=3":                      true,
		"gcpsm://my-project/db?version=latest":                 false,
		"gcpsm://my-project/db?version=current":                false,
		"gcpsm://projects/my-project/secrets/db/versions/12":   true,
		"gcpsm://projects/my-project/secrets/db/versions/prod": false,
		"sm://my-project/db#2":                                 true,
		"gcpsm://my-project/db?version=0":                      false,
	} {
		if got := p.Pinned(ref(t, s)); got != want {
			t.Errorf("Pinned(%s) = %v, want %v", s, got, want)
		}
	}
}
