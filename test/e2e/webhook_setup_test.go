//go:build integration

package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/internal/testenv/kubenode"
	"github.com/keyward/keyward/internal/webhook"
)

// The chart's release.
const (
	releaseName      = "keyward"
	releaseNamespace = "keyward"
	webhookPod       = "keyward-webhook-0"
)

// helmTemplate renders charts/keyward as `helm install keyward
// charts/keyward -n keyward --set image.repository=keyward --set
// image.tag=latest` would (the examples' README), with one replica and
// imagePullPolicy Never, plus the extra --set flags.
func helmTemplate(ctx context.Context, sets ...string) ([]byte, error) {
	helm, err := testenv.Binary("helm.sh")
	if err != nil {
		return nil, err
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	args := []string{"template", releaseName, filepath.Join(root, "charts", "keyward"),
		"--namespace", releaseNamespace, "--kube-version", "1.36.3",
		"--set", "image.repository=keyward", "--set", "image.tag=latest",
		"--set", "image.pullPolicy=Never", "--set", "replicaCount=1"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	out, err := exec.CommandContext(ctx, helm, args...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return nil, fmt.Errorf("helm template: %v: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("helm template: %w", err)
	}
	return out, nil
}

// installWebhook installs the chart on the node: every object of `helm
// template` as it is, except that the Deployment's pod is created
// directly (there is no controller-manager to create it), its Service's
// endpoints are published once it is Ready, and the call returns when
// the API server has the webhook inject a pod.
func installWebhook(ctx context.Context) error {
	if err := node.CreateNamespace(ctx, releaseNamespace); err != nil {
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
	var deploy *appsv1.Deployment
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			deploy = &appsv1.Deployment{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, deploy); err != nil {
				return err
			}
			continue
		}
		if err := node.Client.Apply(ctx, releaseNamespace, o); err != nil {
			return err
		}
	}
	if deploy == nil {
		return fmt.Errorf("helm template made no Deployment")
	}
	pod := kubenode.PodFromTemplate(webhookPod, releaseNamespace, deploy.Spec.Template)
	if _, err := kubenode.Create(ctx, node.Client, "Pod", releaseNamespace, pod); err != nil {
		return fmt.Errorf("create the webhook's pod: %w", err)
	}
	if _, err := waitPod(ctx, releaseNamespace, webhookPod, 90*time.Second, podIsReady); err != nil {
		return fmt.Errorf("webhook pod: %w", err)
	}
	if err := node.PublishEndpoints(ctx, releaseNamespace, releaseName); err != nil {
		return err
	}
	return waitInjecting(ctx, 60*time.Second)
}

// waitInjecting creates annotated pods with a server-side dry run until
// the webhook injects one (it sets its caBundle once it has a
// certificate).
func waitInjecting(ctx context.Context, timeout time.Duration) error {
	if err := node.CreateNamespace(ctx, "e2e-probe"); err != nil {
		return err
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe"}, Data: map[string]string{webhook.ConfigKey: "version: 1\nsecrets: {A: \"k8s://e2e-probe/a#a\"}\nfiles:\n  - {path: /run/secrets/keyward/a, format: raw, secret: A}\n"}}
	if _, err := kubenode.Create(ctx, node.Client, "ConfigMap", "e2e-probe", cm); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Annotations: map[string]string{webhook.AnnotationInject: "true", webhook.AnnotationConfig: "probe"}},
		Spec:       corev1.PodSpec{NodeName: kubenode.Name, Containers: []corev1.Container{{Name: "app", Image: AppImage}}},
	}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		got, err := kubenode.Create(ctx, node.Client, "Pod", "e2e-probe", pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && got.Annotations[webhook.AnnotationStatus] == "injected" {
			return nil
		}
		last = err
		if err == nil {
			last = fmt.Errorf("pod admitted without injection")
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("the webhook does not inject after %v: %v\n%s", timeout, last, podLogs(ctx, releaseNamespace, webhookPod, "webhook"))
}
