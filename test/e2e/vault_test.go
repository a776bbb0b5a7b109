//go:build integration

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/internal/testenv/kubenode"
	"github.com/keyward/keyward/internal/webhook"
)

// TestVaultKubernetesAuthFromAPod: keyward's init container, in a
// hostNetwork pod, logs in to Vault (a dev server on the node's
// 127.0.0.1) with the pod's projected ServiceAccount token — Vault checks
// it with a TokenReview against the node's API server — and renders a KV
// secret the app (its image's USER, 1000) reads. A pod of a
// ServiceAccount the Vault role does not name never starts.
func TestVaultKubernetesAuthFromAPod(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	v, err := testenv.StartVault(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Stop)
	ns := newNamespace(t, "vault-auth")
	other := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "other"}}
	if _, err := kubenode.Create(ctx, node.Client, "ServiceAccount", ns, other); err != nil {
		t.Fatal(err)
	}

	cfg := vaultapi.DefaultConfig()
	cfg.Address = v.Addr
	admin, err := vaultapi.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	admin.SetToken(testenv.VaultRootToken)
	value := randomValue(t)
	if err := admin.Sys().EnableAuthWithOptionsWithContext(ctx, "kubernetes", &vaultapi.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	if err := admin.Sys().PutPolicyWithContext(ctx, "app", `path "secret/data/app" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	for path, body := range map[string]map[string]any{
		"auth/kubernetes/config": {
			"kubernetes_host":    node.Kube.API.URL,
			"kubernetes_ca_cert": string(node.Kube.CAData),
			// Vault's TokenReview identity.
			"token_reviewer_jwt": node.Kube.AdminToken,
		},
		"auth/kubernetes/role/app": {
			"bound_service_account_names":      "default",
			"bound_service_account_namespaces": ns,
			"token_policies":                   "app",
			"token_ttl":                        "1h",
		},
	} {
		if _, err := admin.Logical().WriteWithContext(ctx, path, body); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	if _, err := admin.KVv2("secret").Put(ctx, "app", map[string]any{"password": value}); err != nil {
		t.Fatal(err)
	}
	createConfig(t, ns, "vault", fmt.Sprintf(`version: 1
providers:
  vault:
    kind: vault
    address: %s
    auth: {method: kubernetes, role: app}
secrets:
  PASSWORD: vault://secret/app#password
files:
  - {path: /run/secrets/keyward/password, format: raw, secret: PASSWORD}
`, v.Addr))

	const file = "/run/secrets/keyward/password"
	run := func(name, sa string) *corev1.Pod {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: injected("vault")},
			Spec: corev1.PodSpec{
				NodeName: kubenode.Name, HostNetwork: true, RestartPolicy: corev1.RestartPolicyNever,
				ServiceAccountName: sa,
				Containers:         []corev1.Container{appContainer("app", AppUser1000Image, "-files", file)},
			},
		}
		if _, err := kubenode.Create(ctx, node.Client, "Pod", ns, pod); err != nil {
			t.Fatal(err)
		}
		p, err := waitPod(ctx, ns, name, 60*time.Second, podEnded)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	p := run("bound", "default")
	if p.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("pod %s:\n%s", p.Status.Phase, describe(p))
	}
	evs := events(ctx, t, ns, "bound", "app")
	i := slices.IndexFunc(evs, func(e Event) bool { return e.Event == "file" && e.Name == file })
	if i < 0 || evs[i].Err != "" || evs[i].SHA256 != digest(value) {
		t.Fatalf("the app did not read Vault's secret from %s:\n%s", file, podLogs(ctx, ns, "bound", "app"))
	}

	p = run("unbound", "other")
	s := containerStatus(p, webhook.ContainerInit)
	if p.Status.Phase != corev1.PodFailed || s == nil || s.State.Terminated == nil || !strings.Contains(s.State.Terminated.Message, "permission denied") {
		t.Errorf("a ServiceAccount the role does not name: pod %s, want Failed with Vault's denial in the init container's status\n%s", p.Status.Phase, describe(p))
	}
	if app := containerStatus(p, "app"); app != nil && (app.State.Running != nil || app.State.Terminated != nil) {
		t.Errorf("the app started although keyward could not log in")
	}
}
