package gcp_test

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/gcp"
	"github.com/keyward/keyward/providers/gcp/gcpfake"
	"github.com/keyward/keyward/providers/providertest"
)

// setFromConfig builds a providers.Set as keyward does, from a config whose
// providers: section is given (with ENDPOINT replaced by e's address), and
// returns it with the config's secrets.
func setFromConfig(t *testing.T, e *env, providersYAML, secretsYAML string) (*providers.Set, map[string]providers.Ref) {
	t.Helper()
	src := "version: 1\nproviders:\n" + strings.ReplaceAll(providersYAML, "ENDPOINT", e.fake.Addr()) + "secrets:\n" + secretsYAML
	cfg, err := config.Parse([]byte(src), "keyward.yaml")
	if err != nil {
		t.Fatalf("config: %v\n%s", err, src)
	}
	var declared []providers.Instance
	for name, p := range cfg.Providers {
		declared = append(declared, providers.Instance{Name: name, Kind: p.Kind, Decode: p.Decode})
	}
	set := providers.NewSet(providers.Instance{Getenv: func(string) string { return "" }}, declared)
	t.Cleanup(func() {
		if err := set.Close(); err != nil {
			t.Errorf("Set.Close: %v", err)
		}
	})
	refs := map[string]providers.Ref{}
	for name, s := range cfg.Secrets {
		refs[name] = s.Ref
	}
	return set, refs
}

// TestResolveEverySpelling resolves every documented reference spelling
// through a providers.Set configured from YAML, as keyward does, and checks
// that many fields and spellings of one version cost one call.
func TestResolveEverySpelling(t *testing.T) {
	t.Parallel()
	e := ownEnv(t)
	const p, other = "app-project", "other-project"
	e.addVersion(t, p, "db", []byte(`{"user":"app-user","password":"db-pass-v1","nested":{"host":"db.internal"}}`))
	e.addVersion(t, p, "db", []byte(`{"user":"app-user","password":"db-pass-v2","nested":{"host":"db.internal"}}`))
	e.addVersion(t, p, "api-key", []byte("api-key-v1"))
	e.addVersion(t, p, "api-key", []byte("api-key-v2"))
	e.setAlias(t, p, "api-key", "stable", 1)
	e.addVersion(t, other, "token", []byte("other-token"))

	set, refs := setFromConfig(t, e, `
  gcpsm: {kind: gcpsm, endpoint: ENDPOINT, insecure: true, project: app-project}
  gcp-other: {kind: gcpsm, endpoint: ENDPOINT, insecure: true, project: other-project}
`, `
  DB_USER: gcpsm://app-project/db#user
  DB_PASSWORD: gcpsm://app-project/db#password
  DB_HOST: gcpsm://app-project/db#nested.host
  DB_OLD_PASSWORD: gcpsm://app-project/db?version=1#password
  API_KEY: gcpsm://api-key
  API_KEY_NAME: gcpsm://projects/app-project/secrets/api-key
  API_KEY_V1: gcpsm://projects/app-project/secrets/api-key/versions/1
  API_KEY_STABLE: gcpsm://app-project/api-key?version=stable
  API_KEY_BERGLAS: sm://app-project/api-key
  API_KEY_BERGLAS_V1: sm://app-project/api-key#1
  API_KEY_SECRETS_INIT: gcp:secretmanager:projects/app-project/secrets/api-key
  API_KEY_SECRETS_INIT_V1: gcp:secretmanager:projects/app-project/secrets/api-key/versions/1
  DB_PASSWORD_SECRETS_INIT: gcp:secretmanager:projects/app-project/secrets/db#password
  OTHER_TOKEN: gcp-other://token
  OTHER_TOKEN_BY_NUMBER: gcp-other://`+fmt.Sprint(e.fake.ProjectNumber(other))+`/token
`)
	before := e.fake.Calls("AccessSecretVersion")
	got, err := set.Resolve(t.Context(), refs)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	want := map[string]string{
		"DB_USER": "app-user", "DB_PASSWORD": "db-pass-v2", "DB_HOST": "db.internal", "DB_OLD_PASSWORD": "db-pass-v1",
		"API_KEY": "api-key-v2", "API_KEY_NAME": "api-key-v2", "API_KEY_V1": "api-key-v1", "API_KEY_STABLE": "api-key-v1",
		"API_KEY_BERGLAS": "api-key-v2", "API_KEY_BERGLAS_V1": "api-key-v1",
		"API_KEY_SECRETS_INIT": "api-key-v2", "API_KEY_SECRETS_INIT_V1": "api-key-v1",
		"DB_PASSWORD_SECRETS_INIT": "db-pass-v2", "OTHER_TOKEN": "other-token", "OTHER_TOKEN_BY_NUMBER": "other-token",
	}
	for name, w := range want {
		if g := got[name].Value.Reveal(); g != w {
			t.Errorf("%s (%s): got %d bytes (%s), want %q's fingerprint %s", name, refs[name], len(g), got[name].Value.Fingerprint(), name, providers.StringValue(w).Fingerprint())
		}
	}
	if v, w := got["API_KEY"].Version, e.versionID(t, p, "api-key", 2); v != w {
		t.Errorf("API_KEY version %q, want %q", v, w)
	}
	if v, w := got["API_KEY_STABLE"].Version, e.versionID(t, p, "api-key", 1); v != w {
		t.Errorf("API_KEY_STABLE version %q, want %q", v, w)
	}
	// One call per secret version however it is spelt: db, db version 1,
	// api-key, api-key version 1 (in three spellings), api-key's alias
	// stable, and the other project's token twice, as a project ID and a
	// project number are one only for GCP (telling needs a call).
	const distinct = 7
	if calls := e.fake.Calls("AccessSecretVersion") - before; calls != distinct {
		t.Errorf("%d AccessSecretVersion calls for %d names, want %d: one per secret version however it is spelt", calls, len(refs), distinct)
	}
}

