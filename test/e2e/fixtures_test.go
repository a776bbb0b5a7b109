//go:build integration

package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/internal/testenv/kubenode"
	"github.com/keyward/keyward/internal/webhook"
)

// newNamespace creates a namespace for one test, whose default
// ServiceAccount may read its Secrets (what keyward's containers use),
// and deletes its pods when the test ends.
func newNamespace(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	if err := node.CreateNamespace(ctx, name); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "read-secrets"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch"}}},
	}
	if _, err := kubenode.Create(ctx, node.Client, "Role", name, role); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "read-secrets"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "read-secrets"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "default", Namespace: name}},
	}
	if _, err := kubenode.Create(ctx, node.Client, "RoleBinding", name, rb); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := node.DeletePods(context.Background(), name); err != nil {
			t.Log(err)
		}
	})
	return name
}

// randomValue returns a fresh secret value (random only, so that no
// error or log line can contain it by coincidence).
func randomValue(t *testing.T) string {
	t.Helper()
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func digest(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// createSecret creates Secret namespace/name holding data.
func createSecret(t *testing.T, namespace, name string, data map[string]string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: data}
	if _, err := kubenode.Create(context.Background(), node.Client, "Secret", namespace, s); err != nil {
		t.Fatal(err)
	}
}

// createConfig creates ConfigMap namespace/name holding keyward.yaml.
func createConfig(t *testing.T, namespace, name, config string) {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{webhook.ConfigKey: config}}
	if _, err := kubenode.Create(context.Background(), node.Client, "ConfigMap", namespace, cm); err != nil {
		t.Fatal(err)
	}
}

// injected returns the annotations that ask the webhook for keyward with
// the ConfigMap config, plus extra key/value pairs.
func injected(config string, extra ...string) map[string]string {
	a := map[string]string{webhook.AnnotationInject: "true", webhook.AnnotationConfig: config}
	for i := 0; i+1 < len(extra); i += 2 {
		a[extra[i]] = extra[i+1]
	}
	return a
}

// appContainer is testapp in image, with args.
func appContainer(name, image string, args ...string) corev1.Container {
	return corev1.Container{Name: name, Image: image, ImagePullPolicy: corev1.PullNever, Args: args}
}

// readExample reads a file of examples/kubernetes.
func readExample(t *testing.T, name string) []byte {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "examples", "kubernetes", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
