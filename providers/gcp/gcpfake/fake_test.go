package gcpfake_test

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/keyward/keyward/providers/gcp/gcpfake"
)

// start serves a fake for t and returns it with a real client of it.
func start(t *testing.T) (*gcpfake.Server, *secretmanager.Client) {
	t.Helper()
	s, err := gcpfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	c, err := secretmanager.NewClient(context.Background(), s.ClientOptions()...)
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s, c
}

var automatic = &secretmanagerpb.Replication{Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}}}

func create(t *testing.T, c *secretmanager.Client, project, id string) *secretmanagerpb.Secret {
	t.Helper()
	s, err := c.CreateSecret(t.Context(), &secretmanagerpb.CreateSecretRequest{
		Parent: "projects/" + project, SecretId: id, Secret: &secretmanagerpb.Secret{Replication: automatic},
	})
	if err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	return s
}

func add(t *testing.T, c *secretmanager.Client, parent string, data string) *secretmanagerpb.SecretVersion {
	t.Helper()
	v, err := c.AddSecretVersion(t.Context(), &secretmanagerpb.AddSecretVersionRequest{
		Parent: parent, Payload: &secretmanagerpb.SecretPayload{Data: []byte(data)},
	})
	if err != nil {
		t.Fatalf("AddSecretVersion: %v", err)
	}
	return v
}

func access(t *testing.T, c *secretmanager.Client, name string) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	t.Helper()
	return c.AccessSecretVersion(t.Context(), &secretmanagerpb.AccessSecretVersionRequest{Name: name})
}

func wantCode(t *testing.T, what string, err error, code codes.Code, msgPart string) {
	t.Helper()
	if status.Code(err) != code {
		t.Errorf("%s: got %v, want code %s", what, err, code)
		return
	}
	if msgPart != "" && !strings.Contains(status.Convert(err).Message(), msgPart) {
		t.Errorf("%s: message %q does not contain %q", what, status.Convert(err).Message(), msgPart)
	}
}