// TestResolveFailures checks the all-or-nothing error: every failing
// reference is named with its reason, no value appears, and the sentinels
// can be found.
func TestResolveFailures(t *testing.T) {
	t.Parallel()
	e := ownEnv(t)
	const p = "app-project"
	values := [][]byte{[]byte("ok-value-123456789"), []byte("denied-value-123456789"), []byte("disabled-value-123456789"), []byte("destroyed-value-123456789")}
	e.addVersion(t, p, "ok", values[0])
	e.addVersion(t, p, "denied", values[1])
	e.fake.Deny(gcpfake.DenyRule{Project: p, Secret: "denied", Permissions: []string{gcpfake.PermVersionsAccess}})
	e.fake.Deny(gcpfake.DenyRule{Project: p, Secret: "denied-and-missing"})
	e.addVersion(t, p, "disabled", values[2])
	e.setState(t, p, "disabled", 1, secretmanagerpb.SecretVersion_DISABLED)
	e.addVersion(t, p, "destroyed", values[3])
	e.setState(t, p, "destroyed", 1, secretmanagerpb.SecretVersion_DESTROYED)
	e.createSecret(t, p, "empty")

	set, refs := setFromConfig(t, e, "  gcpsm: {kind: gcpsm, endpoint: ENDPOINT, insecure: true}\n", `
  OK: gcpsm://app-project/ok
  DENIED: gcpsm://app-project/denied
  DENIED_MISSING: gcpsm://app-project/denied-and-missing
  DISABLED: gcpsm://app-project/disabled
  DESTROYED: gcpsm://app-project/destroyed
  MISSING: gcpsm://app-project/missing
  MISSING_VERSION: gcpsm://app-project/ok?version=7
  NO_VERSIONS: gcpsm://app-project/empty
  UNKNOWN_ALIAS: gcpsm://app-project/ok?version=canary
  NO_PROJECT: gcpsm://ok
`)
	_, err := set.Resolve(t.Context(), refs)
	var re *providers.ResolveError
	if !errors.As(err, &re) {
		t.Fatalf("Resolve = %v, want a *providers.ResolveError", err)
	}
	byName := map[string]error{}
	var names []string
	for _, f := range re.Failures {
		byName[f.Name] = f.Err
		names = append(names, f.Name)
	}
	sort.Strings(names)
	tests := []struct {
		name    string
		is      error
		phrases []string
	}{
		{"DENIED", providers.ErrPermissionDenied, []string{"projects/app-project/secrets/denied/versions/latest", "PermissionDenied", "secretmanager.versions.access"}},
		{"DENIED_MISSING", providers.ErrPermissionDenied, []string{"denied-and-missing", "PermissionDenied"}},
		{"DISABLED", gcp.ErrVersionDisabled, []string{"projects/app-project/secrets/disabled/versions/latest", "versions/1 is DISABLED"}},
		{"DESTROYED", gcp.ErrVersionDestroyed, []string{"secrets/destroyed", "versions/1 is DESTROYED"}},
		{"MISSING", providers.ErrNotFound, []string{"projects/app-project/secrets/missing/versions/latest", "NotFound"}},
		{"MISSING_VERSION", providers.ErrNotFound, []string{"projects/app-project/secrets/ok/versions/7", "NotFound"}},
		{"NO_VERSIONS", providers.ErrNotFound, []string{"secrets/empty/versions/latest", "NotFound"}},
		{"UNKNOWN_ALIAS", providers.ErrNotFound, []string{"versions/canary", "NotFound"}},
		{"NO_PROJECT", providers.ErrInvalidReference, []string{"names no project"}},
	}
	if len(re.Failures) != len(tests) {
		t.Errorf("failures %v, want %d", names, len(tests))
	}
	for _, tt := range tests {
		err := byName[tt.name]
		if !errors.Is(err, tt.is) {
			t.Errorf("%s: %v, want an error wrapping %q", tt.name, err, tt.is)
			continue
		}
		for _, ph := range tt.phrases {
			if !strings.Contains(err.Error(), ph) {
				t.Errorf("%s: %q does not mention %q", tt.name, err, ph)
			}
		}
	}
	if errors.Is(byName["DESTROYED"], gcp.ErrVersionDisabled) || !errors.Is(byName["DESTROYED"], providers.ErrNotFound) {
		t.Errorf("DESTROYED: %v should wrap ErrNotFound and not ErrVersionDisabled", byName["DESTROYED"])
	}
	providertest.AssertRedacted(t, err.Error(), values...)
}

