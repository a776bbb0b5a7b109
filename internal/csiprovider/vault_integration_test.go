//go:build integration

package csiprovider

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers"
)

// saToken is a token of ServiceAccount ns/sa for audience.
func saToken(t *testing.T, ns, sa, audience string) string {
	t.Helper()
	spec := map[string]any{"expirationSeconds": int64(3600)}
	if audience != "" {
		spec["audiences"] = []any{audience}
	}
	req := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
		"metadata": map[string]any{"name": sa}, "spec": spec,
	}}
	out, err := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}).Namespace(ns).Create(t.Context(), req, metav1.CreateOptions{}, "token")
	if err != nil {
		t.Fatalf("token of %s/%s: %v", ns, sa, err)
	}
	tok, _, _ := unstructured.NestedString(out.Object, "status", "token")
	return tok
}

// TestIntegrationVaultPerPodIdentity mounts Vault secrets for two pods:
// each logs in to Vault's kubernetes auth method with its own
// ServiceAccount token (audience "vault", as the CSIDriver's
// tokenRequests would give it), so each gets the secret its Vault role's
// policy allows and is denied the other's.
func TestIntegrationVaultPerPodIdentity(t *testing.T) {
	const ns = "csi-vault"
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	v, err := testenv.StartVault(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("starting vault: %v", err)
	}
	t.Cleanup(v.Stop)
	apply(t,
		`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"`+ns+`"}}`,
		`{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"reviewer","namespace":"`+ns+`"}}`,
		`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding","metadata":{"name":"csi-vault-reviewer"},
		  "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"system:auth-delegator"},
		  "subjects":[{"kind":"ServiceAccount","name":"reviewer","namespace":"`+ns+`"}]}`,
	)
	vc, err := api.NewClient(&api.Config{Address: v.Addr})
	if err != nil {
		t.Fatal(err)
	}
	vc.SetToken(testenv.VaultRootToken)
	if err := vc.Sys().EnableAuthWithOptionsWithContext(ctx, "kubernetes", &api.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	writes := map[string]map[string]any{
		"auth/kubernetes/config": {
			"kubernetes_host": cluster.API.URL, "kubernetes_ca_cert": string(cluster.CAData),
			"token_reviewer_jwt": saToken(t, ns, "reviewer", ""), "disable_local_ca_jwt": true,
		},
	}
	values := map[string]string{"alice": "alice-vault-51f0", "bob": "bob-vault-8a3c"}
	for _, who := range []string{"alice", "bob"} {
		apply(t, `{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"`+who+`","namespace":"`+ns+`"}}`)
		if err := vc.Sys().PutPolicyWithContext(ctx, who, `path "secret/data/`+who+`" { capabilities = ["read"] }`); err != nil {
			t.Fatal(err)
		}
		writes["auth/kubernetes/role/"+who] = map[string]any{
			"bound_service_account_names": []string{who}, "bound_service_account_namespaces": []string{ns},
			"audience": "vault", "token_policies": []string{who}, "token_ttl": "10m",
		}
		if _, err := vc.KVv2("secret").Put(ctx, who, map[string]any{"password": values[who]}); err != nil {
			t.Fatal(err)
		}
	}
	for path, body := range writes {
		if _, err := vc.Logical().WriteWithContext(ctx, path, body); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}

	c := serve(t, Options{})
	mount := func(who, secret string) (*v1alpha1.MountResponse, error) {
		cfg := `version: 1
providers:
  vault: {kind: vault, address: "` + v.Addr + `", auth: {method: kubernetes, role: ` + who + `, audience: vault}}
secrets:
  DB_PASSWORD: vault://secret/` + secret + `#password
files:
  - path: db-password
    secret: DB_PASSWORD
`
		tokens, err := json.Marshal(map[string]Token{"vault": {Token: saToken(t, ns, who, "vault")}})
		if err != nil {
			t.Fatal(err)
		}
		attrs := attributes(t, cfg, map[string]string{PodNamespaceKey: ns, ServiceAccountKey: who, ServiceAccountTokens: string(tokens)})
		return c.Mount(ctx, &v1alpha1.MountRequest{Attributes: attrs})
	}
	for _, who := range []string{"alice", "bob"} {
		other := map[string]string{"alice": "bob", "bob": "alice"}[who]
		resp, err := mount(who, who)
		if err != nil {
			t.Fatalf("%s mounting its own secret: %v", who, err)
		}
		if len(resp.Files) != 1 || string(resp.Files[0].Contents) != values[who] {
			t.Errorf("%s: the mounted file is not its own secret", who)
		}
		_, err = mount(who, other)
		st, _ := status.FromError(err)
		if st.Code() != codes.PermissionDenied {
			t.Errorf("%s mounting %s's secret: %v (%s), want PermissionDenied", who, other, st.Code(), st.Message())
		}
		for _, val := range values {
			if strings.Contains(st.Message(), val) {
				t.Errorf("%s: leaked value of a secret in the error", who)
			}
		}
	}

	// The remounts of one identity reuse its Vault login: the driver's
	// rotation reconciler mounting a pod again costs reads, not logins.
	var logins atomic.Int64
	target, err := url.Parse(v.Addr)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/auth/kubernetes/login") {
			logins.Add(1)
		}
		proxy.ServeHTTP(w, r)
	}))
	defer counting.Close()
	var reads atomic.Int64
	c2 := serve(t, Options{CacheTTL: -1, ObserveCalls: func(providers.Call) { reads.Add(1) }})
	tokens, err := json.Marshal(map[string]Token{"vault": {Token: saToken(t, ns, "alice", "vault")}})
	if err != nil {
		t.Fatal(err)
	}
	remount := `version: 1
providers:
  vault: {kind: vault, address: "` + counting.URL + `", auth: {method: kubernetes, role: alice, audience: vault}}
secrets:
  DB_PASSWORD: vault://secret/alice#password
files:
  - path: db-password
    secret: DB_PASSWORD
`
	for range 3 {
		attrs := attributes(t, remount, map[string]string{PodNamespaceKey: ns, ServiceAccountKey: "alice", ServiceAccountTokens: string(tokens)})
		if _, err := c2.Mount(ctx, &v1alpha1.MountRequest{Attributes: attrs}); err != nil {
			t.Fatal(err)
		}
	}
	if reads.Load() != 3 || logins.Load() != 1 {
		t.Errorf("3 remounts without a value cache: %d reads and %d logins, want 3 and 1", reads.Load(), logins.Load())
	}

	// A method with keyward's own credentials is refused, not used.
	cfg := "version: 1\nproviders:\n  vault: {kind: vault, address: \"" + v.Addr + "\", auth: {method: token}}\nsecrets: {A: vault://secret/alice#password}\nfiles: [{path: a, secret: A}]\n"
	_, err = c.Mount(ctx, &v1alpha1.MountRequest{Attributes: attributes(t, cfg, nil)})
	if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "not available when acting as a pod") {
		t.Errorf("token auth under csi-provider: %v, want InvalidArgument saying it is not available", err)
	}
}
