package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/keyward/keyward/providers"
	_ "github.com/keyward/keyward/providers/file" // credential references in AppRole tests
	"github.com/keyward/keyward/providers/providertest"
)

func mustParse(t testing.TB, s string) providers.Ref {
	t.Helper()
	r, err := providers.Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return r
}

func TestCheckRef(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ref string
		ok  bool
	}{
		{"vault://secret/app", true},
		{"vault://secret/app#password", true},
		{"vault://secret/app?version=3", true},
		{"vault:secret/data/app#key", true},
		{"vault:secret/data/app#key#2", true},
		{"vault://database/creds/ro", true},
		{"vault://pki/issue/web?common_name=web.internal&ttl=1h", true},
		{"vault://secret/app?version=0", false},
		{"vault://secret/app?version=-1", false},
		{"vault://secret/app?version=latest", false},
		{"vault://secret/app?version=2&ttl=1h", false},
		{"vault:///secret/app", false},
		{"vault://secret//app", false},
		{"vault://secret/../sys/raw", false},
		{"vault://secret/./app", false},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			t.Parallel()
			err := CheckRef(mustParse(t, tt.ref))
			if tt.ok && err != nil {
				t.Errorf("CheckRef: %v", err)
			}
			if !tt.ok && !errors.Is(err, providers.ErrInvalidReference) {
				t.Errorf("CheckRef = %v, want ErrInvalidReference", err)
			}
		})
	}
}

func TestKindRegistered(t *testing.T) {
	t.Parallel()
	k, ok := providers.LookupKind(KindName)
	if !ok {
		t.Fatal("kind vault not registered")
	}
	set := providers.NewSet(providers.Instance{}, nil)
	if err := set.CheckRef(mustParse(t, "vault://pki/issue/web?common_name=a&ttl=1h")); err != nil {
		t.Errorf("Set.CheckRef of write parameters: %v", err)
	}
	err := set.CheckRef(mustParse(t, "vault://secret/app?colour=red"))
	if !errors.Is(err, providers.ErrInvalidReference) {
		t.Errorf("Set.CheckRef of an unknown parameter = %v, want ErrInvalidReference", err)
	}
	if len(k.Params) != len(WriteParams)+1 {
		t.Errorf("Params = %v", k.Params)
	}
}