// TestRotation follows a secret through the life cycle rotation sees:
// the probe tracks latest without reading it, a disabled latest stops
// both probe and fetch, a pinned version stays readable, a destroyed one
// is gone, and an alias moves.
func TestRotation(t *testing.T) {
	t.Parallel()
	e := ownEnv(t)
	const p, s = "rot-project", "rotating"
	prov := e.provider(t, gcp.Options{})
	latest := mustParse(t, "gcpsm://rot-project/rotating")
	pinned1 := mustParse(t, "gcpsm://rot-project/rotating?version=1")
	aliased := mustParse(t, "gcpsm://rot-project/rotating?version=current")

	fetch := func(r providers.Ref) (string, string, error) {
		sec, err := prov.Fetch(t.Context(), r)
		return sec.Value.Reveal(), sec.Version, err
	}
	expect := func(r providers.Ref, value string, n int64) {
		t.Helper()
		v, ver, err := fetch(r)
		if err != nil {
			t.Fatalf("Fetch(%s): %v", r, err)
		}
		if v != value || ver != e.versionID(t, p, s, n) {
			t.Fatalf("Fetch(%s) = %d bytes at %q, want %q at version %d", r, len(v), ver, value, n)
		}
		probed, err := prov.ProbeVersion(t.Context(), r)
		if err != nil {
			t.Fatalf("ProbeVersion(%s): %v", r, err)
		}
		if probed != ver {
			t.Fatalf("ProbeVersion(%s) = %q, Fetch reported %q", r, probed, ver)
		}
	}

	e.addVersion(t, p, s, []byte("rot-v1"))
	e.setAlias(t, p, s, "current", 1)
	expect(latest, "rot-v1", 1)
	expect(aliased, "rot-v1", 1)

	accesses := e.fake.Calls("AccessSecretVersion")
	before, err := prov.ProbeVersion(t.Context(), latest)
	if err != nil {
		t.Fatal(err)
	}
	e.addVersion(t, p, s, []byte("rot-v2"))
	after, err := prov.ProbeVersion(t.Context(), latest)
	if err != nil {
		t.Fatal(err)
	}
	if before == after || after != e.versionID(t, p, s, 2) {
		t.Errorf("probe did not move with a new version: %q, then %q", before, after)
	}
	if n := e.fake.Calls("AccessSecretVersion") - accesses; n != 0 {
		t.Errorf("probing read the payload %d times", n)
	}
	expect(latest, "rot-v2", 2)
	expect(aliased, "rot-v1", 1) // the alias has not moved
	e.setAlias(t, p, s, "current", 2)
	expect(aliased, "rot-v2", 2)

	// Latest disabled: latest is not "the newest enabled version".
	e.setState(t, p, s, 2, secretmanagerpb.SecretVersion_DISABLED)
	if _, _, err := fetch(latest); !errors.Is(err, gcp.ErrVersionDisabled) {
		t.Errorf("Fetch of a disabled latest = %v, want ErrVersionDisabled", err)
	}
	if _, err := prov.ProbeVersion(t.Context(), latest); !errors.Is(err, gcp.ErrVersionDisabled) {
		t.Errorf("ProbeVersion of a disabled latest = %v, want ErrVersionDisabled", err)
	}
	expect(pinned1, "rot-v1", 1)
	e.setState(t, p, s, 2, secretmanagerpb.SecretVersion_ENABLED)
	expect(latest, "rot-v2", 2)

	e.setState(t, p, s, 1, secretmanagerpb.SecretVersion_DESTROYED)
	if _, _, err := fetch(pinned1); !errors.Is(err, gcp.ErrVersionDestroyed) || !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("Fetch of a destroyed version = %v, want ErrVersionDestroyed and ErrNotFound", err)
	}
	if _, err := prov.ProbeVersion(t.Context(), pinned1); !errors.Is(err, gcp.ErrVersionDestroyed) {
		t.Errorf("ProbeVersion of a destroyed version = %v, want ErrVersionDestroyed", err)
	}
	expect(latest, "rot-v2", 2)
}