func TestVersionsAndLatest(t *testing.T) {
	t.Parallel()
	srv, c := start(t)
	num := srv.ProjectNumber("my-project")
	sec := create(t, c, "my-project", "db")
	if want := fmt.Sprintf("projects/%d/secrets/db", num); sec.GetName() != want {
		t.Errorf("secret name %q, want %q (names carry the project number)", sec.GetName(), want)
	}
	if sec.GetCreateTime() == nil || sec.GetEtag() == "" {
		t.Errorf("secret lacks create_time or etag: %v", sec)
	}

	_, err := access(t, c, "projects/my-project/secrets/db/versions/latest")
	wantCode(t, "latest of a secret without versions", err, codes.NotFound, "not found or has no versions")

	for i := 1; i <= 3; i++ {
		v := add(t, c, "projects/my-project/secrets/db", fmt.Sprintf("value-%d", i))
		if want := fmt.Sprintf("projects/%d/secrets/db/versions/%d", num, i); v.GetName() != want {
			t.Errorf("version %d named %q, want %q", i, v.GetName(), want)
		}
		if v.GetState() != secretmanagerpb.SecretVersion_ENABLED || v.GetCreateTime() == nil || v.GetClientSpecifiedPayloadChecksum() {
			t.Errorf("new version %d: %v", i, v)
		}
	}
	for _, tt := range []struct{ name, data string }{
		{"projects/my-project/secrets/db/versions/latest", "value-3"},
		{"projects/my-project/secrets/db/versions/1", "value-1"},
		{fmt.Sprintf("projects/%d/secrets/db/versions/2", num), "value-2"},
	} {
		resp, err := access(t, c, tt.name)
		if err != nil {
			t.Fatalf("access %s: %v", tt.name, err)
		}
		if string(resp.GetPayload().GetData()) != tt.data {
			t.Errorf("access %s = %q, want %q", tt.name, resp.GetPayload().GetData(), tt.data)
		}
		crc := int64(crc32.Checksum([]byte(tt.data), crc32.MakeTable(crc32.Castagnoli)))
		if resp.GetPayload().DataCrc32C == nil || resp.GetPayload().GetDataCrc32C() != crc {
			t.Errorf("access %s: data_crc32c %v, want %d", tt.name, resp.GetPayload().DataCrc32C, crc)
		}
		if !strings.HasPrefix(resp.GetName(), fmt.Sprintf("projects/%d/secrets/db/versions/", num)) || strings.HasSuffix(resp.GetName(), "latest") {
			t.Errorf("access %s answered name %q, want the resolved version", tt.name, resp.GetName())
		}
	}
	got, err := c.GetSecretVersion(t.Context(), &secretmanagerpb.GetSecretVersionRequest{Name: "projects/my-project/secrets/db/versions/latest"})
	if err != nil || got.GetName() != fmt.Sprintf("projects/%d/secrets/db/versions/3", num) {
		t.Errorf("GetSecretVersion latest = %v, %v", got.GetName(), err)
	}

	_, err = access(t, c, "projects/my-project/secrets/db/versions/4")
	wantCode(t, "missing version", err, codes.NotFound, "Secret Version")
	_, err = access(t, c, "projects/my-project/secrets/nope/versions/1")
	wantCode(t, "missing secret", err, codes.NotFound, "not found")
	_, err = access(t, c, "projects/my-project/secrets/nope/versions/latest")
	wantCode(t, "missing secret, latest", err, codes.NotFound, "not found")
	_, err = access(t, c, "projects/my-project/secrets/db/versions/0")
	wantCode(t, "version 0", err, codes.InvalidArgument, "")
	_, err = c.GetSecret(t.Context(), &secretmanagerpb.GetSecretRequest{Name: "projects/my-project/secrets/nope"})
	wantCode(t, "GetSecret of a missing secret", err, codes.NotFound, "")
	_, err = c.CreateSecret(t.Context(), &secretmanagerpb.CreateSecretRequest{Parent: "projects/my-project", SecretId: "db", Secret: &secretmanagerpb.Secret{Replication: automatic}})
	wantCode(t, "CreateSecret twice", err, codes.AlreadyExists, "already exists")

	// A deleted secret is gone; one created again under its name starts
	// again at version 1, told from the old version 1 by its create_time
	// alone (in microseconds, as the service's).
	old1, err := c.GetSecretVersion(t.Context(), &secretmanagerpb.GetSecretVersionRequest{Name: "projects/my-project/secrets/db/versions/1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSecret(t.Context(), &secretmanagerpb.DeleteSecretRequest{Name: "projects/my-project/secrets/db"}); err != nil {
		t.Fatal(err)
	}
	_, err = access(t, c, "projects/my-project/secrets/db/versions/1")
	wantCode(t, "access after delete", err, codes.NotFound, "")
	create(t, c, "my-project", "db")
	v := add(t, c, "projects/my-project/secrets/db", "again")
	if v.GetName() != old1.GetName() {
		t.Errorf("a re-created secret's first version is %q, want %q", v.GetName(), old1.GetName())
	}
	oldT, newT := old1.GetCreateTime().AsTime(), v.GetCreateTime().AsTime()
	if !newT.After(oldT) {
		t.Errorf("re-created version 1 has create_time %v, not after the old one's %v", newT, oldT)
	}
	for _, ts := range []time.Time{oldT, newT} {
		if ts.Nanosecond()%1000 != 0 {
			t.Errorf("create_time %v has sub-microsecond digits", ts)
		}
	}
}

func TestStates(t *testing.T) {
	t.Parallel()
	_, c := start(t)
	create(t, c, "my-project", "s")
	add(t, c, "projects/my-project/secrets/s", "one")
	add(t, c, "projects/my-project/secrets/s", "two")
	v2 := "projects/my-project/secrets/s/versions/2"

	d, err := c.DisableSecretVersion(t.Context(), &secretmanagerpb.DisableSecretVersionRequest{Name: v2})
	if err != nil || d.GetState() != secretmanagerpb.SecretVersion_DISABLED {
		t.Fatalf("disable: %v, %v", d, err)
	}
	_, err = access(t, c, v2)
	wantCode(t, "access disabled", err, codes.FailedPrecondition, "is in DISABLED state")
	_, err = access(t, c, "projects/my-project/secrets/s/versions/latest")
	wantCode(t, "access latest when latest is disabled", err, codes.FailedPrecondition, "versions/2] is in DISABLED state")
	got, err := c.GetSecretVersion(t.Context(), &secretmanagerpb.GetSecretVersionRequest{Name: v2})
	if err != nil || got.GetState() != secretmanagerpb.SecretVersion_DISABLED {
		t.Errorf("GetSecretVersion of a disabled version: %v, %v", got, err)
	}
	if resp, err := access(t, c, "projects/my-project/secrets/s/versions/1"); err != nil || string(resp.GetPayload().GetData()) != "one" {
		t.Errorf("version 1 while 2 is disabled: %v", err)
	}

	// A stale etag is refused; the current one is accepted.
	_, err = c.EnableSecretVersion(t.Context(), &secretmanagerpb.EnableSecretVersionRequest{Name: v2, Etag: "\"stale\""})
	wantCode(t, "enable with a stale etag", err, codes.Aborted, "etag")
	e, err := c.EnableSecretVersion(t.Context(), &secretmanagerpb.EnableSecretVersionRequest{Name: v2, Etag: d.GetEtag()})
	if err != nil || e.GetState() != secretmanagerpb.SecretVersion_ENABLED {
		t.Fatalf("enable: %v, %v", e, err)
	}
	if resp, err := access(t, c, v2); err != nil || string(resp.GetPayload().GetData()) != "two" {
		t.Errorf("access re-enabled: %v", err)
	}

	x, err := c.DestroySecretVersion(t.Context(), &secretmanagerpb.DestroySecretVersionRequest{Name: v2})
	if err != nil || x.GetState() != secretmanagerpb.SecretVersion_DESTROYED || x.GetDestroyTime() == nil {
		t.Fatalf("destroy: %v, %v", x, err)
	}
	_, err = access(t, c, v2)
	wantCode(t, "access destroyed", err, codes.FailedPrecondition, "is in DESTROYED state")
	_, err = c.EnableSecretVersion(t.Context(), &secretmanagerpb.EnableSecretVersionRequest{Name: v2})
	wantCode(t, "enable destroyed", err, codes.FailedPrecondition, "DESTROYED")
	_, err = c.DisableSecretVersion(t.Context(), &secretmanagerpb.DisableSecretVersionRequest{Name: v2})
	wantCode(t, "disable destroyed", err, codes.FailedPrecondition, "DESTROYED")
	if got, err := c.GetSecretVersion(t.Context(), &secretmanagerpb.GetSecretVersionRequest{Name: v2}); err != nil || got.GetState() != secretmanagerpb.SecretVersion_DESTROYED {
		t.Errorf("GetSecretVersion of a destroyed version: %v, %v", got, err)
	}

	// latest is the newest version whatever its state; a new one moves it.
	add(t, c, "projects/my-project/secrets/s", "three")
	if resp, err := access(t, c, "projects/my-project/secrets/s/versions/latest"); err != nil || string(resp.GetPayload().GetData()) != "three" {
		t.Errorf("latest after a new version: %v", err)
	}
	// Aliases and latest are only for Get and Access.
	_, err = c.DisableSecretVersion(t.Context(), &secretmanagerpb.DisableSecretVersionRequest{Name: "projects/my-project/secrets/s/versions/latest"})
	wantCode(t, "disable latest", err, codes.InvalidArgument, "")
}

func TestAliases(t *testing.T) {
	t.Parallel()
	_, c := start(t)
	create(t, c, "my-project", "s")
	add(t, c, "projects/my-project/secrets/s", "one")
	add(t, c, "projects/my-project/secrets/s", "two")
	update := func(aliases map[string]int64) error {
		_, err := c.UpdateSecret(t.Context(), &secretmanagerpb.UpdateSecretRequest{
			Secret:     &secretmanagerpb.Secret{Name: "projects/my-project/secrets/s", VersionAliases: aliases},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"version_aliases"}},
		})
		return err
	}
	if err := update(map[string]int64{"prod": 1, "canary": 2}); err != nil {
		t.Fatal(err)
	}
	for alias, want := range map[string]string{"prod": "one", "canary": "two"} {
		resp, err := access(t, c, "projects/my-project/secrets/s/versions/"+alias)
		if err != nil || string(resp.GetPayload().GetData()) != want {
			t.Errorf("access alias %s: %v", alias, err)
		}
		if !strings.HasSuffix(resp.GetName(), map[string]string{"one": "/versions/1", "two": "/versions/2"}[want]) {
			t.Errorf("alias %s resolved to %q", alias, resp.GetName())
		}
	}
	sec, err := c.GetSecret(t.Context(), &secretmanagerpb.GetSecretRequest{Name: "projects/my-project/secrets/s"})
	if err != nil || len(sec.GetVersionAliases()) != 2 {
		t.Errorf("GetSecret aliases: %v, %v", sec.GetVersionAliases(), err)
	}
	_, err = access(t, c, "projects/my-project/secrets/s/versions/staging")
	wantCode(t, "unknown alias", err, codes.NotFound, "")
	wantCode(t, "alias to a missing version", update(map[string]int64{"x": 9}), codes.InvalidArgument, "")
	wantCode(t, "alias named latest", update(map[string]int64{"latest": 1}), codes.InvalidArgument, "")
	wantCode(t, "alias starting with a digit", update(map[string]int64{"1x": 1}), codes.InvalidArgument, "")
	_, err = c.UpdateSecret(t.Context(), &secretmanagerpb.UpdateSecretRequest{Secret: &secretmanagerpb.Secret{Name: "projects/my-project/secrets/s"}})
	wantCode(t, "update without a mask", err, codes.InvalidArgument, "")
	_, err = c.CreateSecret(t.Context(), &secretmanagerpb.CreateSecretRequest{
		Parent: "projects/my-project", SecretId: "with-alias",
		Secret: &secretmanagerpb.Secret{Replication: automatic, VersionAliases: map[string]int64{"a": 1}},
	})
	wantCode(t, "create with an alias", err, codes.InvalidArgument, "")
}

