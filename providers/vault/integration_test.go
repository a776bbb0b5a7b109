//go:build integration

package vault

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
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

	"github.com/hashicorp/vault/api"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/providertest"
)

// The package's integration tests share one Vault dev server and one
// PostgreSQL (for the database secrets engine), started and seeded once in
// TestMain. The reliability test starts its own Vault, which it stops,
// restarts, seals and unseals.
var (
	vaultSrv *testenv.Vault
	pgSrv    *testenv.Postgres
	admin    *api.Client // root token
	// readToken is a token with the kw-read policy (no access to
	// secret/data/denied/*), used by the conformance suite.
	readToken string
	// jwtKey signs the JWTs the jwt auth method accepts.
	jwtKey *ecdsa.PrivateKey
)

// Fixed AppRole credentials, so that a restarted (empty) dev server can be
// seeded with the same ones.
const (
	testRoleID   = "keyward-test-role-id"
	testSecretID = "keyward-test-secret-id-5f2c"
	jwtIssuer    = "https://issuer.keyward.test"
	jwtAudience  = "keyward"
)

// kwReadPolicy is what keyward's test identities may do.
const kwReadPolicy = `
path "secret/data/*"      { capabilities = ["read"] }
path "secret/metadata/*"  { capabilities = ["read"] }
path "secret/data/denied/*" { capabilities = ["deny"] }
path "kv1/*"              { capabilities = ["read"] }
path "database/creds/*"   { capabilities = ["read"] }
path "pki/issue/*"        { capabilities = ["update"] }
path "sys/leases/renew"   { capabilities = ["update"] }
`

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "keyward-vault-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	vaultSrv, err = testenv.StartVault(ctx, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: starting the Vault dev server:", err)
		return 1
	}
	defer vaultSrv.Stop()
	pgSrv, err = testenv.StartPostgres(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: starting PostgreSQL:", err)
		return 1
	}
	defer pgSrv.Stop()
	if jwtKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	if admin, err = adminClient(vaultSrv.Addr); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	if err := seed(ctx, admin, true); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: seeding Vault:", err)
		return 1
	}
	sec, err := admin.Logical().WriteWithContext(ctx, "auth/token/create", map[string]any{"policies": []string{"kw-read"}, "ttl": "2h"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: creating the read token:", err)
		return 1
	}
	readToken = sec.Auth.ClientToken
	return m.Run()
}

func adminClient(addr string) (*api.Client, error) {
	c, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		return nil, err
	}
	c.SetToken(testenv.VaultRootToken)
	return c, nil
}