func TestResolveSettings(t *testing.T) {
	t.Parallel()
	yes, no, three := true, false, 3
	tests := []struct {
		name    string
		opts    Options
		env     map[string]string
		check   func(t *testing.T, s settings)
		wantErr string
	}{
		{
			name: "defaults",
			check: func(t *testing.T, s settings) {
				if s.address != defaultAddress || s.timeout != defaultTimeout || s.maxRetries != defaultMaxRetries || s.auth.Method != MethodToken {
					t.Errorf("settings = %+v", s)
				}
			},
		},
		{
			name: "environment",
			env: map[string]string{
				envAddr: "https://vault.env:8200", envNamespace: "team-a", envCACert: "ca.pem", envCAPath: "/etc/ca",
				envClientCert: "/c.pem", envClientKey: "/k.pem", envServerName: "vault.internal", envSkipVerify: "true",
				envClientTimeout: "7", envMaxRetries: "5",
			},
			check: func(t *testing.T, s settings) {
				if s.address != "https://vault.env:8200" || s.namespace != "team-a" || s.tls.CAPath != "/etc/ca" ||
					s.tls.ClientCert != "/c.pem" || s.tls.TLSServerName != "vault.internal" || !s.tls.Insecure ||
					s.timeout != 7*time.Second || s.maxRetries != 5 || s.skipVerifyFrom != envSkipVerify {
					t.Errorf("settings = %+v", s)
				}
				if !filepath.IsAbs(s.tls.CACert) || filepath.Base(s.tls.CACert) != "ca.pem" {
					t.Errorf("relative CA cert not joined to the base directory: %q", s.tls.CACert)
				}
			},
		},
		{
			name: "options win over environment",
			opts: Options{Address: "https://vault.opt:8200", Namespace: "ops", Timeout: time.Second, MaxRetries: &three,
				TLS: TLSOptions{SkipVerify: &no}},
			env: map[string]string{envAddr: "https://vault.env:8200", envNamespace: "team-a", envSkipVerify: "1", envClientTimeout: "9s"},
			check: func(t *testing.T, s settings) {
				if s.address != "https://vault.opt:8200" || s.namespace != "ops" || s.tls.Insecure || s.timeout != time.Second || s.maxRetries != 3 {
					t.Errorf("settings = %+v", s)
				}
			},
		},
		{name: "skip verify option", opts: Options{TLS: TLSOptions{SkipVerify: &yes}}, check: func(t *testing.T, s settings) {
			if !s.tls.Insecure || s.skipVerifyFrom != "tls.skip_verify" {
				t.Errorf("settings = %+v", s)
			}
		}},
		{name: "bad skip verify", env: map[string]string{envSkipVerify: "maybe"}, wantErr: "VAULT_SKIP_VERIFY is not a boolean"},
		{name: "bad timeout", env: map[string]string{envClientTimeout: "soon"}, wantErr: "VAULT_CLIENT_TIMEOUT"},
		{name: "bad retries", env: map[string]string{envMaxRetries: "x"}, wantErr: "VAULT_MAX_RETRIES"},
		{name: "client cert without key", opts: Options{TLS: TLSOptions{ClientCert: "/c.pem"}}, wantErr: "client_cert and client_key"},
		{name: "token file method implied", opts: Options{Auth: AuthOptions{TokenFile: "tok"}}, check: func(t *testing.T, s settings) {
			if s.auth.Method != MethodTokenFile || !filepath.IsAbs(s.auth.TokenFile) {
				t.Errorf("auth = %+v", s.auth)
			}
		}},
		{name: "approle mount default", opts: Options{Auth: AuthOptions{Method: "approle", RoleID: "r", SecretIDFile: "/sid"}}, check: func(t *testing.T, s settings) {
			if s.auth.Mount != "approle" {
				t.Errorf("mount = %q", s.auth.Mount)
			}
		}},
		{name: "custom mount", opts: Options{Auth: AuthOptions{Method: "jwt", Mount: "/oidc/", JWTFile: "/jwt"}}, check: func(t *testing.T, s settings) {
			if s.auth.Mount != "oidc" {
				t.Errorf("mount = %q", s.auth.Mount)
			}
		}},
		{name: "unknown method", opts: Options{Auth: AuthOptions{Method: "userpass"}}, wantErr: `unknown method "userpass"`},
		{name: "approle without role id", opts: Options{Auth: AuthOptions{Method: "approle", SecretIDFile: "/s"}}, wantErr: "exactly one of role_id and role_id_file"},
		{name: "approle literal secret id", opts: Options{Auth: AuthOptions{Method: "approle", RoleID: "r", SecretID: "s3cr3t-literal"}}, wantErr: "secret_id must be a reference"},
		{name: "approle both secret ids", opts: Options{Auth: AuthOptions{Method: "approle", RoleID: "r", SecretID: "file:/s", SecretIDFile: "/s"}}, wantErr: "not both"},
		{name: "kubernetes without role", opts: Options{Auth: AuthOptions{Method: "kubernetes"}}, wantErr: "needs role"},
		{name: "jwt without file", opts: Options{Auth: AuthOptions{Method: "jwt", Role: "r"}}, wantErr: "needs jwt_file"},
		{name: "option of another method", opts: Options{Auth: AuthOptions{Method: "kubernetes", Role: "r", RoleIDFile: "/r"}}, wantErr: "role_id_file does not apply to method kubernetes"},
		{name: "token with role", opts: Options{Auth: AuthOptions{Method: "token", Role: "r"}}, wantErr: "role does not apply"},
		{name: "negative retries", opts: Options{MaxRetries: func() *int { n := -1; return &n }()}, wantErr: "max_retries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			getenv := func(k string) string { return tt.env[k] }
			s, err := resolveSettings(tt.opts, getenv, "/base")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}

func TestNewWarnsWhenVerificationIsOff(t *testing.T) {
	t.Parallel()
	logs := &logBuffer{}
	env := map[string]string{envAddr: "https://127.0.0.1:1", envSkipVerify: "true", envToken: "hvs.not-used-in-logs"}
	p, err := New(providers.Instance{
		Name: "vault-lab", Kind: KindName, Getenv: func(k string) string { return env[k] },
		Logger: slogTo(logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	out := logs.String()
	if !strings.Contains(out, "DISABLED") || !strings.Contains(out, "VAULT_SKIP_VERIFY") || !strings.Contains(out, "vault-lab") {
		t.Errorf("no loud warning for VAULT_SKIP_VERIFY: %q", out)
	}
	if strings.Contains(out, "hvs.not-used-in-logs") {
		t.Errorf("log holds the token: %q", out)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	_, err := New(providers.Instance{Name: "v", Kind: KindName, Decode: func(into any) error {
		o := into.(*Options)
		o.Auth.Method = "ldap"
		return nil
	}})
	if err == nil || !strings.Contains(err.Error(), `unknown method "ldap"`) {
		t.Errorf("New = %v", err)
	}
	_, err = New(providers.Instance{Name: "v", Kind: KindName, Getenv: func(k string) string {
		if k == envCACert {
			return "/nonexistent/ca.pem"
		}
		return ""
	}})
	if err == nil || !strings.Contains(err.Error(), "tls") {
		t.Errorf("New with a missing CA file = %v", err)
	}
}

// kvStore is a fake Vault with a KV v2 mount at secret/, a KV v1 mount at
// kv1/ and a database mount, for the read and error tests.
func kvStore(t testing.TB) *fakeAPI {
	return &fakeAPI{handle: func(r request) (*api.Secret, error) {
		switch {
		case strings.HasPrefix(r.path, "sys/internal/ui/mounts/secret/"):
			return mountAnswer(t, "secret/", "kv", "2"), nil
		case strings.HasPrefix(r.path, "sys/internal/ui/mounts/kv1/"):
			return mountAnswer(t, "kv1/", "kv", "1"), nil
		case strings.HasPrefix(r.path, "sys/internal/ui/mounts/database/"):
			return mountAnswer(t, "database/", "database", ""), nil
		case strings.HasPrefix(r.path, "sys/internal/ui/mounts/"):
			return nil, vaultErr(403, `preflight capability check returned 403, please ensure client's policies grant access to path "nope/"`)
		case r.path == "auth/token/lookup-self":
			return lookupSelfOK(t), nil
		case r.path == "secret/data/app":
			if v := r.query.Get("version"); v == "1" {
				return kv2Answer(t, map[string]any{"password": "old-pass-value-1"}, 1), nil
			} else if v == "7" {
				return secretJSON(t, `{"data":{"data":null,"metadata":{"version":7,"deletion_time":"2026-01-01T00:00:00Z","destroyed":false}}}`), vaultErr(404)
			} else if v != "" {
				return nil, vaultErr(404)
			}
			return kv2Answer(t, map[string]any{"password": "current-pass-2", "user": "app", "port": 5432, "nested": map[string]any{"a": "b"}}, 2), nil
		case r.path == "secret/data/denied":
			return nil, vaultErr(403, "1 error occurred:\n\t* permission denied\n\n")
		case r.path == "secret/metadata/app":
			return secretJSON(t, `{"data":{"current_version":2,"versions":{"1":{"created_time":"`+createdTime(1)+`","deletion_time":"","destroyed":false},"2":{"created_time":"`+createdTime(2)+`","deletion_time":"","destroyed":false}}}}`), nil
		case r.path == "secret/metadata/gone":
			return secretJSON(t, `{"data":{"current_version":3,"versions":{"3":{"deletion_time":"2026-01-01T00:00:00Z","destroyed":false}}}}`), nil
		case r.path == "kv1/app":
			return secretJSON(t, `{"data":{"password":"kv1-pass-value"},"lease_duration":2764800}`), nil
		case r.path == "kv1/sealed":
			return nil, vaultErr(503, "Vault is sealed")
		case r.path == "database/creds/ro" && r.method == http.MethodGet:
			return secretJSON(t, `{"lease_id":"database/creds/ro/abc","lease_duration":60,"renewable":true,"data":{"username":"v-ro-x","password":"dyn-pass-value"}}`), nil
		case r.path == "database/creds/nope":
			return nil, vaultErr(400, "unknown role: nope")
		}
		return nil, vaultErr(404)
	}}
}

func TestFetch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ref, field, want, version string
		apiPath                   string
	}{
		{ref: "vault://secret/app", field: "password", want: "current-pass-2", version: "2@2026-01-01T00:00:02.123456789Z", apiPath: "secret/data/app"},
		{ref: "vault://secret/app#port", field: "port", want: "5432", version: "2@2026-01-01T00:00:02.123456789Z"},
		{ref: "vault://secret/app", field: "nested.a", want: "b", version: "2@2026-01-01T00:00:02.123456789Z"},
		{ref: "vault://secret/app?version=1", field: "password", want: "old-pass-value-1", version: "1@2026-01-01T00:00:01.123456789Z"},
		{ref: "vault:secret/data/app#password", field: "password", want: "current-pass-2", version: "2@2026-01-01T00:00:02.123456789Z", apiPath: "secret/data/app"},
		{ref: "vault:secret/data/app#password#1", field: "password", want: "old-pass-value-1", version: "1@2026-01-01T00:00:01.123456789Z"},
		{ref: "vault://secret/data/app", field: "password", want: "current-pass-2", version: "2@2026-01-01T00:00:02.123456789Z"},
		{ref: "vault://kv1/app", field: "password", want: "kv1-pass-value", apiPath: "kv1/app"},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			t.Parallel()
			f := kvStore(t)
			p, _, _ := fakeProvider(t, f, AuthOptions{}, map[string]string{envToken: "tok-root"})
			ref := mustParse(t, tt.ref)
			sec, err := p.Fetch(t.Context(), ref.Whole())
			if err != nil {
				t.Fatal(err)
			}
			v, err := sec.Field(tt.field)
			if err != nil {
				t.Fatal(err)
			}
			if v.Reveal() != tt.want {
				t.Errorf("field %s = %s, want another value", tt.field, v.Fingerprint())
			}
			if tt.version != "" && sec.Version != tt.version {
				t.Errorf("Version = %q, want %q", sec.Version, tt.version)
			}
			if tt.version == "" && !strings.HasPrefix(sec.Version, "h:") {
				t.Errorf("KV v1 Version = %q, want a content version", sec.Version)
			}
			if sec.Lease != nil {
				t.Errorf("KV secret has a lease: %+v", sec.Lease)
			}
			if tt.apiPath != "" && f.count(http.MethodGet, tt.apiPath) != 1 {
				t.Errorf("requests %+v, want one GET %s", f.requests(), tt.apiPath)
			}
			for _, r := range f.requests() {
				if r.token != "tok-root" {
					t.Errorf("request to %s sent token %q", r.path, r.token)
				}
			}
		})
	}
}

func TestFetchDynamic(t *testing.T) {
	t.Parallel()
	f := kvStore(t)
	p, c, _ := fakeProvider(t, f, AuthOptions{}, map[string]string{envToken: "tok"})
	sec, err := p.Fetch(t.Context(), mustParse(t, "vault://database/creds/ro"))
	if err != nil {
		t.Fatal(err)
	}
	if sec.Lease == nil || sec.Lease.ID != "database/creds/ro/abc" || sec.Lease.Duration != time.Minute || !sec.Lease.Renewable || !sec.Lease.Obtained.Equal(c.now()) {
		t.Fatalf("lease = %+v", sec.Lease)
	}
	if sec.Version != "database/creds/ro/abc" {
		t.Errorf("Version = %q, want the lease ID", sec.Version)
	}
	if u, _ := sec.Field("username"); u.Reveal() != "v-ro-x" {
		t.Error("username differs")
	}

	var body map[string]any
	f2 := &fakeAPI{handle: func(r request) (*api.Secret, error) {
		switch r.path {
		case "sys/internal/ui/mounts/pki/issue/web":
			return mountAnswer(t, "pki/", "pki", ""), nil
		case "pki/issue/web":
			if r.method != http.MethodPut {
				return nil, vaultErr(405)
			}
			body = r.body
			return secretJSON(t, `{"lease_id":"pki/issue/web/xyz","lease_duration":3600,"renewable":false,"data":{"certificate":"CERT","private_key":"KEY"}}`), nil
		}
		return nil, vaultErr(404)
	}}
	p2, _, _ := fakeProvider(t, f2, AuthOptions{}, map[string]string{envToken: "tok"})
	sec, err = p2.Fetch(t.Context(), mustParse(t, "vault://pki/issue/web?common_name=web.internal&ttl=1h"))
	if err != nil {
		t.Fatal(err)
	}
	if body["common_name"] != "web.internal" || body["ttl"] != "1h" || len(body) != 2 {
		t.Errorf("write body = %v", body)
	}
	if sec.Lease == nil || sec.Lease.Renewable {
		t.Errorf("lease = %+v, want a non-renewable lease", sec.Lease)
	}
}

func TestFetchErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ref      string
		sentinel error
		contains []string
	}{
		{"vault://secret/denied", providers.ErrPermissionDenied, []string{"secret/data/denied", `"read"`, "VAULT_TOKEN", "permission denied"}},
		{"vault://secret/missing", providers.ErrNotFound, []string{"secret/data/missing", "without data/"}},
		{"vault://secret/data/missing", providers.ErrNotFound, []string{"secret/data/missing", "data/ in the reference was taken as the API's"}},
		{"vault://secret/app?version=9", providers.ErrNotFound, []string{"no version 9"}},
		{"vault://secret/app?version=7", providers.ErrNotFound, []string{"version 7 was deleted"}},
		{"vault://kv1/data/app", providers.ErrNotFound, []string{"KV version 1", "vault://kv1/app"}},
		{"vault://kv1/app?version=2", providers.ErrInvalidReference, []string{"keeps no versions"}},
		{"vault://secret/app?ttl=1h", providers.ErrInvalidReference, []string{"no write parameters"}},
		{"vault://secret/", providers.ErrInvalidReference, []string{"not a secret"}},
		{"vault://nope/x", providers.ErrPermissionDenied, []string{"no secrets engine is mounted there"}},
		{"vault://database/creds/nope", providers.ErrNotFound, []string{"unknown role"}},
		{"vault://database/creds/ro?version=2", providers.ErrInvalidReference, []string{"KV v2 mounts only"}},
		{"vault://kv1/sealed", nil, []string{"sealed"}},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			t.Parallel()
			p, _, _ := fakeProvider(t, kvStore(t), AuthOptions{}, map[string]string{envToken: "hvs.secret-token-xyz"})
			_, err := p.Fetch(t.Context(), mustParse(t, tt.ref))
			if err == nil {
				t.Fatal("Fetch succeeded")
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("error %q does not wrap %v", err, tt.sentinel)
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if strings.ContainsAny(err.Error(), "\n\t") {
				t.Errorf("error spans lines: %q", err)
			}
			providertest.AssertRedacted(t, err.Error(), []byte("hvs.secret-token-xyz"), []byte("current-pass-2"), []byte("old-pass-value-1"))
		})
	}
}

