//go:build integration

package csiprovider

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers/gcp"
	"github.com/keyward/keyward/providers/gcp/gcpfake"
)

// TestIntegrationGCPPerPodIdentity mounts Secret Manager secrets for two
// pods through workload identity federation: each pod's own ServiceAccount
// token (audience: the workload identity provider) is exchanged at the
// STS, whose stand-in verifies it with the real API server's TokenReview;
// alice's ServiceAccount is annotated with a Google service account
// (iam.gke.io/gcp-service-account), which her federated identity
// impersonates, bob's is not, so his federated token reads itself. The
// Secret Manager fake checks every call's token and lets each principal
// read only its own secret. Application Default Credentials and the
// metadata server of the node are never asked; no token reaches the log
// or an error.
func TestIntegrationGCPPerPodIdentity(t *testing.T) {
	const (
		ns      = "csi-gcp"
		project = "kw-csi-project"
		pool    = "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/kube/providers/csi"
		gsa     = "alice-app@kw-csi-project.iam.gserviceaccount.com"
	)
	var metadataHits atomic.Int32
	trap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		metadataHits.Add(1)
		http.Error(w, "no", http.StatusForbidden)
	}))
	t.Cleanup(trap.Close)
	t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(trap.URL, "http://"))
	t.Setenv("GCE_METADATA_IP", strings.TrimPrefix(trap.URL, "http://"))
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/adc.json")

	adminToken := func() (string, error) { return cluster.AdminToken, nil }
	review, err := TokenReviewer(cluster.API.URL, cluster.CAData, adminToken)
	if err != nil {
		t.Fatal(err)
	}
	fed, err := gcpfake.StartFederation(pool, func(ctx context.Context, token string) (string, error) {
		return review(ctx, token, pool)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fed.Close() })
	sm, err := gcpfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sm.Close() })
	admin, err := secretmanager.NewClient(t.Context(), sm.ClientOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	values := map[string]string{"alice": "alice-gcp-pw-41", "bob": "bob-gcp-pw-97"}
	for who, v := range values {
		if _, err := admin.CreateSecret(t.Context(), &secretmanagerpb.CreateSecretRequest{Parent: "projects/" + project, SecretId: who + "-db",
			Secret: &secretmanagerpb.Secret{Replication: &secretmanagerpb.Replication{Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}}}}}); err != nil {
			t.Fatal(err)
		}
		crc := gcpfake.Checksum([]byte(v))
		if _, err := admin.AddSecretVersion(t.Context(), &secretmanagerpb.AddSecretVersionRequest{Parent: "projects/" + project + "/secrets/" + who + "-db",
			Payload: &secretmanagerpb.SecretPayload{Data: []byte(v), DataCrc32C: &crc}}); err != nil {
			t.Fatal(err)
		}
	}
	sm.Authenticate(fed.Principal)
	fed.AllowImpersonation(gsa, fed.FederatedPrincipal("system:serviceaccount:"+ns+":alice"))
	sm.Grant(gcpfake.ServiceAccountPrincipal(gsa), project, "alice-db")
	sm.Grant(fed.FederatedPrincipal("system:serviceaccount:"+ns+":bob"), project, "bob-db")
	apply(t,
		`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"`+ns+`"}}`,
		`{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"alice","namespace":"`+ns+`","annotations":{"`+gcp.ServiceAccountAnnotation+`":"`+gsa+`"}}}`,
		`{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"bob","namespace":"`+ns+`"}}`,
	)

	annotations, err := ServiceAccountAnnotations(cluster.API.URL, cluster.CAData, adminToken)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testenv.LogBuffer{}
	c := serve(t, Options{Logger: logs.Logger(), APIServer: cluster.API.URL, APIServerCA: cluster.CAData, Reviewer: review, Annotations: annotations})
	tokens := map[string]string{}
	mount := func(who, secret string) (*v1alpha1.MountResponse, error) {
		if tokens[who] == "" {
			tokens[who] = saToken(t, ns, who, pool)
		}
		b, _ := json.Marshal(map[string]Token{pool: {Token: tokens[who], ExpirationTimestamp: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}})
		cfg := "version: 1\nproviders:\n  gcpsm:\n    kind: gcpsm\n    project: " + project + "\n    endpoint: " + sm.Addr() + "\n    insecure: true\n" +
			"    workload_identity_provider: \"" + pool + "\"\n    sts_endpoint: " + fed.STSEndpoint() + "\n    iam_credentials_endpoint: " + fed.IAMCredentialsEndpoint() + "\n" +
			"secrets:\n  DB: gcpsm://" + secret + "\nfiles:\n  - path: db\n    secret: DB\n"
		attrs := attributes(t, cfg, map[string]string{PodNameKey: who + "-0", PodNamespaceKey: ns, ServiceAccountKey: who, ServiceAccountTokens: string(b)})
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		return c.Mount(ctx, &v1alpha1.MountRequest{Attributes: attrs, Permission: "420"})
	}
	for _, who := range []string{"alice", "bob"} {
		other := map[string]string{"alice": "bob", "bob": "alice"}[who]
		resp, err := mount(who, who+"-db")
		if err != nil {
			t.Fatalf("%s mounting its own secret: %v", who, err)
		}
		if len(resp.Files) != 1 || string(resp.Files[0].Contents) != values[who] {
			t.Errorf("%s: the mounted file is not its own secret", who)
		}
		_, err = mount(who, other+"-db")
		st, _ := status.FromError(err)
		if st.Code() != codes.PermissionDenied {
			t.Errorf("%s mounting %s's secret: %v (%s), want PermissionDenied", who, other, st.Code(), st.Message())
		}
		for _, tok := range tokens {
			if strings.Contains(st.Message(), tok) {
				t.Errorf("%s: leaked value of a ServiceAccount token in the error", who)
			}
		}
	}
	var exchanged []string
	for _, x := range fed.Exchanges() {
		if x.Granted {
			exchanged = append(exchanged, x.Subject+">"+x.ServiceAccount)
		}
	}
	want := "system:serviceaccount:" + ns + ":alice> " + fed.FederatedPrincipal("system:serviceaccount:"+ns+":alice") + ">" + gsa + " system:serviceaccount:" + ns + ":bob>"
	if strings.Join(exchanged, " ") != want {
		t.Errorf("exchanges %v, want each pod's own token exchanged once, alice's impersonating %s", exchanged, gsa)
	}
	for who, tok := range tokens {
		if strings.Contains(logs.String(), tok) {
			t.Errorf("leaked value of %s's ServiceAccount token in the provider's log", who)
		}
	}
	for _, v := range values {
		if strings.Contains(logs.String(), v) {
			t.Error("leaked value of a secret in the provider's log")
		}
	}
	if n := metadataHits.Load(); n > 0 {
		t.Errorf("the metadata server was asked %d times", n)
	}
}