// seed sets Vault up as the tests expect: the kw-read policy, a KV v1
// mount (the dev server has KV v2 at secret/), AppRole and JWT logins, and
// with full, the database engine on PostgreSQL and PKI.
func seed(ctx context.Context, c *api.Client, full bool) error {
	steps := []struct {
		path string
		body map[string]any
	}{
		{"sys/policies/acl/kw-read", map[string]any{"policy": kwReadPolicy}},
		{"sys/mounts/kv1", map[string]any{"type": "kv", "options": map[string]any{"version": "1"}}},
		{"sys/auth/approle", map[string]any{"type": "approle"}},
		{"auth/approle/role/kw", map[string]any{"token_policies": []string{"kw-read"}, "token_ttl": "1h", "token_max_ttl": "4h"}},
		{"auth/approle/role/kw/role-id", map[string]any{"role_id": testRoleID}},
		{"auth/approle/role/kw/custom-secret-id", map[string]any{"secret_id": testSecretID}},
	}
	if full {
		pub, err := x509.MarshalPKIXPublicKey(&jwtKey.PublicKey)
		if err != nil {
			return err
		}
		pubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
		steps = append(steps, []struct {
			path string
			body map[string]any
		}{
			{"sys/auth/jwt", map[string]any{"type": "jwt"}},
			{"auth/jwt/config", map[string]any{"jwt_validation_pubkeys": []string{pubPEM}, "bound_issuer": jwtIssuer}},
			{"auth/jwt/role/kw", map[string]any{
				"role_type": "jwt", "bound_audiences": []string{jwtAudience}, "user_claim": "sub",
				"token_policies": []string{"kw-read"}, "token_ttl": "1h",
			}},
			{"sys/mounts/database", map[string]any{"type": "database"}},
			{"database/config/pg", map[string]any{
				"plugin_name": "postgresql-database-plugin", "connection_url": pgSrv.TemplateURL(),
				"username": pgSrv.User, "password": pgSrv.Password, "allowed_roles": "*", "verify_connection": true,
			}},
			{"database/roles/ro", map[string]any{
				"db_name": "pg", "default_ttl": "30s", "max_ttl": "10m",
				"creation_statements": []string{`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`},
			}},
			{"database/roles/capped", map[string]any{
				"db_name": "pg", "default_ttl": "20s", "max_ttl": "20s",
				"creation_statements": []string{`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`},
			}},
			{"sys/mounts/pki", map[string]any{"type": "pki", "config": map[string]any{"max_lease_ttl": "24h"}}},
			{"pki/root/generate/internal", map[string]any{"common_name": "keyward test CA", "ttl": "24h", "key_type": "ec"}},
			{"pki/roles/web", map[string]any{
				"allowed_domains": "internal", "allow_subdomains": true, "generate_lease": true,
				"max_ttl": "1h", "key_type": "ec",
			}},
		}...)
	}
	for _, s := range steps {
		if _, err := c.Logical().WriteWithContext(ctx, s.path, s.body); err != nil {
			return fmt.Errorf("%s: %w", s.path, err)
		}
	}
	return nil
}

// kv2Put writes data as a new version of the KV v2 secret secret/name.
func kv2Put(t testing.TB, name string, data map[string]any) {
	t.Helper()
	if _, err := admin.KVv2("secret").Put(context.Background(), name, data); err != nil {
		t.Fatalf("put secret/%s: %v", name, err)
	}
}