func TestFetchTransportAndContext(t *testing.T) {
	t.Parallel()
	down := errors.New(`Get "http://127.0.0.1:1/v1/secret/data/app": dial tcp 127.0.0.1:1: connect: connection refused`)
	f := &fakeAPI{handle: func(request) (*api.Secret, error) { return nil, down }}
	p, _, _ := fakeProvider(t, f, AuthOptions{}, map[string]string{envToken: "tok"})
	_, err := p.Fetch(t.Context(), mustParse(t, "vault://secret/app"))
	if !errors.Is(err, down) || errors.Is(err, providers.ErrNotFound) {
		t.Errorf("Fetch with vault down = %v", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = p.Fetch(ctx, mustParse(t, "vault://secret/app"))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Fetch with a cancelled context = %v", err)
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d requests, want only the first fetch's", n)
	}
}

func TestMountLookedUpOncePerMount(t *testing.T) {
	t.Parallel()
	f := kvStore(t)
	p, _, _ := fakeProvider(t, f, AuthOptions{}, map[string]string{envToken: "tok"})
	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for i := range 60 {
		ref := []string{"vault://secret/app", "vault://kv1/app", "vault://secret/app?version=1"}[i%3]
		wg.Go(func() {
			if _, err := p.Fetch(t.Context(), mustParse(t, ref)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	lookups := 0
	for _, r := range f.requests() {
		if strings.HasPrefix(r.path, "sys/internal/ui/mounts/") {
			lookups++
		}
	}
	if lookups != 2 {
		t.Errorf("%d mount lookups for 2 mounts", lookups)
	}
}

func TestMountCacheLongestPrefix(t *testing.T) {
	t.Parallel()
	c := mountCache{known: []mount{{path: "team/", kv: 1}, {path: "team/kv/", kv: 2}}}
	for path, want := range map[string]string{"team/kv/app": "team/kv/", "team/other": "team/", "team/kvx/a": "team/"} {
		if m, ok := c.match(path); !ok || m.path != want {
			t.Errorf("match(%q) = %q, want %q", path, m.path, want)
		}
	}
	if _, ok := c.match("teams/x"); ok {
		t.Error("teams/x matched team/")
	}
}

func TestProbeVersion(t *testing.T) {
	t.Parallel()
	f := kvStore(t)
	p, _, _ := fakeProvider(t, f, AuthOptions{}, map[string]string{envToken: "tok"})
	// The number and created_time, as Fetch reports them.
	for _, ref := range []string{"vault://secret/app", "vault://secret/app?version=1"} {
		v, err := p.ProbeVersion(t.Context(), mustParse(t, ref))
		if err != nil {
			t.Fatalf("ProbeVersion(%s): %v", ref, err)
		}
		sec, err := p.Fetch(t.Context(), mustParse(t, ref))
		if err != nil {
			t.Fatal(err)
		}
		if v != sec.Version || !strings.Contains(v, "@2026-01-01T") {
			t.Errorf("ProbeVersion(%s) = %q, Fetch reports %q", ref, v, sec.Version)
		}
	}
	if n := f.count(http.MethodGet, "secret/data/app"); n != 2 {
		t.Errorf("%d reads of the secret for two fetches: ProbeVersion read it too", n)
	}
	if _, err := p.ProbeVersion(t.Context(), mustParse(t, "vault://secret/app?version=5")); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("ProbeVersion of a missing pinned version = %v", err)
	}
	if _, err := p.ProbeVersion(t.Context(), mustParse(t, "vault://secret/gone")); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("ProbeVersion of a deleted current version = %v", err)
	}
	if _, err := p.ProbeVersion(t.Context(), mustParse(t, "vault://secret/none")); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("ProbeVersion of a missing secret = %v", err)
	}
	if _, err := p.ProbeVersion(t.Context(), mustParse(t, "vault://kv1/app")); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("ProbeVersion on KV v1 = %v, want ErrUnsupported", err)
	}
	if _, err := p.ProbeVersion(t.Context(), mustParse(t, "vault://database/creds/ro")); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("ProbeVersion of a dynamic secret = %v, want ErrUnsupported", err)
	}
}