func TestPayloadChecks(t *testing.T) {
	t.Parallel()
	_, c := start(t)
	create(t, c, "my-project", "s")
	parent := "projects/my-project/secrets/s"
	data := []byte("checked")
	crc := gcpfake.Checksum(data)
	v, err := c.AddSecretVersion(t.Context(), &secretmanagerpb.AddSecretVersionRequest{Parent: parent, Payload: &secretmanagerpb.SecretPayload{Data: data, DataCrc32C: &crc}})
	if err != nil || !v.GetClientSpecifiedPayloadChecksum() {
		t.Errorf("add with a checksum: %v, %v", v, err)
	}
	_, err = c.AddSecretVersion(t.Context(), &secretmanagerpb.AddSecretVersionRequest{Parent: parent, Payload: &secretmanagerpb.SecretPayload{Data: data, DataCrc32C: proto.Int64(crc + 1)}})
	wantCode(t, "add with a wrong checksum", err, codes.InvalidArgument, "Checksum mismatch")
	_, err = c.AddSecretVersion(t.Context(), &secretmanagerpb.AddSecretVersionRequest{Parent: parent, Payload: &secretmanagerpb.SecretPayload{Data: make([]byte, gcpfake.MaxPayload+1)}})
	wantCode(t, "add 64 KiB + 1", err, codes.InvalidArgument, "")
	big := bytes.Repeat([]byte{0, 0xff}, gcpfake.MaxPayload/2)
	if _, err := c.AddSecretVersion(t.Context(), &secretmanagerpb.AddSecretVersionRequest{Parent: parent, Payload: &secretmanagerpb.SecretPayload{Data: big}}); err != nil {
		t.Errorf("add 64 KiB: %v", err)
	}
	resp, err := access(t, c, parent+"/versions/latest")
	if err != nil || !bytes.Equal(resp.GetPayload().GetData(), big) || resp.GetPayload().GetDataCrc32C() != gcpfake.Checksum(big) {
		t.Errorf("access 64 KiB of binary: %v", err)
	}
	_, err = c.AddSecretVersion(t.Context(), &secretmanagerpb.AddSecretVersionRequest{Parent: "projects/my-project/secrets/nope", Payload: &secretmanagerpb.SecretPayload{Data: data}})
	wantCode(t, "add to a missing secret", err, codes.NotFound, "")
}

