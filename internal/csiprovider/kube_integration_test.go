//go:build integration

package csiprovider

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers"
)

// The integration tests run against a real etcd and kube-apiserver with
// RBAC, started once for the package.
var (
	cluster *testenv.Kube
	dyn     dynamic.Interface
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "keyward-csi-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	k, err := testenv.StartKube(ctx, dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "csiprovider integration tests: cannot start etcd and kube-apiserver: %v\n", err)
		return 1
	}
	defer k.Stop()
	cluster = k
	dyn, err = dynamic.NewForConfig(&rest.Config{Host: k.API.URL, BearerToken: k.AdminToken, TLSClientConfig: rest.TLSClientConfig{CAData: k.CAData}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// apply server-side-applies JSON manifests as admin.
func apply(t testing.TB, docs ...string) {
	t.Helper()
	for _, doc := range docs {
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON([]byte(doc)); err != nil {
			t.Fatalf("manifest: %v", err)
		}
		gvk := obj.GroupVersionKind()
		resource := map[string]string{"Namespace": "namespaces", "ServiceAccount": "serviceaccounts", "Secret": "secrets", "Role": "roles", "RoleBinding": "rolebindings", "ClusterRoleBinding": "clusterrolebindings"}[gvk.Kind]
		var ri dynamic.ResourceInterface = dyn.Resource(gvk.GroupVersion().WithResource(resource))
		if obj.GetNamespace() != "" {
			ri = dyn.Resource(gvk.GroupVersion().WithResource(resource)).Namespace(obj.GetNamespace())
		}
		if _, err := ri.Patch(t.Context(), obj.GetName(), types.ApplyPatchType, []byte(doc), metav1.PatchOptions{FieldManager: "keyward-test", Force: new(true)}); err != nil {
			t.Fatalf("apply %s %s: %v", gvk.Kind, obj.GetName(), err)
		}
	}
}

// podTokens is what the driver passes for a pod of ServiceAccount ns/sa:
// its tokens by audience, from the TokenRequest API as the kubelet asks.
func podTokens(t testing.TB, ns, sa string) string {
	t.Helper()
	req := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
		"metadata": map[string]any{"name": sa},
		"spec":     map[string]any{"expirationSeconds": int64(3600)},
	}}
	out, err := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}).Namespace(ns).Create(t.Context(), req, metav1.CreateOptions{}, "token")
	if err != nil {
		t.Fatalf("token of %s/%s: %v", ns, sa, err)
	}
	tok, _, _ := unstructured.NestedString(out.Object, "status", "token")
	exp, _, _ := unstructured.NestedString(out.Object, "status", "expirationTimestamp")
	b, err := json.Marshal(map[string]Token{"": {Token: tok, ExpirationTimestamp: exp}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestIntegrationPerPodIdentity mounts, for two pods of different
// ServiceAccounts whose Roles each name only their own Secret, the same
// SecretProviderClass config: each pod gets its own Secret and is denied
// the other's, though both go through the one provider process.
func TestIntegrationPerPodIdentity(t *testing.T) {
	const ns = "csi-identity"
	apply(t, `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"`+ns+`"}}`)
	values := map[string]string{"alice": "alice-pw-7c1e", "bob": "bob-pw-39d2"}
	for _, who := range []string{"alice", "bob"} {
		apply(t,
			`{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"`+who+`","namespace":"`+ns+`"}}`,
			`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"`+who+`-db","namespace":"`+ns+`"},"stringData":{"password":"`+values[who]+`"}}`,
			`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"`+who+`","namespace":"`+ns+`"},
			  "rules":[{"apiGroups":[""],"resources":["secrets"],"resourceNames":["`+who+`-db"],"verbs":["get"]}]}`,
			`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"`+who+`","namespace":"`+ns+`"},
			  "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"`+who+`"},
			  "subjects":[{"kind":"ServiceAccount","name":"`+who+`","namespace":"`+ns+`"}]}`,
		)
	}
	c := serve(t, Options{APIServer: cluster.API.URL, APIServerCA: cluster.CAData})
	mount := func(who, secret string) (*v1alpha1.MountResponse, error) {
		cfg := "version: 1\nsecrets:\n  DB_PASSWORD: k8s://" + ns + "/" + secret + "#password\nfiles:\n  - path: db-password\n    secret: DB_PASSWORD\n"
		attrs := attributes(t, cfg, map[string]string{PodNameKey: who + "-0", PodNamespaceKey: ns, ServiceAccountKey: who, ServiceAccountTokens: podTokens(t, ns, who)})
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
		if len(resp.ObjectVersion) != 1 || resp.ObjectVersion[0].Id != "DB_PASSWORD" || resp.ObjectVersion[0].Version == "" {
			t.Errorf("%s: object versions %v, want DB_PASSWORD's resourceVersion", who, resp.ObjectVersion)
		}
		_, err = mount(who, other+"-db")
		st, _ := status.FromError(err)
		if st.Code() != codes.PermissionDenied {
			t.Errorf("%s mounting %s's secret: %v (%s), want PermissionDenied", who, other, st.Code(), st.Message())
		}
		for _, v := range values {
			if strings.Contains(st.Message(), v) {
				t.Errorf("%s: leaked value of a secret in the error", who)
			}
		}
	}

	// Without a token for the API server's audience the mount fails
	// rather than falling back to any other identity.
	cfg := "version: 1\nsecrets:\n  A: k8s://" + ns + "/alice-db#password\nfiles:\n  - path: a\n    secret: A\n"
	_, err := c.Mount(t.Context(), &v1alpha1.MountRequest{Attributes: attributes(t, cfg, map[string]string{PodNamespaceKey: ns, ServiceAccountKey: "alice"})})
	if st, _ := status.FromError(err); st.Code() == codes.OK || !strings.Contains(st.Message(), "no ServiceAccount token") {
		t.Errorf("mount without a token: %v, want an error saying there is no ServiceAccount token", err)
	}
}

// TestIntegrationSharedByIdentity: with the API server's TokenReview
// verifying the pods' tokens, pods of one ServiceAccount share one read
// of their Secret, and a pod of another ServiceAccount mounting the same
// config is not served from that cache: it is denied by its own RBAC.
func TestIntegrationSharedByIdentity(t *testing.T) {
	const ns = "csi-shared"
	apply(t, `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"`+ns+`"}}`)
	for _, who := range []string{"app", "intruder"} {
		apply(t, `{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"`+who+`","namespace":"`+ns+`"}}`)
	}
	apply(t,
		`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"app-db","namespace":"`+ns+`"},"stringData":{"password":"shared-pw-0b7e"}}`,
		`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"app","namespace":"`+ns+`"},
		  "rules":[{"apiGroups":[""],"resources":["secrets"],"resourceNames":["app-db"],"verbs":["get"]}]}`,
		`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"app","namespace":"`+ns+`"},
		  "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"app"},
		  "subjects":[{"kind":"ServiceAccount","name":"app","namespace":"`+ns+`"}]}`,
	)
	reviewer, err := TokenReviewer(cluster.API.URL, cluster.CAData, func() (string, error) { return cluster.AdminToken, nil })
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	c := serve(t, Options{APIServer: cluster.API.URL, APIServerCA: cluster.CAData, Reviewer: reviewer, CacheTTL: time.Hour,
		ObserveCalls: func(providers.Call) { calls.Add(1) }})
	cfg := "version: 1\nsecrets:\n  DB_PASSWORD: k8s://" + ns + "/app-db#password\nfiles:\n  - path: db-password\n    secret: DB_PASSWORD\n"
	mount := func(pod, sa string) (*v1alpha1.MountResponse, error) {
		attrs := attributes(t, cfg, map[string]string{PodNameKey: pod, PodNamespaceKey: ns, ServiceAccountKey: sa, ServiceAccountTokens: podTokens(t, ns, sa)})
		return c.Mount(t.Context(), &v1alpha1.MountRequest{Attributes: attrs})
	}
	for i := range 5 {
		resp, err := mount(fmt.Sprintf("app-%d", i), "app")
		if err != nil {
			t.Fatalf("pod app-%d: %v", i, err)
		}
		if string(resp.Files[0].Contents) != "shared-pw-0b7e" {
			t.Fatalf("pod app-%d: not its Secret", i)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d reads of the Secret for 5 pods of one ServiceAccount, want 1", n)
	}
	_, err = mount("intruder-0", "intruder")
	if st, _ := status.FromError(err); st.Code() != codes.PermissionDenied {
		t.Fatalf("a pod of another ServiceAccount: %v, want PermissionDenied (never the cached value)", err)
	}
	// A token that is not the API server's is refused before any read.
	forged, _ := json.Marshal(map[string]Token{"": {Token: "not-a-token"}})
	attrs := attributes(t, cfg, map[string]string{PodNamespaceKey: ns, ServiceAccountKey: "app", ServiceAccountTokens: string(forged)})
	_, err = c.Mount(t.Context(), &v1alpha1.MountRequest{Attributes: attrs})
	if st, _ := status.FromError(err); st.Code() != codes.PermissionDenied || strings.Contains(st.Message(), "not-a-token") {
		t.Fatalf("a forged token: %v, want PermissionDenied without the token", err)
	}
}

// TestIntegrationExampleK8s applies examples/kubernetes/csi/k8s.yaml's
// ServiceAccount and RBAC (with the parent example's namespace and
// Secrets) and mounts its SecretProviderClass as its pod would.
func TestIntegrationExampleK8s(t *testing.T) {
	for _, f := range []string{"../namespace.yaml", "../secrets.yaml"} {
		b, err := os.ReadFile(filepath.Join(examplesDir, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(b), "\n---\n") {
			j, err := sigsyaml.YAMLToJSON([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			apply(t, string(j))
		}
	}
	var cfg, sa string
	for _, obj := range exampleDocs(t)["k8s.yaml"] {
		switch obj["kind"] {
		case "SecretProviderClass":
			cfg, _ = exampleConfig(obj)
		case "Pod":
			sa = obj["spec"].(map[string]any)["serviceAccountName"].(string)
			continue
		}
		if obj["kind"] == "SecretProviderClass" {
			continue
		}
		j, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		apply(t, string(j))
	}
	c := serve(t, Options{APIServer: cluster.API.URL, APIServerCA: cluster.CAData})
	attrs := attributes(t, cfg, map[string]string{PodNameKey: "payments-csi", PodNamespaceKey: "payments", ServiceAccountKey: sa, ServiceAccountTokens: podTokens(t, "payments", sa)})
	resp, err := c.Mount(t.Context(), &v1alpha1.MountRequest{Attributes: attrs, Permission: "420"})
	if err != nil {
		t.Fatalf("mounting the example: %v", err)
	}
	got := map[string]string{}
	for _, f := range resp.Files {
		got[f.Path] = string(f.Contents)
	}
	if got["dsn"] != "postgres://payments:change-me-db-password@db.payments:5432/payments" || !strings.Contains(got["db.env"], "DB_USER=") || !strings.Contains(got["api.json"], `"API_KEY"`) {
		t.Fatalf("the example's files are not rendered from its Secrets (got %v)", keys(got))
	}
}