// TestTransientErrorsRetried checks, over the real client, that
// UNAVAILABLE and RESOURCE_EXHAUSTED are retried and that other errors are
// not.
func TestTransientErrorsRetried(t *testing.T) {
	t.Parallel()
	e := ownEnv(t)
	e.addVersion(t, "retry-project", "s", []byte("retry-value"))
	prov := e.provider(t, gcp.Options{})
	r := mustParse(t, "gcpsm://retry-project/s")

	e.fake.InjectErrors("AccessSecretVersion", codes.Unavailable, codes.ResourceExhausted)
	sec, err := prov.Fetch(t.Context(), r)
	if err != nil || sec.Value.Reveal() != "retry-value" {
		t.Fatalf("Fetch after two transient errors: %v", err)
	}
	if n := e.fake.Calls("AccessSecretVersion"); n != 3 {
		t.Errorf("%d AccessSecretVersion calls, want 3 (two failures, one success)", n)
	}

	gets := e.fake.Calls("GetSecretVersion")
	e.fake.InjectErrors("GetSecretVersion", codes.Unavailable)
	if _, err := prov.ProbeVersion(t.Context(), r); err != nil {
		t.Fatalf("ProbeVersion after a transient error: %v", err)
	}
	if n := e.fake.Calls("GetSecretVersion") - gets; n != 2 {
		t.Errorf("%d GetSecretVersion calls for one probe after a transient error, want 2", n)
	}

	e.fake.InjectErrors("AccessSecretVersion", codes.Internal)
	if _, err := prov.Fetch(t.Context(), r); err == nil || !strings.Contains(err.Error(), "gRPC Internal") {
		t.Errorf("Fetch with INTERNAL = %v, want the error", err)
	}
	if n := e.fake.Calls("AccessSecretVersion"); n != 4 {
		t.Errorf("%d AccessSecretVersion calls after a permanent error, want 4 (no retry)", n)
	}
}

// TestChecksumMismatchOverTheWire corrupts the checksum of the fake's
// answers: the real client delivers them, the provider refuses them.
func TestChecksumMismatchOverTheWire(t *testing.T) {
	t.Parallel()
	e := ownEnv(t)
	value := []byte("crc-protected-value")
	e.addVersion(t, "crc-project", "s", value)
	prov := e.provider(t, gcp.Options{})
	e.fake.CorruptChecksums(true)
	sec, err := prov.Fetch(t.Context(), mustParse(t, "gcpsm://crc-project/s"))
	if !errors.Is(err, gcp.ErrChecksumMismatch) {
		t.Fatalf("Fetch = %v, want ErrChecksumMismatch", err)
	}
	if sec.Value.Len() != 0 {
		t.Error("a value came with the checksum error")
	}
	if !strings.Contains(err.Error(), "projects/crc-project/secrets/s/versions/latest") {
		t.Errorf("%q does not name the secret", err)
	}
	providertest.AssertRedacted(t, err.Error(), value)
	e.fake.CorruptChecksums(false)
	if _, err := prov.Fetch(t.Context(), mustParse(t, "gcpsm://crc-project/s")); err != nil {
		t.Errorf("Fetch after the corruption stopped: %v", err)
	}
}