func TestNames(t *testing.T) {
	t.Parallel()
	_, c := start(t)
	for _, tt := range []struct {
		what string
		req  *secretmanagerpb.CreateSecretRequest
	}{
		{"bad secret id", &secretmanagerpb.CreateSecretRequest{Parent: "projects/my-project", SecretId: "a.b", Secret: &secretmanagerpb.Secret{Replication: automatic}}},
		{"bad parent", &secretmanagerpb.CreateSecretRequest{Parent: "my-project", SecretId: "a", Secret: &secretmanagerpb.Secret{Replication: automatic}}},
		{"bad project id", &secretmanagerpb.CreateSecretRequest{Parent: "projects/My_Project", SecretId: "a", Secret: &secretmanagerpb.Secret{Replication: automatic}}},
		{"no replication", &secretmanagerpb.CreateSecretRequest{Parent: "projects/my-project", SecretId: "a", Secret: &secretmanagerpb.Secret{}}},
	} {
		_, err := c.CreateSecret(t.Context(), tt.req)
		wantCode(t, tt.what, err, codes.InvalidArgument, "")
	}
	for _, name := range []string{
		"projects/my-project/secrets/s",
		"projects/my-project/secrets/s/versions/",
		"projects/my-project/locations/us-east1/secrets/s/versions/1",
		"my-project/s/1",
	} {
		_, err := access(t, c, name)
		wantCode(t, "access "+name, err, codes.InvalidArgument, "")
	}
}

