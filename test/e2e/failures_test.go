//go:build integration

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/keyward/keyward/internal/testenv/kubenode"
	"github.com/keyward/keyward/internal/webhook"
)

// TestWebhookFailureModes: what a user sees when something is off. A
// missing ConfigMap, a bad annotation or an owner: keyward cannot give is
// denied at creation with a message saying what to change; with the
// webhook down, the chart's failurePolicy decides: Fail refuses the pod,
// Ignore admits it as written (without keyward).
//
// Not parallel: it takes the webhook down (the parallel tests run after).
func TestWebhookFailureModes(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "denials")
	createConfig(t, ns, "kw", fmt.Sprintf("version: 1\nsecrets: {A: \"k8s://%s/a#a\"}\nfiles:\n  - {path: /run/secrets/keyward/a, format: raw, secret: A}\n", ns))
	createConfig(t, ns, "owner", fmt.Sprintf("version: 1\nsecrets: {A: \"k8s://%s/a#a\"}\nfiles:\n  - {path: /run/secrets/keyward/a, format: raw, secret: A, owner: 1000}\n", ns))
	pod := func(name string, annotations map[string]string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
			Spec: corev1.PodSpec{NodeName: kubenode.Name, RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{appContainer("app", AppUser1000Image, "-files", "/etc/hostname")}},
		}
	}
	denied := func(t *testing.T, p *corev1.Pod, want string) {
		t.Helper()
		_, err := kubenode.Create(ctx, node.Client, "Pod", ns, p)
		if err == nil {
			t.Fatalf("pod %s admitted, want it denied", p.Name)
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("pod %s denied with %q, want %q", p.Name, err, want)
		}
		t.Logf("%s: %v", p.Name, err)
	}

	t.Run("missing ConfigMap", func(t *testing.T) {
		denied(t, pod("no-config", injected("nope")),
			`admission webhook "inject.keyward.io" denied the request: keyward: annotation keyward.io/config: ConfigMap denials/nope does not exist; create it`)
	})
	t.Run("bad annotation", func(t *testing.T) {
		denied(t, pod("bad-annotation", injected("kw", webhook.AnnotationInject, "yes")),
			`denied the request: keyward: annotation keyward.io/inject: "yes" is not "true" or "false"`)
		denied(t, pod("bad-mode", injected("kw", webhook.AnnotationMode, "sidecar")),
			`denied the request: keyward: annotation keyward.io/mode: "sidecar" is not "files" or "exec"`)
	})
	t.Run("owner keyward cannot give", func(t *testing.T) {
		denied(t, pod("owner", injected("owner")),
			"file /run/secrets/keyward/a: owner: 1000 cannot be applied: keyward's containers run as uid 65532")
	})

	t.Run("webhook down", func(t *testing.T) {
		t.Cleanup(func() {
			if err := restoreWebhook(ctx); err != nil {
				t.Fatalf("restoring the webhook: %v", err)
			}
		})
		// Deleted gracefully: the pod object goes once its container has
		// stopped.
		if err := node.Client.Delete(ctx, "Pod", releaseNamespace, webhookPod, ptr(int64(1))); err != nil {
			t.Fatal(err)
		}
		if err := waitGone(ctx, releaseNamespace, webhookPod, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		// The endpoints controller's part: no Ready pod, no endpoint.
		if err := node.PublishEndpoints(ctx, releaseNamespace, releaseName); err != nil {
			t.Fatal(err)
		}

		denied(t, pod("down-fail", injected("kw")), `failed calling webhook "inject.keyward.io"`)

		if err := applyWebhookConfiguration(ctx, "webhook.failurePolicy=Ignore"); err != nil {
			t.Fatal(err)
		}
		var got *corev1.Pod
		deadline := time.Now().Add(30 * time.Second)
		for {
			var err error
			got, err = kubenode.Create(ctx, node.Client, "Pod", ns, pod("down-ignore", injected("kw")))
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("with failurePolicy Ignore the pod is still refused: %v", err)
			}
			time.Sleep(200 * time.Millisecond) // the API server sees the new configuration shortly
		}
		if len(got.Spec.InitContainers) != 0 || got.Annotations[webhook.AnnotationStatus] != "" {
			t.Errorf("with the webhook down the pod was injected: init containers %s", names(got.Spec.InitContainers))
		}
		if p, err := waitPod(ctx, ns, "down-ignore", 60*time.Second, podEnded); err != nil || p.Status.Phase != corev1.PodSucceeded {
			t.Errorf("the admitted pod did not run as written: %v", err)
		}
	})
}

// applyWebhookConfiguration applies the chart's
// MutatingWebhookConfiguration as `helm upgrade --set sets...` would.
func applyWebhookConfiguration(ctx context.Context, sets ...string) error {
	manifests, err := helmTemplate(ctx, sets...)
	if err != nil {
		return err
	}
	objs, err := kubenode.Decode(manifests)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if o.GetKind() == "MutatingWebhookConfiguration" {
			return node.Client.Apply(ctx, "", o)
		}
	}
	return fmt.Errorf("helm template made no MutatingWebhookConfiguration")
}

// restoreWebhook applies the chart's default webhook configuration and
// starts the webhook's pod again (it sets the caBundle when it starts).
func restoreWebhook(ctx context.Context) error {
	if err := applyWebhookConfiguration(ctx); err != nil {
		return err
	}
	manifests, err := helmTemplate(ctx)
	if err != nil {
		return err
	}
	objs, err := kubenode.Decode(manifests)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d); err != nil {
			return err
		}
		if _, err := kubenode.Create(ctx, node.Client, "Pod", releaseNamespace, kubenode.PodFromTemplate(webhookPod, releaseNamespace, d.Spec.Template)); err != nil {
			return err
		}
	}
	if _, err := waitPod(ctx, releaseNamespace, webhookPod, 90*time.Second, podIsReady); err != nil {
		return err
	}
	if err := node.PublishEndpoints(ctx, releaseNamespace, releaseName); err != nil {
		return err
	}
	return waitInjecting(ctx, 60*time.Second)
}

// waitGone waits until the pod no longer exists.
func waitGone(ctx context.Context, namespace, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := kubenode.Get[corev1.Pod](ctx, node.Client, "Pod", namespace, name)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pod %s/%s still there after %v (%v)", namespace, name, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