// envOf returns a Getenv over vars.
func envOf(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// newReal builds a provider for the dev server (or addr) with opts.
func newReal(t testing.TB, addr string, opts Options, env map[string]string) *Provider {
	t.Helper()
	vars := map[string]string{envAddr: addr}
	for k, v := range env {
		vars[k] = v
	}
	p, err := New(providers.Instance{
		Name: KindName, Kind: KindName, Getenv: envOf(vars), BaseDir: t.TempDir(),
		Decode: func(into any) error { *(into.(*Options)) = opts; return nil },
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Harness{
		Kind: KindName,
		New: func(t *testing.T) providers.Provider {
			return newReal(t, vaultSrv.Addr, Options{}, map[string]string{envToken: readToken})
		},
		PutValue: func(t *testing.T, name string, value []byte) providers.Ref {
			kv2Put(t, name, map[string]any{"value": string(value)})
			return providers.Ref{Scheme: KindName, Path: "secret/" + name, Field: "value"}
		},
		PutObject: func(t *testing.T, name string, fields map[string]any) providers.Ref {
			kv2Put(t, name, fields)
			return providers.Ref{Scheme: KindName, Path: "secret/" + name}
		},
		PutVersions: func(t *testing.T, name string, values [][]byte) providertest.Versions {
			var vs providertest.Versions
			for i, v := range values {
				kv2Put(t, name, map[string]any{"value": string(v)})
				vs.Pinned = append(vs.Pinned, providers.Ref{Scheme: KindName, Path: "secret/" + name, Field: "value",
					Params: map[string]string{ParamVersion: fmt.Sprint(i + 1)}})
			}
			vs.Latest = providers.Ref{Scheme: KindName, Path: "secret/" + name, Field: "value"}
			vs.Missing = providers.Ref{Scheme: KindName, Path: "secret/" + name, Field: "value", Params: map[string]string{ParamVersion: "99"}}
			return vs
		},
		Delete: func(t *testing.T, name string) {
			// The metadata too: the next write is version 1 again.
			if err := admin.KVv2("secret").DeleteMetadata(t.Context(), name); err != nil {
				t.Fatalf("delete secret/metadata/%s: %v", name, err)
			}
		},
		Missing: func(t *testing.T, name string) providers.Ref {
			return providers.Ref{Scheme: KindName, Path: "secret/" + name}
		},
		Denied: func(t *testing.T, name string, value []byte) providers.Ref {
			kv2Put(t, "denied/"+name, map[string]any{"value": string(value)})
			return providers.Ref{Scheme: KindName, Path: "secret/denied/" + name, Field: "value"}
		},
		// PostgreSQL credentials from the database engine (role ro).
		PutLeased: func(t *testing.T, name string) providers.Ref {
			return providers.Ref{Scheme: KindName, Path: "database/creds/ro"}
		},
	})
}

func mustFetchField(t testing.TB, p *Provider, ref, field string) (string, providers.Secret) {
	t.Helper()
	sec, err := p.Fetch(context.Background(), mustParse(t, ref).Whole())
	if err != nil {
		t.Fatalf("Fetch(%s): %v", ref, err)
	}
	v, err := sec.Field(field)
	if err != nil {
		t.Fatalf("Fetch(%s)#%s: %v", ref, field, err)
	}
	return v.Reveal(), sec
}

func TestKVv1AndCompatibilityForms(t *testing.T) {
	t.Parallel()
	if _, err := admin.Logical().Write("kv1/app", map[string]any{"password": "kv1-value-417", "n": 3}); err != nil {
		t.Fatal(err)
	}
	kv2Put(t, "compat", map[string]any{"key": "first-value-93"})
	kv2Put(t, "compat", map[string]any{"key": "second-value-27"})
	p := newReal(t, vaultSrv.Addr, Options{}, map[string]string{envToken: readToken})

	if v, sec := mustFetchField(t, p, "vault://kv1/app", "password"); v != "kv1-value-417" || !strings.HasPrefix(sec.Version, "h:") {
		t.Errorf("kv1: different value or Version %q", sec.Version)
	}
	if v, _ := mustFetchField(t, p, "vault://kv1/app", "n"); v != "3" {
		t.Errorf("kv1 number field = %q", v)
	}
	for ref, want := range map[string]string{
		"vault:secret/data/compat#key":    "second-value-27",
		"vault:secret/data/compat#key#1":  "first-value-93",
		"vault://secret/compat#key":       "second-value-27",
		"vault://secret/data/compat":      "second-value-27",
		"vault://secret/compat?version=1": "first-value-93",
	} {
		r := mustParse(t, ref)
		if r.Field == "" {
			r.Field = "key"
		}
		if v, _ := mustFetchField(t, p, r.Whole().String(), r.Field); v != want {
			t.Errorf("%s: different value", ref)
		}
	}
	_, err := p.Fetch(t.Context(), mustParse(t, "vault://kv1/data/app"))
	if !errors.Is(err, providers.ErrNotFound) || !strings.Contains(err.Error(), "vault://kv1/app") {
		t.Errorf("kv1 path with data/: %v", err)
	}
	_, err = p.Fetch(t.Context(), mustParse(t, "vault://kv1/app?version=2"))
	if !errors.Is(err, providers.ErrInvalidReference) {
		t.Errorf("kv1 with ?version: %v", err)
	}
	_, err = p.Fetch(t.Context(), mustParse(t, "vault://nosuchmount/app"))
	if !errors.Is(err, providers.ErrPermissionDenied) || !strings.Contains(err.Error(), "no secrets engine is mounted there") {
		t.Errorf("unknown mount: %v", err)
	}
}

func TestProbeVersionReal(t *testing.T) {
	t.Parallel()
	p := newReal(t, vaultSrv.Addr, Options{}, map[string]string{envToken: readToken})
	// A fresh name per run: the dev server outlives one -count iteration.
	name := fmt.Sprintf("probe-%d", time.Now().UnixNano())
	ref := mustParse(t, "vault://secret/"+name+"#k")
	kv2Put(t, name, map[string]any{"k": "v1-value-aa"})
	v, err := p.ProbeVersion(t.Context(), ref.Whole())
	if err != nil || !strings.HasPrefix(v, "1@") {
		t.Fatalf("ProbeVersion = %q, %v", v, err)
	}
	kv2Put(t, name, map[string]any{"k": "v2-value-bb"})
	if v, err = p.ProbeVersion(t.Context(), ref.Whole()); err != nil || !strings.HasPrefix(v, "2@") {
		t.Fatalf("ProbeVersion after a write = %q, %v", v, err)
	}
	_, sec := mustFetchField(t, p, "vault://secret/"+name, "k")
	if sec.Version != v {
		t.Errorf("Fetch Version %q != probed %q", sec.Version, v)
	}
	if err := admin.KVv2("secret").Delete(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ProbeVersion(t.Context(), ref.Whole()); !errors.Is(err, providers.ErrNotFound) || !strings.Contains(err.Error(), "deleted") {
		t.Errorf("ProbeVersion of a deleted version = %v", err)
	}
	if _, err := p.Fetch(t.Context(), ref.Whole()); !errors.Is(err, providers.ErrNotFound) || !strings.Contains(err.Error(), "version 2 was deleted") {
		t.Errorf("Fetch of a deleted version = %v", err)
	}
	if _, err := p.ProbeVersion(t.Context(), mustParse(t, "vault://kv1/app")); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("ProbeVersion on kv1 = %v", err)
	}
}

func TestDatabaseLease(t *testing.T) {
	t.Parallel()
	p := newReal(t, vaultSrv.Addr, Options{}, map[string]string{envToken: readToken})
	ref := mustParse(t, "vault://database/creds/ro")
	sec, err := p.Fetch(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	l := sec.Lease
	if l == nil || !strings.HasPrefix(l.ID, "database/creds/ro/") || l.Duration != 30*time.Second || !l.Renewable {
		t.Fatalf("lease = %+v", l)
	}
	user, _ := sec.Field("username")
	pass, _ := sec.Field("password")
	if got, err := pgSrv.Query(t.Context(), user.Reveal(), pass.Reveal(), "select current_user"); err != nil || got != user.Reveal() {
		t.Fatalf("the dynamic credentials do not log in to PostgreSQL: %v", err)
	}

	nl, err := p.Renew(t.Context(), ref, *l)
	if err != nil {
		t.Fatal(err)
	}
	if nl.ID != l.ID || nl.Duration != 30*time.Second || !nl.Renewable || !nl.Obtained.After(l.Obtained) {
		t.Errorf("renewed lease = %+v", nl)
	}

	if err := admin.Sys().RevokeWithContext(t.Context(), l.ID); err != nil {
		t.Fatal(err)
	}
	_, err = p.Renew(t.Context(), ref, nl)
	if !errors.Is(err, providers.ErrLeaseNotRenewable) {
		t.Errorf("Renew of a revoked lease = %v, want ErrLeaseNotRenewable", err)
	}
	providertest.AssertRedacted(t, err.Error(), pass.Bytes())
	if _, err := pgSrv.Query(t.Context(), user.Reveal(), pass.Reveal(), "select 1"); err == nil {
		t.Error("the credentials of a revoked lease still log in")
	}
}

func TestDatabaseLeaseAtMaxTTL(t *testing.T) {
	t.Parallel()
	p := newReal(t, vaultSrv.Addr, Options{}, map[string]string{envToken: readToken})
	ref := mustParse(t, "vault://database/creds/capped")
	sec, err := p.Fetch(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	// default_ttl = max_ttl: a renewal grants what is left of the max TTL,
	// less than was asked once Vault's clock (which rounds to the second)
	// has moved on. This waits for the server's clock, not for a goroutine.
	time.Sleep(1500 * time.Millisecond)
	nl, err := p.Renew(t.Context(), ref, *sec.Lease)
	if err != nil {
		t.Fatal(err)
	}
	if nl.Renewable || nl.Duration >= sec.Lease.Duration {
		t.Errorf("renewal at max TTL = %+v, want a shorter, non-renewable lease", nl)
	}
}

func TestPKIIssue(t *testing.T) {
	t.Parallel()
	p := newReal(t, vaultSrv.Addr, Options{}, map[string]string{envToken: readToken})
	sec, err := p.Fetch(t.Context(), mustParse(t, "vault://pki/issue/web?common_name=api.internal&ttl=10m"))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := sec.Field("certificate")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM.Bytes())
	if block == nil {
		t.Fatal("certificate is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "api.internal" {
		t.Errorf("CN = %q", cert.Subject.CommonName)
	}
	// The lease runs until the certificate's NotAfter: about the 10m asked.
	if l := sec.Lease; l == nil || !strings.HasPrefix(l.ID, "pki/issue/web/") || l.Duration < 9*time.Minute || l.Duration > 10*time.Minute {
		t.Errorf("lease = %+v", sec.Lease)
	}
	_, err = p.Fetch(t.Context(), mustParse(t, "vault://pki/issue/web?common_name=evil.example.com"))
	if err == nil || errors.Is(err, providers.ErrNotFound) {
		t.Errorf("issue for a disallowed name = %v", err)
	}
}

// counter is a reverse proxy to Vault counting the requests by method and
// path, and optionally failing them.
type counter struct {
	srv *httptest.Server
	mu  sync.Mutex
	n   map[string]int
}

func newCounter(t testing.TB, target string) *counter {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{n: map[string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(u)
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.n[r.Method+" "+r.URL.Path]++
		c.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *counter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

func (c *counter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.n {
		n += v
	}
	return n
}

func (c *counter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.n)
}

func TestAppRole(t *testing.T) {
	t.Parallel()
	kv2Put(t, "approle-app", map[string]any{"password": "approle-secret-value-1"})
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "secret-id"), testSecretID+"\n")
	c := newCounter(t, vaultSrv.Addr)
	p := newReal(t, c.srv.URL, Options{Auth: AuthOptions{
		Method: MethodAppRole, RoleID: testRoleID, SecretIDFile: filepath.Join(dir, "secret-id"),
	}}, nil)
	clk := newClock()
	p.now = clk.now
	ref := "vault://secret/approle-app"
	fetch := func() {
		t.Helper()
		if v, _ := mustFetchField(t, p, ref, "password"); v != "approle-secret-value-1" {
			t.Fatal("different value")
		}
	}
	const login, renew = "PUT /v1/auth/approle/login", "PUT /v1/auth/token/renew-self"

	fetch()
	fetch()
	if n := c.get(login); n != 1 {
		t.Fatalf("%d logins for two fetches", n)
	}
	// Past 2/3 of the 1 h token TTL: the next fetch renews the token.
	clk.advance(41 * time.Minute)
	fetch()
	if n := c.get(renew); n != 1 {
		t.Fatalf("%d renewals after 2/3 of the TTL", n)
	}
	// Vault revokes every AppRole token: the next renewal is refused and
	// keyward logs in again.
	if err := admin.Sys().RevokePrefixWithContext(t.Context(), "auth/approle/login"); err != nil {
		t.Fatal(err)
	}
	clk.advance(41 * time.Minute)
	fetch()
	if n, r := c.get(login), c.get(renew); n != 2 || r != 2 {
		t.Fatalf("after revocation: %d logins, %d renewals; want 2 and 2", n, r)
	}
	// Revoked again, before renewal is due: the 403 makes keyward check its
	// token, find it unknown, and log in again.
	if err := admin.Sys().RevokePrefixWithContext(t.Context(), "auth/approle/login"); err != nil {
		t.Fatal(err)
	}
	fetch()
	if n := c.get(login); n != 3 {
		t.Fatalf("after revocation between renewals: %d logins, want 3", n)
	}
	st, err := p.RenewToken(t.Context())
	if err != nil || !st.Renewable || !strings.Contains(st.Source, "approle") {
		t.Errorf("RenewToken = %+v, %v", st, err)
	}

	// A wrong secret_id is refused with Vault's reason and no credential.
	writeFile(t, filepath.Join(dir, "wrong"), "not-the-secret-id-77")
	p2 := newReal(t, vaultSrv.Addr, Options{Auth: AuthOptions{
		Method: MethodAppRole, RoleID: testRoleID, SecretIDFile: filepath.Join(dir, "wrong"),
	}}, nil)
	_, err = p2.Fetch(t.Context(), mustParse(t, ref))
	if !errors.Is(err, providers.ErrPermissionDenied) || !strings.Contains(err.Error(), "approle") {
		t.Errorf("login with a wrong secret_id = %v", err)
	}
	providertest.AssertRedacted(t, err.Error(), []byte("not-the-secret-id-77"), []byte(testSecretID))
}

// signJWT returns an ES256 JWT with the claims, signed with jwtKey.
func signJWT(t testing.TB, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(map[string]string{"alg": "ES256", "typ": "JWT"}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, jwtKey, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestJWTLogin(t *testing.T) {
	t.Parallel()
	kv2Put(t, "jwt-app", map[string]any{"token": "jwt-read-value-55"})
	dir := t.TempDir()
	jwtFile := filepath.Join(dir, "jwt")
	now := time.Now()
	claims := func(exp time.Time) map[string]any {
		return map[string]any{"iss": jwtIssuer, "aud": jwtAudience, "sub": "ci-job-1", "iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": exp.Unix()}
	}
	good := signJWT(t, claims(now.Add(time.Hour)))
	writeFile(t, jwtFile, good)
	p := newReal(t, vaultSrv.Addr, Options{Auth: AuthOptions{Method: MethodJWT, Role: "kw", JWTFile: jwtFile}}, nil)
	if v, _ := mustFetchField(t, p, "vault://secret/jwt-app", "token"); v != "jwt-read-value-55" {
		t.Fatal("different value")
	}

	expired := signJWT(t, claims(now.Add(-10*time.Minute)))
	writeFile(t, jwtFile, expired)
	p2 := newReal(t, vaultSrv.Addr, Options{Auth: AuthOptions{Method: MethodJWT, Role: "kw", JWTFile: jwtFile}}, nil)
	_, err := p2.Fetch(t.Context(), mustParse(t, "vault://secret/jwt-app"))
	if !errors.Is(err, providers.ErrPermissionDenied) || !strings.Contains(err.Error(), "auth/jwt") {
		t.Errorf("login with an expired JWT = %v", err)
	}
	providertest.AssertRedacted(t, err.Error(), []byte(expired), []byte(good))
}

func TestTokenFile(t *testing.T) {
	t.Parallel()
	kv2Put(t, "token-file-app", map[string]any{"k": "token-file-value-8"})
	weak, err := admin.Logical().Write("auth/token/create", map[string]any{"policies": []string{"default"}, "ttl": "1h"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "token")
	writeFile(t, path, weak.Auth.ClientToken)
	p := newReal(t, vaultSrv.Addr, Options{Auth: AuthOptions{Method: MethodTokenFile, TokenFile: path}}, nil)
	_, err = p.Fetch(t.Context(), mustParse(t, "vault://secret/token-file-app"))
	if !errors.Is(err, providers.ErrPermissionDenied) || !strings.Contains(err.Error(), "token file "+path) {
		t.Fatalf("Fetch with a token without the policy = %v", err)
	}
	providertest.AssertRedacted(t, err.Error(), []byte(weak.Auth.ClientToken))
	// The token file is rewritten (Vault Agent's sink, a rotated secret).
	writeFile(t, path, readToken+"\n")
	if v, _ := mustFetchField(t, p, "vault://secret/token-file-app", "k"); v != "token-file-value-8" {
		t.Fatal("different value")
	}
	st, err := p.RenewToken(t.Context())
	if err != nil || st.Expires.IsZero() || !st.Renewable {
		t.Errorf("RenewToken of a file token = %+v, %v", st, err)
	}
}

// TestResolveBenchmarkRequests resolves 1,000 references (200 KV v2
// secrets × 5 fields) through a providers.Set, as `keyward render` does,
// and counts the requests Vault served: one per secret plus one mount
// lookup.
func TestResolveBenchmarkRequests(t *testing.T) {
	refs := seedBench(t)
	c := newCounter(t, vaultSrv.Addr)
	set := providers.NewSet(providers.Instance{Getenv: envOf(map[string]string{envAddr: c.srv.URL, envToken: testenv.VaultRootToken})}, nil)
	defer set.Close()
	start := time.Now()
	res, err := set.Resolve(t.Context(), refs)
	wall := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1000 {
		t.Fatalf("%d resolved", len(res))
	}
	for name, r := range res {
		if !strings.HasPrefix(r.Value.Reveal(), "bench-value-") {
			t.Fatalf("%s: unexpected value", name)
		}
	}
	reads, lookups := 0, 0
	c.mu.Lock()
	for k, n := range c.n {
		switch {
		case strings.HasPrefix(k, "GET /v1/secret/data/bench/"):
			reads += n
		case strings.HasPrefix(k, "GET /v1/sys/internal/ui/mounts/"):
			lookups += n
		}
	}
	c.mu.Unlock()
	t.Logf("1000 references, 200 secrets: %v wall, %d requests (%d reads, %d mount lookups)", wall, c.total(), reads, lookups)
	if reads != 200 || lookups != 1 || c.total() != 201 {
		t.Errorf("requests: %d reads, %d mount lookups, %d in all; want 200 + 1", reads, lookups, c.total())
	}
}

var benchOnce sync.Once

// seedBench writes the 200 benchmark secrets (once) and returns the 1,000
// references to their fields.
func seedBench(t testing.TB) map[string]providers.Ref {
	benchOnce.Do(func() {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for i := range 200 {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				data := map[string]any{}
				for f := range 5 {
					data[fmt.Sprintf("f%d", f)] = fmt.Sprintf("bench-value-%d-%d", i, f)
				}
				kv2Put(t, fmt.Sprintf("bench/s%03d", i), data)
			})
		}
		wg.Wait()
	})
	refs := make(map[string]providers.Ref, 1000)
	for i := range 200 {
		for f := range 5 {
			refs[fmt.Sprintf("S%03d_F%d", i, f)] = mustParse(t, fmt.Sprintf("vault://secret/bench/s%03d#f%d", i, f))
		}
	}
	return refs
}

// BenchmarkResolve1000 measures Set.Resolve of the 1,000 references of
// TestResolveBenchmarkRequests with a fresh Set (so mount lookup and
// connection set-up count) per iteration.
func BenchmarkResolve1000(b *testing.B) {
	refs := seedBench(b)
	c := newCounter(b, vaultSrv.Addr)
	env := envOf(map[string]string{envAddr: c.srv.URL, envToken: testenv.VaultRootToken})
	c.reset()
	b.ResetTimer()
	for range b.N {
		set := providers.NewSet(providers.Instance{Getenv: env}, nil)
		if _, err := set.Resolve(context.Background(), refs); err != nil {
			b.Fatal(err)
		}
		set.Close()
	}
	b.ReportMetric(float64(c.total())/float64(b.N), "requests/op")
}

// TestReliability runs its own dev server to stop, restart, seal and
// unseal it under a provider that keeps being used.
func TestReliability(t *testing.T) {
	t.Parallel()
	srv, err := testenv.StartVault(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	adm, err := adminClient(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	const value = "reliable-value-3141"
	reseed := func() {
		t.Helper()
		if err := seed(t.Context(), adm, false); err != nil {
			t.Fatal(err)
		}
		if _, err := adm.KVv2("secret").Put(t.Context(), "app", map[string]any{"password": value}); err != nil {
			t.Fatal(err)
		}
	}
	reseed()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "sid"), testSecretID)
	p := newReal(t, srv.Addr, Options{MaxRetries: new(int), Auth: AuthOptions{
		Method: MethodAppRole, RoleID: testRoleID, SecretIDFile: filepath.Join(dir, "sid"),
	}}, nil)
	ref := mustParse(t, "vault://secret/app")
	fetchOK := func(when string) {
		t.Helper()
		sec, err := p.Fetch(t.Context(), ref)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if v, _ := sec.Field("password"); v.Reveal() != value {
			t.Fatalf("%s: different value", when)
		}
	}
	fetchFails := func(when string, contains string) {
		t.Helper()
		start := time.Now()
		_, err := p.Fetch(t.Context(), ref)
		if err == nil {
			t.Fatalf("%s: Fetch succeeded", when)
		}
		if errors.Is(err, providers.ErrNotFound) || errors.Is(err, providers.ErrPermissionDenied) {
			t.Errorf("%s: a transient failure wraps a permanent sentinel: %v", when, err)
		}
		if !strings.Contains(err.Error(), contains) {
			t.Errorf("%s: error %q lacks %q", when, err, contains)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s: Fetch took %v", when, d)
		}
		providertest.AssertRedacted(t, err.Error(), []byte(value), []byte(testSecretID))
	}

	fetchOK("before the outage")
	srv.Stop()
	fetchFails("vault stopped", "connection refused")
	if err := srv.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The restarted dev server lost everything, keyward's token included.
	reseed()
	fetchOK("after the restart")

	key, err := srv.UnsealKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := adm.Sys().SealWithContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	fetchFails("vault sealed", "sealed")
	if _, err := adm.Sys().UnsealWithContext(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	fetchOK("after unsealing")
}

// TestExampleConfig resolves every secret of examples/vault/keyward.yaml
// against the dev server prepared as examples/vault/setup.sh does, with the
// provider options decoded from the example (so a key the provider does
// not know fails here).
func TestExampleConfig(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join("..", "..", "examples", "vault", "keyward.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "keyward.yaml"), string(src))

	ctx := t.Context()
	kv2Put(t, "payments/db", map[string]any{"username": "payments", "password": "demo-db-password"})
	kv2Put(t, "payments/stripe", map[string]any{"api_key": "sk_test_first", "webhook_secret": "whsec_demo"})
	kv2Put(t, "payments/stripe", map[string]any{"api_key": "sk_test_second", "webhook_secret": "whsec_demo"})
	for _, s := range []struct {
		path string
		body map[string]any
	}{
		{"sys/policies/acl/payments-read", map[string]any{"policy": `path "secret/data/payments/*" { capabilities = ["read"] }
path "secret/metadata/payments/*" { capabilities = ["read"] }`}},
		{"auth/approle/role/payments", map[string]any{"token_policies": []string{"payments-read"}, "token_ttl": "1h"}},
	} {
		if _, err := admin.Logical().WriteWithContext(ctx, s.path, s.body); err != nil {
			t.Fatal(err)
		}
	}
	rid, err := admin.Logical().ReadWithContext(ctx, "auth/approle/role/payments/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := admin.Logical().WriteWithContext(ctx, "auth/approle/role/payments/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "role-id"), rid.Data["role_id"].(string))
	writeFile(t, filepath.Join(dir, "secret-id"), sid.Data["secret_id"].(string))

	cfg, err := config.Load(t.Context(), filepath.Join(dir, "keyward.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var declared []providers.Instance
	for name, p := range cfg.Providers {
		declared = append(declared, providers.Instance{Name: name, Kind: p.Kind, Decode: p.Decode})
	}
	set := providers.NewSet(providers.Instance{Getenv: envOf(map[string]string{envAddr: vaultSrv.Addr}), BaseDir: cfg.Dir}, declared)
	defer set.Close()
	refs := map[string]providers.Ref{}
	for name, s := range cfg.Secrets {
		refs[name] = s.Ref
	}
	res, err := set.Resolve(ctx, refs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"DB_USER": "payments", "DB_PASSWORD": "demo-db-password", "STRIPE_KEY": "sk_test_second",
		"STRIPE_KEY_PREVIOUS": "sk_test_first", "WEBHOOK_SECRET": "whsec_demo",
	}
	if len(res) != len(want) {
		t.Errorf("resolved %d secrets, want %d", len(res), len(want))
	}
	for name, v := range want {
		if res[name].Value.Reveal() != v {
			t.Errorf("%s: different value", name)
		}
	}
}