func TestDeny(t *testing.T) {
	t.Parallel()
	srv, c := start(t)
	create(t, c, "my-project", "open")
	create(t, c, "my-project", "closed")
	add(t, c, "projects/my-project/secrets/open", "o")
	add(t, c, "projects/my-project/secrets/closed", "c")
	srv.Deny(gcpfake.DenyRule{Project: "my-project", Secret: "closed", Permissions: []string{gcpfake.PermVersionsAccess}})
	srv.Deny(gcpfake.DenyRule{Project: fmt.Sprint(srv.ProjectNumber("locked-project"))})

	_, err := access(t, c, "projects/my-project/secrets/closed/versions/latest")
	wantCode(t, "denied access", err, codes.PermissionDenied, "Permission 'secretmanager.versions.access' denied for resource 'projects/my-project/secrets/closed/versions/latest'")
	if _, err := c.GetSecretVersion(t.Context(), &secretmanagerpb.GetSecretVersionRequest{Name: "projects/my-project/secrets/closed/versions/latest"}); err != nil {
		t.Errorf("get of a secret whose access only is denied: %v", err)
	}
	if _, err := access(t, c, "projects/my-project/secrets/open/versions/latest"); err != nil {
		t.Errorf("access of another secret: %v", err)
	}
	// The whole project, by number: even a secret that does not exist is
	// PERMISSION_DENIED, not NOT_FOUND (existence is not revealed).
	_, err = access(t, c, "projects/locked-project/secrets/whatever/versions/1")
	wantCode(t, "denied project", err, codes.PermissionDenied, "(or it may not exist)")
	_, err = c.CreateSecret(t.Context(), &secretmanagerpb.CreateSecretRequest{Parent: "projects/locked-project", SecretId: "x", Secret: &secretmanagerpb.Secret{Replication: automatic}})
	wantCode(t, "create in a denied project", err, codes.PermissionDenied, "secretmanager.secrets.create")
}

func TestFaults(t *testing.T) {
	t.Parallel()
	srv, c := start(t)
	create(t, c, "my-project", "s")
	add(t, c, "projects/my-project/secrets/s", "v")
	// GetSecretVersion is not retried by the client's defaults, so each
	// injected error reaches the caller.
	srv.InjectErrors("GetSecretVersion", codes.Unavailable, codes.Internal)
	for _, want := range []codes.Code{codes.Unavailable, codes.Internal, codes.OK} {
		_, err := c.GetSecretVersion(t.Context(), &secretmanagerpb.GetSecretVersionRequest{Name: "projects/my-project/secrets/s/versions/1"})
		if status.Code(err) != want {
			t.Errorf("GetSecretVersion = %v, want %s", err, want)
		}
	}
	if n := srv.Calls("GetSecretVersion"); n != 3 {
		t.Errorf("Calls = %d, want 3", n)
	}
	srv.CorruptChecksums(true)
	resp, err := access(t, c, "projects/my-project/secrets/s/versions/1")
	if err != nil || resp.GetPayload().GetDataCrc32C() == gcpfake.Checksum([]byte("v")) {
		t.Errorf("CorruptChecksums: %v, checksum still right", err)
	}
	if got := srv.Secrets(); len(got) != 1 || !strings.HasSuffix(got[0], "/secrets/s") {
		t.Errorf("Secrets = %v", got)
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	srv, c := start(t)
	srv.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := c.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: "projects/my-project/secrets/s/versions/1"})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("call during an hour of latency = %v, want DeadlineExceeded", err)
	}
	srv.SetLatency(0)
	_, err = c.GetSecretVersion(t.Context(), &secretmanagerpb.GetSecretVersionRequest{Name: "projects/my-project/secrets/s/versions/1"})
	wantCode(t, "without latency", err, codes.NotFound, "")
}
