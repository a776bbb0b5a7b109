//go:build integration

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/keyward/keyward/internal/testenv/kubenode"
)

// waitPod polls the pod until done says so, and returns it.
func waitPod(ctx context.Context, namespace, name string, timeout time.Duration, done func(*corev1.Pod) (bool, error)) (*corev1.Pod, error) {
	deadline := time.Now().Add(timeout)
	for {
		p, err := kubenode.Get[corev1.Pod](ctx, node.Client, "Pod", namespace, name)
		if err != nil {
			return nil, err
		}
		ok, err := done(p)
		if err != nil {
			return p, err
		}
		if ok {
			return p, nil
		}
		if time.Now().After(deadline) {
			return p, fmt.Errorf("pod %s/%s: not there after %v: phase %s\n%s", namespace, name, timeout, p.Status.Phase, describe(p))
		}
		select {
		case <-ctx.Done():
			return p, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func podIsReady(p *corev1.Pod) (bool, error) {
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		return false, fmt.Errorf("pod %s ended: %s\n%s", p.Name, p.Status.Phase, describe(p))
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true, nil
		}
	}
	return false, nil
}

func podEnded(p *corev1.Pod) (bool, error) {
	return p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded, nil
}

// describe summarizes the containers' states for a failure message.
func describe(p *corev1.Pod) string {
	var b strings.Builder
	for _, group := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, s := range group {
			fmt.Fprintf(&b, "  %s: ready=%v restarts=%d", s.Name, s.Ready, s.RestartCount)
			switch st := s.State; {
			case st.Waiting != nil:
				fmt.Fprintf(&b, " waiting %s %s", st.Waiting.Reason, st.Waiting.Message)
			case st.Running != nil:
				fmt.Fprintf(&b, " running since %s", st.Running.StartedAt.Format(time.RFC3339Nano))
			case st.Terminated != nil:
				fmt.Fprintf(&b, " terminated %s exit %d: %s", st.Terminated.Reason, st.Terminated.ExitCode, strings.TrimSpace(st.Terminated.Message))
			}
			b.WriteByte('\n')
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Message != "" {
			fmt.Fprintf(&b, "  condition %s: %s %s\n", c.Type, c.Reason, c.Message)
		}
	}
	return b.String()
}

// podLogs returns a container's log, or why it cannot, for messages.
func podLogs(ctx context.Context, namespace, pod, container string) string {
	l, err := node.Client.Logs(ctx, namespace, pod, container, false)
	if err != nil {
		return err.Error()
	}
	return l
}

// Event is one line of testapp's report (test/e2e/testapp).
type Event struct {
	Event  string `json:"event"`
	T      int64  `json:"t"`
	UID    int    `json:"uid"`
	GID    int    `json:"gid"`
	Groups []int  `json:"groups"`
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Len    int    `json:"len"`
	Mode   string `json:"mode"`
	FS     string `json:"fs"`
	Owner  *int   `json:"owner"`
	Group  *int   `json:"group"`
	Set    bool   `json:"set"`
	Err    string `json:"err"`
	Code   *int   `json:"code"`
}

// events returns testapp's report from a container's log.
func events(ctx context.Context, t *testing.T, namespace, pod, container string) []Event {
	t.Helper()
	l, err := node.Client.Logs(ctx, namespace, pod, container, false)
	if err != nil {
		t.Fatal(err)
	}
	var evs []Event
	sc := bufio.NewScanner(strings.NewReader(l))
	for sc.Scan() {
		var e Event
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Event != "" {
			evs = append(evs, e)
		}
	}
	return evs
}

// waitEvent polls a container's report until match finds an event.
func waitEvent(ctx context.Context, t *testing.T, namespace, pod, container string, timeout time.Duration, match func(Event) bool) Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, e := range events(ctx, t, namespace, pod, container) {
			if match(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			p, _ := kubenode.Get[corev1.Pod](ctx, node.Client, "Pod", namespace, pod)
			st := ""
			if p != nil {
				st = describe(p)
				// keyward's containers say why a file did not change.
				for _, c := range slices.Concat(p.Spec.InitContainers, p.Spec.Containers) {
					if c.Name != container {
						l := podLogs(ctx, namespace, pod, c.Name)
						st += fmt.Sprintf("\nlog of %s (its end):\n%s", c.Name, l[max(0, len(l)-4000):])
					}
				}
			}
			t.Fatalf("%s/%s container %s: no such event after %v; report:\n%s\n%s", namespace, pod, container, timeout, podLogs(ctx, namespace, pod, container), st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
