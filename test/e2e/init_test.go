//go:build integration

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keyward/keyward/internal/testenv/kubenode"
	"github.com/keyward/keyward/internal/webhook"
)

// TestInitFailingReferenceKeepsTheAppFromStarting: a reference to a
// Secret key that does not exist fails the injected init container; the
// kubelet restarts it and never starts the app, and the init container's
// status says why (its last log lines: keyward's error naming the
// reference), without the value of anything.
func TestInitFailingReferenceKeepsTheAppFromStarting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := newNamespace(t, "init-fail")
	value := randomValue(t)
	createSecret(t, ns, "app", map[string]string{"password": value})
	createConfig(t, ns, "missing-key", fmt.Sprintf(`version: 1
secrets:
  PASSWORD: k8s://%[1]s/app#password
  TOKEN: k8s://%[1]s/app#token
files:
  - {path: /run/secrets/keyward/password, format: raw, secret: PASSWORD}
  - {path: /run/secrets/keyward/token, format: raw, secret: TOKEN}
`, ns))
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Annotations: injected("missing-key")},
		Spec: corev1.PodSpec{
			NodeName:   kubenode.Name,
			Containers: []corev1.Container{appContainer("app", AppImage, "-files", "/run/secrets/keyward/password", "-wait")},
		},
	}
	if _, err := kubenode.Create(ctx, node.Client, "Pod", ns, pod); err != nil {
		t.Fatal(err)
	}
	var term *corev1.ContainerStateTerminated
	p, err := waitPod(ctx, ns, "app", 60*time.Second, func(p *corev1.Pod) (bool, error) {
		s := containerStatus(p, webhook.ContainerInit)
		if s == nil {
			return false, nil
		}
		switch {
		case s.State.Terminated != nil:
			term = s.State.Terminated
		case s.LastTerminationState.Terminated != nil:
			term = s.LastTerminationState.Terminated
		}
		return term != nil && s.RestartCount >= 1, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if term.ExitCode != 1 || !strings.Contains(term.Message, "k8s://"+ns+"/app#token") {
		t.Errorf("init container ended with exit code %d, message %q; want 1 and keyward's error naming the reference", term.ExitCode, term.Message)
	}
	if strings.Contains(term.Message, value) {
		t.Errorf("the init container's termination message leaked value of the Secret")
	}
	app := containerStatus(p, "app")
	if p.Status.Phase != corev1.PodPending || app == nil || app.State.Waiting == nil || app.State.Waiting.Reason != "PodInitializing" {
		t.Errorf("pod %s, app %+v: want Pending and the app never started\n%s", p.Status.Phase, app, describe(p))
	}
	t.Logf("init container: exit %d, restarts %d, message %q", term.ExitCode, containerStatus(p, webhook.ContainerInit).RestartCount, strings.TrimSpace(term.Message))
}
