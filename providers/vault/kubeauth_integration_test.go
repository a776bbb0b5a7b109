//go:build integration

package vault

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/providertest"
)

const (
	kubeNS       = "keyward-vault"
	kubeSA       = "keyward"    // the identity the Vault role is bound to
	kubeOtherSA  = "intruder"   // a real ServiceAccount the role does not name
	kubeReviewer = "vault-auth" // Vault's TokenReview identity
	kubeAudience = "vault"
	kubeRole     = "kw-kube"
)

var (
	nsGVR  = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	saGVR  = schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}
	crbGVR = schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"}
)

// kubeCluster is a real kube-apiserver for the kubernetes auth method:
// its admin client, for setup and service-account tokens.
type kubeCluster struct {
	*testenv.Kube
	dyn dynamic.Interface
}

// startKube starts etcd and a kube-apiserver for t (only
// TestKubernetesAuth needs one, so it is started there and stopped when t
// ends, rather than in the package's TestMain) and creates the namespace
// and ServiceAccounts, the reviewer bound to system:auth-delegator.
func startKube(t *testing.T) *kubeCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	k, err := testenv.StartKube(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("starting etcd and kube-apiserver: %v", err)
	}
	t.Cleanup(k.Stop)
	dyn, err := dynamic.NewForConfig(&rest.Config{
		Host:            k.API.URL,
		BearerToken:     k.AdminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: k.CAData},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &kubeCluster{Kube: k, dyn: dyn}
	c.create(t, nsGVR, "", map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": kubeNS}})
	for _, sa := range []string{kubeSA, kubeOtherSA, kubeReviewer} {
		c.createSA(t, sa)
	}
	c.create(t, crbGVR, "", map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
		"metadata": map[string]any{"name": "keyward-vault-tokenreview"},
		"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
		"subjects": []any{map[string]any{"kind": "ServiceAccount", "name": kubeReviewer, "namespace": kubeNS}},
	})
	return c
}

func (c *kubeCluster) create(t *testing.T, gvr schema.GroupVersionResource, ns string, obj map[string]any) {
	t.Helper()
	var ri dynamic.ResourceInterface = c.dyn.Resource(gvr)
	if ns != "" {
		ri = c.dyn.Resource(gvr).Namespace(ns)
	}
	if _, err := ri.Create(t.Context(), &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create %s: %v", gvr.Resource, err)
	}
}

// createSA creates a ServiceAccount (no controller manager runs here).
func (c *kubeCluster) createSA(t *testing.T, name string) {
	t.Helper()
	c.create(t, saGVR, kubeNS, map[string]any{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": map[string]any{"name": name}})
}

// deleteSA deletes a ServiceAccount, which invalidates its tokens.
func (c *kubeCluster) deleteSA(t *testing.T, name string) {
	t.Helper()
	err := c.dyn.Resource(saGVR).Namespace(kubeNS).Delete(t.Context(), name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("delete serviceaccount %s: %v", name, err)
	}
}

// token returns a token of ServiceAccount name from the TokenRequest API,
// for audiences (none: the API server's own).
func (c *kubeCluster) token(t *testing.T, name string, audiences ...string) string {
	t.Helper()
	spec := map[string]any{"expirationSeconds": int64(3600)}
	if len(audiences) > 0 {
		aud := make([]any, len(audiences))
		for i, a := range audiences {
			aud[i] = a
		}
		spec["audiences"] = aud
	}
	req := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
		"metadata": map[string]any{"name": name},
		"spec":     spec,
	}}
	out, err := c.dyn.Resource(saGVR).Namespace(kubeNS).Create(t.Context(), req, metav1.CreateOptions{}, "token")
	if err != nil {
		t.Fatalf("token for serviceaccount %s/%s: %v", kubeNS, name, err)
	}
	tok, _, _ := unstructured.NestedString(out.Object, "status", "token")
	if tok == "" {
		t.Fatal("TokenRequest returned no token")
	}
	return tok
}

