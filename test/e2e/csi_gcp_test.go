//go:build integration

package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keyward/keyward/internal/csiprovider"
	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/internal/testenv/kubenode"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/gcp" // the gcpsm provider kind, for config.Parse
	"github.com/keyward/keyward/providers/gcp/gcpfake"
)

// testCSIGCP: examples/kubernetes/csi/gcp.yaml on the real driver, with
// the in-process Secret Manager fake (checking every call's token) and
// the workload identity federation stand-in (the STS token exchange,
// verifying the pod's token with the node's API server as the pool's
// OIDC provider would, and generateAccessToken) in place of Google. Both
// serve TLS with certificates of a test CA for the node's address, which
// keyward csi-provider (a pod) reaches them at and trusts through the
// instance's tls.ca_cert, the CA's ConfigMap that the chart's
// csiProvider.extraVolumes mount (insecure is for loopback endpoints
// only).
// keyward exchanges the pod's own token (audience: the workload identity
// provider, added to the CSIDriver's tokenRequests as the driver values
// say) and impersonates the Google service account its ServiceAccount's
// annotation names, which alone may read the secrets; a new version
// reaches the pod's file through the driver's rotation; a pod whose
// ServiceAccount names no service account (its federated principal may
// read nothing) never starts; no value or token is in any log.
func testCSIGCP(t *testing.T) {
	ctx := context.Background()
	stack := startCSI(t)
	objs := applyCSIExample(t, "gcp.yaml", nil)
	spc := spcConfig(t, objs)
	var pool, project, gsa string
	for _, line := range strings.Split(spc, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ": ")
		switch k {
		case "workload_identity_provider":
			pool = v
		case "project":
			project = v
		}
	}
	for _, o := range objs {
		if o.GetKind() == "ServiceAccount" {
			gsa = o.GetAnnotations()[gcp.ServiceAccountAnnotation]
		}
	}
	if pool == "" || project == "" || gsa == "" {
		t.Fatalf("csi/gcp.yaml: want a workload_identity_provider (%q), a project (%q) and a ServiceAccount annotated with %s (%q)", pool, project, gcp.ServiceAccountAnnotation, gsa)
	}
	addAudience(t, pool)

	ca := stack.ca
	certPEM, keyPEM, err := ca.IssueCert(testenv.CertSpec{CommonName: kubenode.NodeIP, Names: []string{kubenode.NodeIP, "127.0.0.1"}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	review, err := csiprovider.TokenReviewer(node.Kube.API.URL, node.Kube.CAData, func() (string, error) { return node.Kube.AdminToken, nil })
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var podTokens []string
	fed, err := gcpfake.StartFederationTLS(pool, func(ctx context.Context, token string) (string, error) {
		mu.Lock()
		podTokens = append(podTokens, token)
		mu.Unlock()
		return review(ctx, token, pool)
	}, cert)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fed.Close() })
	sm, err := gcpfake.StartTLS(cert)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sm.Close() })
	sm.Authenticate(fed.Principal)
	fed.AllowImpersonation(gsa, fed.FederatedPrincipal("system:serviceaccount:"+exampleNS+":payments-app"))
	sm.Grant(gcpfake.ServiceAccountPrincipal(gsa), project, "")

	admin, err := secretmanager.NewClient(ctx, sm.TLSClientOptions(&tls.Config{RootCAs: ca.Pool()})...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	secrets := map[string]string{}
	put := func(name string) {
		secrets[name] = randomValue(t)
		if _, err := admin.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: "projects/" + project + "/secrets/" + name}); err != nil {
			_, err = admin.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{Parent: "projects/" + project, SecretId: name,
				Secret: &secretmanagerpb.Secret{Replication: &secretmanagerpb.Replication{
					Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}}}}})
			if err != nil {
				t.Fatalf("create %s: %v", name, err)
			}
		}
		_, err := admin.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{Parent: "projects/" + project + "/secrets/" + name,
			Payload: &secretmanagerpb.SecretPayload{Data: []byte(secrets[name])}})
		if err != nil {
			t.Fatalf("add a version of %s: %v", name, err)
		}
	}

	// keyward csi-provider runs in a pod: it reaches the fakes at the
	// node's address, and reads the CA from the ConfigMap the chart's
	// csiProvider.extraVolumes mount in its container, as a user's would.
	smAddr := forward(t, sm.Addr())
	sts, err := url.Parse(fed.STSEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	fedAddr := forward(t, sts.Host)
	projectLine := "    project: " + project + "\n"
	if !strings.Contains(spc, projectLine) {
		t.Fatalf("csi/gcp.yaml: the SecretProviderClass's config has no %q to add endpoints after", projectLine)
	}
	spc = strings.Replace(spc, projectLine, projectLine+
		"    endpoint: "+smAddr+"\n"+
		"    sts_endpoint: https://"+fedAddr+"/v1/token\n"+
		"    iam_credentials_endpoint: https://"+fedAddr+"\n"+
		"    tls: {ca_cert: "+csiCADir+"/ca.crt}\n", 1)
	for _, o := range objs {
		if o.GetKind() != "SecretProviderClass" {
			continue
		}
		if err := unstructured.SetNestedField(o.Object, spc, "spec", "parameters", "config"); err != nil {
			t.Fatal(err)
		}
		if err := node.Client.Apply(ctx, exampleNS, o); err != nil {
			t.Fatal(err)
		}
	}

	_, pod := csiExample(t, "gcp.yaml", "payments-csi-gcp")
	mount := csiVolumeMount(t, pod)
	values := map[string]string{}
	want := func() map[string]string {
		return expectedFiles(t, spc, mount, func(ref providers.Ref) string {
			if secrets[ref.Path] == "" {
				put(ref.Path)
			}
			v := secrets[ref.Path]
			values[fmt.Sprintf("%s (%d)", ref.Path, len(values))] = v
			return v
		})
	}
	lat := csiMountAndRotate(t, pod, want, func() { put("db-password") })
	t.Logf("Secret Manager update → app file through the driver's rotation: %v", lat.Round(time.Millisecond))

	var got []string
	for _, x := range fed.Exchanges() {
		if !x.Granted {
			continue
		}
		if x.ServiceAccount != "" {
			got = append(got, "impersonate "+x.ServiceAccount)
		} else {
			got = append(got, "exchange "+x.Subject)
		}
	}
	if len(got) < 2 || got[0] != "exchange system:serviceaccount:"+exampleNS+":payments-app" || got[1] != "impersonate "+gsa {
		t.Errorf("exchanges granted: %q, want payments-app's own token exchanged, then %s impersonated", got, gsa)
	}
	if n := sm.Calls("AccessSecretVersion"); n == 0 {
		t.Error("Secret Manager was never read")
	}
	t.Logf("%d token exchanges and impersonations for the pod and the driver's remounts, %d Secret Manager reads", len(got), sm.Calls("AccessSecretVersion"))

	_, denied := csiExample(t, "gcp.yaml", "payments-csi-gcp-denied")
	msg := csiDenied(t, denied, "payments-csi-denied")
	t.Logf("a pod whose ServiceAccount names no Google service account: %s", msg)
	if !strings.Contains(msg, "PermissionDenied") && !strings.Contains(msg, "permission denied") {
		t.Errorf("FailedMount event %q: want Secret Manager's refusal of the pod's federated identity", msg)
	}
	mu.Lock()
	recorded(t, "pod token", len(podTokens))
	for i, tok := range podTokens {
		values[fmt.Sprintf("pod token %d", i)] = tok
	}
	mu.Unlock()
	issued := fed.Issued()
	recorded(t, "federated or impersonated token", len(issued))
	for i, tok := range issued {
		values[fmt.Sprintf("federated or impersonated token %d", i)] = tok
	}
	values["the CA's key"] = strings.Split(string(keyPEM), "\n")[1]
	stack.checkNoLeak(t, exampleNS, values)
}

// addAudience adds audience to the tokenRequests of the driver's
// CSIDriver object, as driver-values.yaml says to for gcpsm, until t ends.
func addAudience(t *testing.T, audience string) {
	t.Helper()
	ctx := context.Background()
	d, err := kubenode.Get[storagev1.CSIDriver](ctx, node.Client, "CSIDriver", "", csiDriverName)
	if err != nil {
		t.Fatal(err)
	}
	before := d.Spec.TokenRequests
	for _, r := range before {
		if r.Audience == audience {
			return
		}
	}
	set := func(reqs []storagev1.TokenRequest) error {
		patch, err := json.Marshal(map[string]any{"spec": map[string]any{"tokenRequests": reqs}})
		if err != nil {
			return err
		}
		return node.Client.Patch(ctx, "CSIDriver", "", csiDriverName, patch)
	}
	if err := set(append(append([]storagev1.TokenRequest{}, before...), storagev1.TokenRequest{Audience: audience})); err != nil {
		t.Fatalf("add audience %s to the CSIDriver's tokenRequests: %v", audience, err)
	}
	t.Cleanup(func() {
		if err := set(before); err != nil {
			t.Errorf("restore the CSIDriver's tokenRequests: %v", err)
		}
	})
}
