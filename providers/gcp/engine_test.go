package gcp

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/googleapis/gax-go/v2"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/gcp/gcpfake"
	"github.com/keyward/keyward/render"
	"github.com/keyward/keyward/rotate"
)

// directClient is a secretClient that calls a gcpfake.Server's methods
// in process, without a socket, so that the rotation engine can run over
// the fake inside a synctest bubble.
type directClient struct{ srv *gcpfake.Server }

func (d directClient) AccessSecretVersion(ctx context.Context, req *secretmanagerpb.AccessSecretVersionRequest, _ ...gax.CallOption) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	return d.srv.AccessSecretVersion(ctx, req)
}

func (d directClient) GetSecretVersion(ctx context.Context, req *secretmanagerpb.GetSecretVersionRequest, _ ...gax.CallOption) (*secretmanagerpb.SecretVersion, error) {
	return d.srv.GetSecretVersion(ctx, req)
}

func (directClient) Close() error { return nil }

// engineKinds numbers the kinds setOf registers.
var engineKinds atomic.Int64

// setOf returns a provider set whose gcpsm instance is p, through a kind
// registered for this test binary.
func setOf(t *testing.T, p *Provider) *providers.Set {
	t.Helper()
	kind := fmt.Sprintf("gcpsm-engine-test-%d", engineKinds.Add(1))
	providers.Register(providers.Kind{
		Name: kind, Params: []string{ParamVersion}, CheckRef: CheckRef,
		New: func(providers.Instance) (providers.Provider, error) { return p, nil },
	})
	set := providers.NewSet(providers.Instance{}, []providers.Instance{{Name: KindName, Kind: kind}})
	t.Cleanup(func() { _ = set.Close() })
	return set
}

// TestEngineSeesRecreatedSecret runs the rotation engine over the fake
// Secret Manager: a secret deleted and created again (versions/1 again)
// with another value reaches the rendered file, whether the deletion was
// seen by a check in between or not. Before version identities carried
// create_time, the engine's probe saw versions/1 both times and kept the
// deleted secret's value.
func TestEngineSeesRecreatedSecret(t *testing.T) {
	t.Parallel()
	for _, seen := range []bool{false, true} {
		name := "unseen deletion"
		if seen {
			name = "deletion seen by a check"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				srv := gcpfake.New()
				ctx := context.Background()
				create := func(value string) {
					t.Helper()
					_, err := srv.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{
						Parent: "projects/eng-project", SecretId: "db",
						Secret: &secretmanagerpb.Secret{Replication: &secretmanagerpb.Replication{
							Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}},
						}},
					})
					if err != nil {
						t.Fatal(err)
					}
					v, err := srv.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
						Parent: "projects/eng-project/secrets/db", Payload: &secretmanagerpb.SecretPayload{Data: []byte(value)},
					})
					if err != nil || lastSegmentOf(v.GetName()) != "1" {
						t.Fatalf("AddSecretVersion = %v, %v; want versions/1", v.GetName(), err)
					}
				}
				create("first-db-password")

				p, err := New(Options{}, nil)
				if err != nil {
					t.Fatal(err)
				}
				p.dial = func(context.Context) (secretClient, error) { return directClient{srv}, nil }
				dir := t.TempDir()
				out := filepath.Join(dir, "db")
				eng, err := rotate.New(rotate.Options{
					Providers: setOf(t, p),
					Secrets:   map[string]providers.Ref{"DB": {Scheme: KindName, Path: "eng-project/db"}},
					Files:     []rotate.File{{File: render.File{Path: out, Format: render.FormatRaw, Secret: "DB", UID: -1, GID: -1}}},
					Interval:  10 * time.Second,
					Rand:      func() float64 { return 0.5 },
				})
				if err != nil {
					t.Fatal(err)
				}
				if err := eng.Init(ctx); err != nil {
					t.Fatal(err)
				}
				runCtx, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() { done <- eng.Run(runCtx) }()
				defer func() {
					cancel()
					<-done
				}()

				time.Sleep(5 * time.Second)
				if _, err := srv.DeleteSecret(ctx, &secretmanagerpb.DeleteSecretRequest{Name: "projects/eng-project/secrets/db"}); err != nil {
					t.Fatal(err)
				}
				if seen {
					// A probe finds the secret missing; the last good
					// value stays in place.
					time.Sleep(10 * time.Second)
					synctest.Wait()
					if got := readString(t, out); got != "first-db-password" {
						t.Fatalf("while the secret is deleted the file holds another value")
					}
				}
				time.Sleep(time.Second)
				create("second-db-password")
				time.Sleep(20 * time.Second)
				synctest.Wait()
				if got := readString(t, out); got != "second-db-password" {
					t.Fatalf("the file still holds the deleted secret's value after the secret was created again")
				}
			})
		})
	}
}

