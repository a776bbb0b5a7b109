//go:build integration

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keyward/keyward/internal/testenv/kubenode"
)

func ptr[T any](v T) *T { return &v }

// TestAppReadsItsFilesWhateverItsUser runs injected pods whose app runs
// as different users — the image's USER with nothing in the pod spec,
// runAsUser and fsGroup set in different ways, two containers of two
// users — and checks that each app container reads its file, and that
// the file is readable by nobody outside the pod (no permission for
// others; the group, if it may read, is one the pod gives its
// containers).
func TestAppReadsItsFilesWhateverItsUser(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t, "perms")
	value := randomValue(t)
	createSecret(t, ns, "app", map[string]string{"password": value})
	const file = "/run/secrets/keyward/password"
	createConfig(t, ns, "default-mode", fmt.Sprintf("version: 1\nsecrets: {PASSWORD: \"k8s://%s/app#password\"}\nfiles:\n  - {path: %s, format: raw, secret: PASSWORD}\n", ns, file))
	createConfig(t, ns, "mode-0400", fmt.Sprintf("version: 1\nsecrets: {PASSWORD: \"k8s://%s/app#password\"}\nfiles:\n  - {path: %s, format: raw, secret: PASSWORD, mode: \"0400\"}\n", ns, file))

	dropAll := &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
	cases := []struct {
		name       string
		config     string
		podSC      *corev1.PodSecurityContext
		containers []corev1.Container
	}{
		{name: "image-user-1000", config: "default-mode",
			containers: []corev1.Container{appContainer("app", AppUser1000Image, "-files", file)}},
		{name: "image-user-1000-mode-0400", config: "mode-0400",
			containers: []corev1.Container{appContainer("app", AppUser1000Image, "-files", file)}},
		{name: "image-root-no-capabilities", config: "mode-0400",
			containers: []corev1.Container{withSC(appContainer("app", AppImage, "-files", file), dropAll)}},
		{name: "image-user-1000-fsgroup", config: "mode-0400", podSC: &corev1.PodSecurityContext{FSGroup: ptr(int64(3000))},
			containers: []corev1.Container{appContainer("app", AppUser1000Image, "-files", file)}},
		{name: "pod-run-as-user", config: "mode-0400", podSC: &corev1.PodSecurityContext{RunAsUser: ptr(int64(2000)), RunAsGroup: ptr(int64(2001))},
			containers: []corev1.Container{appContainer("app", AppUser1000Image, "-files", file)}},
		{name: "container-run-as-user", config: "default-mode",
			containers: []corev1.Container{withSC(appContainer("app", AppUser1000Image, "-files", file), &corev1.SecurityContext{RunAsUser: ptr(int64(1500))})}},
		{name: "two-users", config: "mode-0400", podSC: &corev1.PodSecurityContext{SupplementalGroups: []int64{4000}},
			containers: []corev1.Container{
				appContainer("app", AppUser1000Image, "-files", file),
				withSC(appContainer("other", AppImage, "-files", file), &corev1.SecurityContext{RunAsUser: ptr(int64(2500)), RunAsGroup: ptr(int64(2500))}),
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: tc.name, Annotations: injected(tc.config)},
				Spec: corev1.PodSpec{
					NodeName: kubenode.Name, RestartPolicy: corev1.RestartPolicyNever,
					SecurityContext: tc.podSC, Containers: tc.containers,
				},
			}
			if _, err := kubenode.Create(ctx, node.Client, "Pod", ns, pod); err != nil {
				t.Fatal(err)
			}
			p, err := waitPod(ctx, ns, tc.name, 60*time.Second, podEnded)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tc.containers {
				evs := events(ctx, t, ns, tc.name, c.Name)
				i := slices.IndexFunc(evs, func(e Event) bool { return e.Event == "start" })
				j := slices.IndexFunc(evs, func(e Event) bool { return e.Event == "file" && e.Name == file })
				if i < 0 || j < 0 {
					t.Fatalf("container %s reported no start or file:\n%s\n%s", c.Name, podLogs(ctx, ns, tc.name, c.Name), describe(p))
				}
				who, f := evs[i], evs[j]
				whoami := fmt.Sprintf("uid %d gid %d groups %v", who.UID, who.GID, who.Groups)
				if f.Err != "" {
					t.Fatalf("container %s (%s) cannot read %s (%s %s %s): %s", c.Name, whoami, file, f.Mode, id(f.Owner), id(f.Group), f.Err)
				}
				if f.FS != "tmpfs" {
					t.Errorf("%s is on %s, not on the in-memory volume", file, f.FS)
				}
				if f.SHA256 != digest(value) {
					t.Errorf("container %s read a different value from %s", c.Name, file)
				}
				mode, _ := strconv.ParseUint(f.Mode, 8, 32)
				if mode&0o007 != 0 {
					t.Errorf("%s has mode %s: others may read or write it", file, f.Mode)
				}
				if mode&0o040 != 0 && !slices.Contains(who.Groups, *f.Group) && who.GID != *f.Group {
					t.Errorf("%s has mode %s and group %d, which the pod does not give its containers (%s)", file, f.Mode, *f.Group, whoami)
				}
				t.Logf("container %s (%s) read %s: mode %s owner %d group %d", c.Name, whoami, file, f.Mode, *f.Owner, *f.Group)
			}
		})
	}
}

func withSC(c corev1.Container, sc *corev1.SecurityContext) corev1.Container {
	c.SecurityContext = sc
	return c
}

func id(p *int) string {
	if p == nil {
		return "-"
	}
	return strconv.Itoa(*p)
}