// configureKubeAuth enables the kubernetes auth method on the package's
// Vault (once; a later run reconfigures it for its own API server) and
// points it at the API server, Vault reviewing tokens as kubeReviewer;
// role kubeRole admits kubeSA of kubeNS with the kw-read policy.
func configureKubeAuth(t *testing.T, c *kubeCluster) {
	t.Helper()
	ctx := t.Context()
	mounts, err := admin.Sys().ListAuthWithContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mounts["kubernetes/"]; !ok {
		if err := admin.Sys().EnableAuthWithOptionsWithContext(ctx, "kubernetes", &api.EnableAuthOptions{Type: "kubernetes"}); err != nil {
			t.Fatal(err)
		}
	}
	for path, body := range map[string]map[string]any{
		"auth/kubernetes/config": {
			"kubernetes_host":      c.API.URL,
			"kubernetes_ca_cert":   string(c.CAData),
			"token_reviewer_jwt":   c.token(t, kubeReviewer),
			"disable_local_ca_jwt": true,
		},
		"auth/kubernetes/role/" + kubeRole: {
			"bound_service_account_names":      []string{kubeSA},
			"bound_service_account_namespaces": []string{kubeNS},
			"audience":                         kubeAudience,
			"token_policies":                   []string{"kw-read"},
			"token_ttl":                        "1h",
		},
	} {
		if _, err := admin.Logical().WriteWithContext(ctx, path, body); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
}

// TestKubernetesAuth logs in with Vault's kubernetes auth method against
// a real kube-apiserver: Vault reviews keyward's service-account token
// with the TokenReview API. A rotated token file is read again at the next
// login, and a ServiceAccount or role the Vault role does not admit is
// refused with ErrPermissionDenied and no token in the message.
func TestKubernetesAuth(t *testing.T) {
	t.Parallel()
	c := startKube(t)
	configureKubeAuth(t, c)
	kv2Put(t, "kubeauth-app", map[string]any{"password": "kube-auth-value-2718"})
	const ref = "vault://secret/kubeauth-app"
	const login = "PUT /v1/auth/kubernetes/login"
	dir := t.TempDir()
	jwtFile := filepath.Join(dir, "token")
	first := c.token(t, kubeSA, kubeAudience)
	writeFile(t, jwtFile, first)

	counter := newCounter(t, vaultSrv.Addr)
	p := newReal(t, counter.srv.URL, Options{Auth: AuthOptions{Method: MethodKubernetes, Role: kubeRole, JWTFile: jwtFile}}, nil)
	fetch := func(t *testing.T) {
		t.Helper()
		if v, _ := mustFetchField(t, p, ref, "password"); v != "kube-auth-value-2718" {
			t.Fatal("different value")
		}
	}

	t.Run("login and read", func(t *testing.T) {
		fetch(t)
		fetch(t)
		if n := counter.get(login); n != 1 {
			t.Fatalf("%d logins for two fetches, want 1", n)
		}
		st, err := p.RenewToken(t.Context())
		if err != nil || !strings.Contains(st.Source, "kubernetes") || !strings.Contains(st.Source, kubeRole) {
			t.Errorf("RenewToken = %+v, %v", st, err)
		}
	})

	t.Run("rotated token file is read again at re-login", func(t *testing.T) {
		// The ServiceAccount is recreated, so the first token is no longer
		// valid: only the rotated file's token can log in.
		c.deleteSA(t, kubeSA)
		c.createSA(t, kubeSA)
		second := c.token(t, kubeSA, kubeAudience)
		writeFile(t, jwtFile, second)
		// The API server caches token reviews for a few seconds.
		for deadline := time.Now().Add(30 * time.Second); ; {
			_, err := admin.Logical().WriteWithContext(t.Context(), "auth/kubernetes/login",
				map[string]any{"role": kubeRole, "jwt": first})
			if err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("Vault still accepts the token of the deleted ServiceAccount after 30s")
			}
			time.Sleep(500 * time.Millisecond)
		}
		// Vault forgets keyward's token; the next fetch logs in again.
		if err := admin.Sys().RevokePrefixWithContext(t.Context(), "auth/kubernetes/login"); err != nil {
			t.Fatal(err)
		}
		fetch(t)
		if n := counter.get(login); n != 2 {
			t.Fatalf("%d logins after revocation, want 2", n)
		}
	})

	t.Run("denied", func(t *testing.T) {
		other := c.token(t, kubeOtherSA, kubeAudience)
		good := c.token(t, kubeSA, kubeAudience)
		for name, tc := range map[string]struct{ role, jwt string }{
			"serviceaccount not bound": {kubeRole, other},
			"unknown role":             {"no-such-role", good},
		} {
			t.Run(name, func(t *testing.T) {
				f := filepath.Join(t.TempDir(), "token")
				writeFile(t, f, tc.jwt)
				p := newReal(t, vaultSrv.Addr, Options{Auth: AuthOptions{Method: MethodKubernetes, Role: tc.role, JWTFile: f}}, nil)
				_, err := p.Fetch(t.Context(), mustParse(t, ref))
				if !errors.Is(err, providers.ErrPermissionDenied) || !strings.Contains(err.Error(), "auth/kubernetes") {
					t.Fatalf("login = %v, want ErrPermissionDenied naming auth/kubernetes", err)
				}
				t.Logf("refused: %v", err)
				providertest.AssertRedacted(t, err.Error(), []byte(tc.jwt), []byte(first), []byte(good))
			})
		}
	})
}