func lastSegmentOf(s string) string { return s[len(filepath.Dir(s))+1:] }

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// countingClient is a directClient that counts its calls by method.
type countingClient struct {
	directClient
	gets, accesses atomic.Int32
}

func (c *countingClient) AccessSecretVersion(ctx context.Context, req *secretmanagerpb.AccessSecretVersionRequest, o ...gax.CallOption) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	c.accesses.Add(1)
	return c.directClient.AccessSecretVersion(ctx, req, o...)
}

func (c *countingClient) GetSecretVersion(ctx context.Context, req *secretmanagerpb.GetSecretVersionRequest, o ...gax.CallOption) (*secretmanagerpb.SecretVersion, error) {
	c.gets.Add(1)
	return c.directClient.GetSecretVersion(ctx, req, o...)
}

// TestEngineProbeThenAccess: when the engine's probe (GetSecretVersion of
// latest) finds a new version, the fetch that follows reads that version
// with AccessSecretVersion alone: one GetSecretVersion per check, not a
// second one asking again what the probe just learnt.
func TestEngineProbeThenAccess(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := gcpfake.New()
		ctx := context.Background()
		if _, err := srv.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{
			Parent: "projects/eng-project", SecretId: "db",
			Secret: &secretmanagerpb.Secret{Replication: &secretmanagerpb.Replication{
				Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}},
			}},
		}); err != nil {
			t.Fatal(err)
		}
		add := func(value string) {
			t.Helper()
			if _, err := srv.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
				Parent: "projects/eng-project/secrets/db", Payload: &secretmanagerpb.SecretPayload{Data: []byte(value)},
			}); err != nil {
				t.Fatal(err)
			}
		}
		add("first-db-password")
		p, err := New(Options{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		cc := &countingClient{directClient: directClient{srv}}
		p.dial = func(context.Context) (secretClient, error) { return cc, nil }
		out := filepath.Join(t.TempDir(), "db")
		eng, err := rotate.New(rotate.Options{
			Providers: setOf(t, p),
			Secrets:   map[string]providers.Ref{"DB": {Scheme: KindName, Path: "eng-project/db"}},
			Files:     []rotate.File{{File: render.File{Path: out, Format: render.FormatRaw, Secret: "DB", UID: -1, GID: -1}}},
			Interval:  10 * time.Second,
			Rand:      func() float64 { return 0.5 },
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Init(ctx); err != nil {
			t.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- eng.Run(runCtx) }()
		defer func() {
			cancel()
			<-done
		}()
		if g, a := cc.gets.Load(), cc.accesses.Load(); g != 1 || a != 1 {
			t.Fatalf("Init: %d GetSecretVersion, %d AccessSecretVersion; want 1 and 1", g, a)
		}
		time.Sleep(5 * time.Second)
		add("second-db-password")
		time.Sleep(10 * time.Second) // one check: a probe that finds versions/2
		synctest.Wait()
		if got := readString(t, out); got != "second-db-password" {
			t.Fatal("the new version was not rendered")
		}
		if g, a := cc.gets.Load(), cc.accesses.Load(); g != 2 || a != 2 {
			t.Fatalf("after a check that found a new version: %d GetSecretVersion, %d AccessSecretVersion in all; want 2 and 2 (the probe, then the access of the version it found)", g, a)
		}
		// The next check finds nothing new: one probe, no access.
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if g, a := cc.gets.Load(), cc.accesses.Load(); g != 3 || a != 2 {
			t.Fatalf("after a check that found nothing new: %d GetSecretVersion, %d AccessSecretVersion in all; want 3 and 2", g, a)
		}
		// The version the engine holds is the one a Fetch reports.
		sec, err := p.Fetch(ctx, providers.Ref{Scheme: KindName, Path: "eng-project/db"})
		if err != nil {
			t.Fatal(err)
		}
		if v := eng.Values()["DB"].Version; v != sec.Version {
			t.Fatalf("engine holds version %q, a Fetch reports %q", v, sec.Version)
		}
		// A version that is no probe's answer is fetched as usual.
		if got, err := p.FetchVersion(ctx, providers.Ref{Scheme: KindName, Path: "eng-project/db"}, "projects/x/secrets/other/versions/1@t"); err != nil || got.Version != sec.Version {
			t.Fatalf("FetchVersion of another secret's version: version %q, %v; want a Fetch's %q", got.Version, err, sec.Version)
		}
	})
}