func TestRenewLease(t *testing.T) {
	t.Parallel()
	var granted int
	f := &fakeAPI{handle: func(r request) (*api.Secret, error) {
		if r.path != "sys/leases/renew" || r.method != http.MethodPut {
			return nil, vaultErr(404)
		}
		switch r.body["lease_id"] {
		case "database/creds/ro/ok":
			return secretJSON(t, fmt.Sprintf(`{"lease_id":"database/creds/ro/ok","lease_duration":%d,"renewable":true}`, granted)), nil
		case "database/creds/ro/revoked":
			return nil, vaultErr(400, "lease not found")
		case "database/creds/ro/denied":
			return nil, vaultErr(403, "permission denied")
		}
		return nil, vaultErr(500, "internal error")
	}}
	p, c, _ := fakeProvider(t, f, AuthOptions{}, map[string]string{envToken: "tok"})
	ref := mustParse(t, "vault://database/creds/ro")
	lease := providers.Lease{ID: "database/creds/ro/ok", Duration: time.Minute, Renewable: true, Obtained: c.now()}
	c.advance(40 * time.Second)

	granted = 60
	nl, err := p.Renew(t.Context(), ref, lease)
	if err != nil || nl.Duration != time.Minute || !nl.Renewable || !nl.Obtained.Equal(c.now()) || nl.ID != lease.ID {
		t.Fatalf("Renew = %+v, %v", nl, err)
	}
	if inc := f.requests()[len(f.requests())-1].body["increment"]; inc != int64(60) {
		t.Errorf("increment = %v, want the lease's 60 s", inc)
	}
	granted = 15
	nl, err = p.Renew(t.Context(), ref, lease)
	if err != nil || nl.Duration != 15*time.Second || nl.Renewable {
		t.Errorf("capped Renew = %+v, %v; want 15s and not renewable", nl, err)
	}

	tests := []struct {
		name     string
		lease    providers.Lease
		sentinel error
		asks     bool
	}{
		{"not renewable", providers.Lease{ID: "pki/x", Duration: time.Hour, Obtained: c.now()}, providers.ErrLeaseNotRenewable, false},
		{"no id", providers.Lease{Duration: time.Hour, Renewable: true, Obtained: c.now()}, providers.ErrLeaseNotRenewable, false},
		{"expired", providers.Lease{ID: "database/creds/ro/ok", Duration: time.Second, Renewable: true, Obtained: c.now().Add(-time.Minute)}, providers.ErrLeaseNotRenewable, false},
		{"revoked", providers.Lease{ID: "database/creds/ro/revoked", Duration: time.Hour, Renewable: true, Obtained: c.now()}, providers.ErrLeaseNotRenewable, true},
		{"denied", providers.Lease{ID: "database/creds/ro/denied", Duration: time.Hour, Renewable: true, Obtained: c.now()}, providers.ErrPermissionDenied, true},
		{"server error", providers.Lease{ID: "database/creds/ro/boom", Duration: time.Hour, Renewable: true, Obtained: c.now()}, nil, true},
	}
	for _, tt := range tests {
		before := f.count("", "sys/leases/renew")
		_, err := p.Renew(t.Context(), ref, tt.lease)
		if err == nil {
			t.Errorf("%s: Renew succeeded", tt.name)
			continue
		}
		if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
			t.Errorf("%s: %v does not wrap %v", tt.name, err, tt.sentinel)
		}
		if tt.sentinel == nil && (errors.Is(err, providers.ErrLeaseNotRenewable) || errors.Is(err, providers.ErrPermissionDenied)) {
			t.Errorf("%s: a transient error wraps a permanent sentinel: %v", tt.name, err)
		}
		if asked := f.count("", "sys/leases/renew") > before; asked != tt.asks {
			t.Errorf("%s: asked vault = %v, want %v", tt.name, asked, tt.asks)
		}
	}
}

