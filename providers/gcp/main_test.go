package gcp_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/gcp"
	"github.com/keyward/keyward/providers/gcp/gcpfake"
)

// env is a fake Secret Manager and a client of it for setting up secrets.
type env struct {
	fake  *gcpfake.Server
	admin *secretmanager.Client
}

// shared is the fake every test of the package uses unless it needs one of
// its own (to inject faults or count calls); started once in TestMain.
var shared *env

// testProject is the project the tests store secrets in.
const testProject = "kw-test-project"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	e, err := startEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer e.close()
	defer removeBinary()
	shared = e
	return m.Run()
}

func startEnv() (*env, error) {
	f, err := gcpfake.Start()
	if err != nil {
		return nil, err
	}
	c, err := secretmanager.NewClient(context.Background(), f.ClientOptions()...)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("secret manager client: %w", err)
	}
	return &env{fake: f, admin: c}, nil
}

func (e *env) close() {
	e.admin.Close()
	e.fake.Close()
}

// ownEnv starts a fake for t alone, stopped when t ends.
func ownEnv(t *testing.T) *env {
	t.Helper()
	e, err := startEnv()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	return e
}

// provider returns a provider of e's fake, closed at the end of t.
func (e *env) provider(t *testing.T, o gcp.Options) *gcp.Provider {
	t.Helper()
	o.Endpoint, o.Insecure = e.fake.Addr(), true
	p, err := gcp.New(o, nil)
	if err != nil {
		t.Fatalf("gcp.New: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// createSecret creates project/secret (deleted when t ends) unless it exists.
func (e *env) createSecret(t *testing.T, project, secret string) {
	t.Helper()
	_, err := e.admin.CreateSecret(t.Context(), &secretmanagerpb.CreateSecretRequest{
		Parent:   "projects/" + project,
		SecretId: secret,
		Secret: &secretmanagerpb.Secret{Replication: &secretmanagerpb.Replication{
			Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}},
		}},
	})
	if status.Code(err) == codes.AlreadyExists {
		return
	}
	if err != nil {
		t.Fatalf("CreateSecret %s/%s: %v", project, secret, err)
	}
	t.Cleanup(func() {
		err := e.admin.DeleteSecret(context.Background(), &secretmanagerpb.DeleteSecretRequest{Name: "projects/" + project + "/secrets/" + secret})
		if err != nil && status.Code(err) != codes.NotFound {
			t.Errorf("DeleteSecret %s/%s: %v", project, secret, err)
		}
	})
}

// addVersion adds a version holding value to project/secret, creating the
// secret when needed, and returns the version's number.
func (e *env) addVersion(t *testing.T, project, secret string, value []byte) int64 {
	t.Helper()
	e.createSecret(t, project, secret)
	crc := gcpfake.Checksum(value)
	v, err := e.admin.AddSecretVersion(t.Context(), &secretmanagerpb.AddSecretVersionRequest{
		Parent:  "projects/" + project + "/secrets/" + secret,
		Payload: &secretmanagerpb.SecretPayload{Data: value, DataCrc32C: &crc},
	})
	if err != nil {
		t.Fatalf("AddSecretVersion %s/%s: %v", project, secret, err)
	}
	n, err := strconv.ParseInt(lastSegment(v.GetName()), 10, 64)
	if err != nil {
		t.Fatalf("version name %q: %v", v.GetName(), err)
	}
	return n
}

func lastSegment(s string) string { return s[strings.LastIndexByte(s, '/')+1:] }

// versionName is the resolved name the fake reports for a version.
func (e *env) versionName(project, secret string, n int64) string {
	return fmt.Sprintf("projects/%d/secrets/%s/versions/%d", e.fake.ProjectNumber(project), secret, n)
}

// versionID is the identity a Fetch or ProbeVersion of version n of
// project/secret reports: its resolved name and, after an "@", its
// create_time as the service reports it (admin GetSecretVersion).
func (e *env) versionID(t *testing.T, project, secret string, n int64) string {
	t.Helper()
	v, err := e.admin.GetSecretVersion(t.Context(), &secretmanagerpb.GetSecretVersionRequest{
		Name: fmt.Sprintf("projects/%s/secrets/%s/versions/%d", project, secret, n),
	})
	if err != nil {
		t.Fatalf("GetSecretVersion %s/%s/%d: %v", project, secret, n, err)
	}
	return e.versionName(project, secret, n) + "@" + v.GetCreateTime().AsTime().UTC().Format(time.RFC3339Nano)
}

// setState enables, disables or destroys version n of project/secret.
func (e *env) setState(t *testing.T, project, secret string, n int64, state secretmanagerpb.SecretVersion_State) {
	t.Helper()
	name := fmt.Sprintf("projects/%s/secrets/%s/versions/%d", project, secret, n)
	var err error
	switch state {
	case secretmanagerpb.SecretVersion_DISABLED:
		_, err = e.admin.DisableSecretVersion(t.Context(), &secretmanagerpb.DisableSecretVersionRequest{Name: name})
	case secretmanagerpb.SecretVersion_ENABLED:
		_, err = e.admin.EnableSecretVersion(t.Context(), &secretmanagerpb.EnableSecretVersionRequest{Name: name})
	case secretmanagerpb.SecretVersion_DESTROYED:
		_, err = e.admin.DestroySecretVersion(t.Context(), &secretmanagerpb.DestroySecretVersionRequest{Name: name})
	}
	if err != nil {
		t.Fatalf("set %s to %s: %v", name, state, err)
	}
}

// setAlias points alias at version n of project/secret.
func (e *env) setAlias(t *testing.T, project, secret, alias string, n int64) {
	t.Helper()
	_, err := e.admin.UpdateSecret(t.Context(), &secretmanagerpb.UpdateSecretRequest{
		Secret: &secretmanagerpb.Secret{
			Name:           "projects/" + project + "/secrets/" + secret,
			VersionAliases: map[string]int64{alias: n},
		},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"version_aliases"}},
	})
	if err != nil {
		t.Fatalf("UpdateSecret %s/%s aliases: %v", project, secret, err)
	}
}

// mustParse parses a reference in any spelling.
func mustParse(t *testing.T, s string) providers.Ref {
	t.Helper()
	r, err := providers.Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return r
}