// appRoleVault is a fake Vault with AppRole login; tokens it issued are
// valid until revoked.
type appRoleVault struct {
	t        testing.TB
	mu       sync.Mutex
	logins   int
	bodies   []map[string]any
	valid    map[string]bool
	ttl      int
	renewTTL int // TTL granted by renew-self; 0 refuses renewal
	renewals int
}

func newAppRoleVault(t testing.TB) *appRoleVault {
	return &appRoleVault{t: t, valid: map[string]bool{}, ttl: 60, renewTTL: 60}
}

func (v *appRoleVault) revokeAll() {
	v.mu.Lock()
	defer v.mu.Unlock()
	clear(v.valid)
}

func (v *appRoleVault) handle(r request) (*api.Secret, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case strings.HasSuffix(r.path, "/login"):
		v.logins++
		v.bodies = append(v.bodies, r.body)
		if r.token != "" {
			v.t.Errorf("login sent a token")
		}
		if r.body["role_id"] == "bad-role" {
			return nil, vaultErr(400, "invalid role or secret ID")
		}
		tok := fmt.Sprintf("hvs.login-token-%d", v.logins)
		v.valid[tok] = true
		return secretJSON(v.t, fmt.Sprintf(`{"auth":{"client_token":%q,"lease_duration":%d,"renewable":true,"policies":["default","app"]}}`, tok, v.ttl)), nil
	case !v.valid[r.token]:
		return nil, vaultErr(403, "permission denied")
	case r.path == "auth/token/lookup-self":
		return lookupSelfOK(v.t), nil
	case r.path == "auth/token/renew-self":
		v.renewals++
		if v.renewTTL == 0 {
			return nil, vaultErr(400, "lease is not renewable")
		}
		return secretJSON(v.t, fmt.Sprintf(`{"auth":{"client_token":%q,"lease_duration":%d,"renewable":true}}`, r.token, v.renewTTL)), nil
	case strings.HasPrefix(r.path, "sys/internal/ui/mounts/"):
		return mountAnswer(v.t, "secret/", "kv", "2"), nil
	case r.path == "secret/data/app":
		return kv2Answer(v.t, map[string]any{"password": "approle-read-value"}, 1), nil
	}
	return nil, vaultErr(404)
}

func (v *appRoleVault) stats() (logins, renewals int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.logins, v.renewals
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAppRoleLoginAndReLogin(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "role"), "role-1234\n")
	writeFile(t, filepath.Join(dir, "sid.json"), `{"secret_id": "sid-from-a-reference-5678"}`)
	fv := newAppRoleVault(t)
	f := &fakeAPI{handle: fv.handle}
	p, _, logs := fakeProvider(t, f, AuthOptions{
		Method: MethodAppRole, RoleIDFile: filepath.Join(dir, "role"), SecretID: "file://" + filepath.Join(dir, "sid.json") + "#secret_id",
	}, nil)
	ref := mustParse(t, "vault://secret/app")

	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := p.Fetch(t.Context(), ref); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if logins, _ := fv.stats(); logins != 1 {
		t.Errorf("%d logins for 10 concurrent fetches, want 1", logins)
	}
	if b := fv.bodies[0]; b["role_id"] != "role-1234" || b["secret_id"] != "sid-from-a-reference-5678" {
		t.Errorf("login body = %v", b)
	}
	if f.count(http.MethodPut, "auth/approle/login") != 1 {
		t.Errorf("requests = %+v", f.requests())
	}

	// Vault forgets the token (revoked, or a restarted dev server): the
	// next fetch logs in again and succeeds.
	fv.revokeAll()
	if _, err := p.Fetch(t.Context(), ref); err != nil {
		t.Fatalf("Fetch after revocation: %v", err)
	}
	if logins, _ := fv.stats(); logins != 2 {
		t.Errorf("%d logins after revocation, want 2", logins)
	}
	out := logs.String()
	for _, s := range []string{"hvs.login-token", "sid-from-a-reference-5678", "role-1234"} {
		if strings.Contains(out, s) {
			t.Errorf("log holds a credential: %q", out)
		}
	}
}

func TestLoginFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "sid"), "sid-credential-9999")
	fv := newAppRoleVault(t)
	p, _, _ := fakeProvider(t, &fakeAPI{handle: fv.handle}, AuthOptions{
		Method: MethodAppRole, RoleID: "bad-role", SecretIDFile: filepath.Join(dir, "sid"),
	}, nil)
	_, err := p.Fetch(t.Context(), mustParse(t, "vault://secret/app"))
	if !errors.Is(err, providers.ErrPermissionDenied) || !strings.Contains(err.Error(), "invalid role or secret ID") || !strings.Contains(err.Error(), "approle") {
		t.Errorf("Fetch with a refused login = %v", err)
	}
	providertest.AssertRedacted(t, err.Error(), []byte("sid-credential-9999"))

	p2, _, _ := fakeProvider(t, &fakeAPI{handle: fv.handle}, AuthOptions{
		Method: MethodAppRole, RoleID: "r", SecretIDFile: filepath.Join(dir, "missing"),
	}, nil)
	_, err = p2.Fetch(t.Context(), mustParse(t, "vault://secret/app"))
	if err == nil || !strings.Contains(err.Error(), "secret_id_file") || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Fetch with a missing secret_id file = %v", err)
	}
}

func TestTokenRenewal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "sid"), "sid")
	fv := newAppRoleVault(t)
	p, c, _ := fakeProvider(t, &fakeAPI{handle: fv.handle}, AuthOptions{
		Method: MethodAppRole, RoleID: "role", SecretIDFile: filepath.Join(dir, "sid"),
	}, nil)
	ref := mustParse(t, "vault://secret/app")
	fetch := func() {
		t.Helper()
		if _, err := p.Fetch(t.Context(), ref); err != nil {
			t.Fatal(err)
		}
	}
	fetch()
	c.advance(39 * time.Second) // before 2/3 of 60 s: no renewal
	fetch()
	if logins, renewals := fv.stats(); logins != 1 || renewals != 0 {
		t.Fatalf("logins %d renewals %d before 2/3 TTL", logins, renewals)
	}
	c.advance(2 * time.Second) // past 2/3: renewed lazily
	fetch()
	if logins, renewals := fv.stats(); logins != 1 || renewals != 1 {
		t.Fatalf("logins %d renewals %d after 2/3 TTL, want 1 and 1", logins, renewals)
	}
	c.advance(30 * time.Second) // the renewal restarted the clock: not due yet
	fetch()
	if _, renewals := fv.stats(); renewals != 1 {
		t.Fatalf("renewed again %d s after the last renewal", 30)
	}

	// Renewal capped by the max TTL: a new login.
	fv.mu.Lock()
	fv.renewTTL = 5
	fv.mu.Unlock()
	c.advance(11 * time.Second)
	fetch()
	if logins, renewals := fv.stats(); logins != 2 || renewals != 2 {
		t.Fatalf("logins %d renewals %d after a capped renewal, want 2 and 2", logins, renewals)
	}
	// Renewal refused: a new login.
	fv.mu.Lock()
	fv.renewTTL = 0
	fv.mu.Unlock()
	c.advance(41 * time.Second)
	fetch()
	if logins, renewals := fv.stats(); logins != 3 || renewals != 3 {
		t.Fatalf("logins %d renewals %d after a refused renewal, want 3 and 3", logins, renewals)
	}
	// Explicit renewal by the agent.
	fv.mu.Lock()
	fv.renewTTL = 60
	fv.mu.Unlock()
	st, err := p.RenewToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !st.Renewable || !st.Expires.Equal(c.now().Add(time.Minute)) || !strings.Contains(st.Source, "approle") {
		t.Errorf("RenewToken = %+v", st)
	}
	if _, renewals := fv.stats(); renewals != 4 {
		t.Errorf("RenewToken did not renew")
	}
}

func TestStaticTokenRenewToken(t *testing.T) {
	t.Parallel()
	var renewed int
	f := &fakeAPI{handle: func(r request) (*api.Secret, error) {
		switch r.path {
		case "auth/token/lookup-self":
			return secretJSON(t, `{"data":{"ttl":3600,"renewable":true}}`), nil
		case "auth/token/renew-self":
			renewed++
			if r.body["increment"] != int64(3600) {
				t.Errorf("increment = %v", r.body["increment"])
			}
			return secretJSON(t, `{"auth":{"client_token":"hvs.static","lease_duration":3600,"renewable":true}}`), nil
		}
		return nil, vaultErr(404)
	}}
	p, c, _ := fakeProvider(t, f, AuthOptions{}, map[string]string{envToken: "hvs.static"})
	st, err := p.RenewToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if renewed != 1 || st.Source != envToken || !st.Expires.Equal(c.now().Add(time.Hour)) {
		t.Errorf("RenewToken = %+v after %d renewals", st, renewed)
	}
}

func TestTokenFileReread(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	writeFile(t, path, "hvs.file-token-one\n")
	f := &fakeAPI{handle: func(r request) (*api.Secret, error) {
		switch {
		case strings.HasPrefix(r.path, "sys/internal/ui/mounts/"):
			return mountAnswer(t, "secret/", "kv", "2"), nil
		case r.path == "secret/data/app":
			return kv2Answer(t, map[string]any{"k": "v"}, 1), nil
		}
		return nil, vaultErr(404)
	}}
	p, _, _ := fakeProvider(t, f, AuthOptions{Method: MethodTokenFile, TokenFile: path}, nil)
	ref := mustParse(t, "vault://secret/app")
	if _, err := p.Fetch(t.Context(), ref); err != nil {
		t.Fatal(err)
	}
	// Rewrite with another token of another length (a new stamp even on
	// a coarse-grained file system clock).
	writeFile(t, path, "hvs.file-token-two-rotated\n")
	if _, err := p.Fetch(t.Context(), ref); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if first, last := reqs[0].token, reqs[len(reqs)-1].token; first != "hvs.file-token-one" || last != "hvs.file-token-two-rotated" {
		t.Errorf("tokens sent: first %q, last %q", first, last)
	}

	os.Remove(path)
	_, err := p.Fetch(t.Context(), ref)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Fetch with the token file gone = %v", err)
	}
}

// TestCredentialFileFIFO: a token or credential file that is a FIFO with
// no writer is refused at once; before, opening it blocked in open(2)
// beyond the reach of the context.
func TestCredentialFileFIFO(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, auth := range []AuthOptions{
		{Method: MethodTokenFile, TokenFile: fifo},
		{Method: MethodAppRole, RoleID: "r", SecretIDFile: fifo},
		{Method: MethodJWT, JWTFile: fifo},
	} {
		t.Run(auth.Method, func(t *testing.T) {
			t.Parallel()
			p, _, _ := fakeProvider(t, kvStore(t), auth, nil)
			done := make(chan error, 1)
			go func() {
				_, err := p.Fetch(t.Context(), mustParse(t, "vault://secret/app"))
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "named pipe (FIFO), not a regular file") || !strings.Contains(err.Error(), fifo) {
					t.Errorf("Fetch with a FIFO credential file = %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Fetch with a FIFO credential file is stuck")
			}
		})
	}
}

func TestNoToken(t *testing.T) {
	t.Parallel()
	f := &fakeAPI{handle: func(request) (*api.Secret, error) { return nil, vaultErr(500) }}
	home := t.TempDir()
	p, _, _ := fakeProvider(t, f, AuthOptions{}, map[string]string{"HOME": home})
	_, err := p.Fetch(t.Context(), mustParse(t, "vault://secret/app"))
	if !errors.Is(err, providers.ErrPermissionDenied) || !strings.Contains(err.Error(), "VAULT_TOKEN") {
		t.Errorf("Fetch without a token = %v", err)
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests without a token", n)
	}
	// The CLI's token helper file is used when VAULT_TOKEN is not set.
	writeFile(t, filepath.Join(home, ".vault-token"), "hvs.cli-login")
	p2, _, _ := fakeProvider(t, kvStore(t), AuthOptions{}, map[string]string{"HOME": home})
	if _, err := p2.Fetch(t.Context(), mustParse(t, "vault://secret/app")); err != nil {
		t.Fatal(err)
	}
	if tok := p2.api.(*fakeAPI).requests()[0].token; tok != "hvs.cli-login" {
		t.Errorf("token sent = %q", tok)
	}
}

func TestStaticTokenRejected(t *testing.T) {
	t.Parallel()
	f := &fakeAPI{handle: func(r request) (*api.Secret, error) { return nil, vaultErr(403, "permission denied") }}
	p, _, _ := fakeProvider(t, f, AuthOptions{}, map[string]string{envToken: "hvs.revoked-token"})
	_, err := p.Fetch(t.Context(), mustParse(t, "vault://secret/app"))
	if !errors.Is(err, providers.ErrPermissionDenied) || !strings.Contains(err.Error(), "does not accept keyward's token (from VAULT_TOKEN)") {
		t.Errorf("Fetch with a revoked token = %v", err)
	}
	providertest.AssertRedacted(t, err.Error(), []byte("hvs.revoked-token"))
}

func TestKubernetesAndJWTLogin(t *testing.T) {
	t.Parallel()
	for _, method := range []string{MethodKubernetes, MethodJWT} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			jwtPath := filepath.Join(dir, "token")
			writeFile(t, jwtPath, "eyJ.first-jwt.sig")
			fv := newAppRoleVault(t)
			f := &fakeAPI{handle: fv.handle}
			mount := method
			if method == MethodJWT {
				mount = "oidc"
			}
			p, _, _ := fakeProvider(t, f, AuthOptions{Method: method, Mount: mount, Role: "payments", JWTFile: jwtPath}, nil)
			ref := mustParse(t, "vault://secret/app")
			if _, err := p.Fetch(t.Context(), ref); err != nil {
				t.Fatal(err)
			}
			// The projected token rotates; the next login presents the new one.
			writeFile(t, jwtPath, "eyJ.second-jwt.sig")
			fv.revokeAll()
			if _, err := p.Fetch(t.Context(), ref); err != nil {
				t.Fatal(err)
			}
			if f.count(http.MethodPut, "auth/"+mount+"/login") != 2 {
				t.Fatalf("requests = %+v", f.requests())
			}
			if b := fv.bodies[0]; b["jwt"] != "eyJ.first-jwt.sig" || b["role"] != "payments" {
				t.Errorf("first login body = %v", b)
			}
			if b := fv.bodies[1]; b["jwt"] != "eyJ.second-jwt.sig" {
				t.Errorf("second login did not re-read the JWT file: %v", b["jwt"])
			}
		})
	}
	// Without jwt_file, the kubernetes method reads the pod's projected token.
	p, _, _ := fakeProvider(t, &fakeAPI{handle: newAppRoleVault(t).handle}, AuthOptions{Method: MethodKubernetes, Role: "r"}, nil)
	if _, err := os.Stat(DefaultKubernetesTokenPath); err == nil {
		t.Skip("running in a pod: the default token path exists")
	}
	_, err := p.Fetch(t.Context(), mustParse(t, "vault://secret/app"))
	if err == nil || !strings.Contains(err.Error(), DefaultKubernetesTokenPath) {
		t.Errorf("kubernetes login without a token file = %v", err)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	for attempt := range 8 {
		ceiling := min(minRetryWait<<attempt, maxRetryWait)
		for range 50 {
			if d := retryDelay(minRetryWait, maxRetryWait, attempt, nil); d < 0 || d > ceiling {
				t.Fatalf("attempt %d: backoff %v outside [0, %v]", attempt, d, ceiling)
			}
		}
	}
	resp := &http.Response{StatusCode: 503, Header: http.Header{"Retry-After": {"2"}}}
	if d := retryDelay(minRetryWait, maxRetryWait, 0, resp); d != 2*time.Second {
		t.Errorf("Retry-After 2: backoff %v", d)
	}
	resp.Header.Set("Retry-After", "600")
	if d := retryDelay(minRetryWait, maxRetryWait, 0, resp); d != maxRetryWait {
		t.Errorf("Retry-After 600: backoff %v, want the cap", d)
	}
}

func TestVaultMessage(t *testing.T) {
	t.Parallel()
	tests := map[string]*api.ResponseError{
		"permission denied":               {StatusCode: 403, Errors: []string{"1 error occurred:\n\t* permission denied\n\n"}},
		"a; b":                            {StatusCode: 400, Errors: []string{"2 errors occurred:\n\t* a\n\t* b\n\n"}},
		"not found":                       {StatusCode: 404},
		"unknown role: x; second message": {StatusCode: 400, Errors: []string{"unknown role: x", "second  message"}},
	}
	for want, re := range tests {
		if got := vaultMessage(re); got != want {
			t.Errorf("vaultMessage(%v) = %q, want %q", re.Errors, got, want)
		}
	}
}

func TestPinned(t *testing.T) {
	t.Parallel()
	p, _, _ := fakeProvider(t, kvStore(t), AuthOptions{}, nil)
	for s, want := range map[string]bool{
		"vault://secret/app":                  false,
		"vault://secret/app?version=3":        true,
		"vault:secret/data/app#key#2":         true,
		"vault://database/creds/ro":           false,
		"vault://pki/issue/web?common_name=x": false,
	} {
		if got := p.Pinned(mustParse(t, s)); got != want {
			t.Errorf("Pinned(%s) = %v, want %v", s, got, want)
		}
	}
}
