//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/testenv/kubenode"
	_ "github.com/keyward/keyward/providers/kubernetes" // the k8s provider kind, for config.Parse
)

// The example's namespace and objects (examples/kubernetes).
const (
	exampleNS  = "payments"
	secretsDir = "/run/secrets/app"
)

// exampleFiles are the files of examples/kubernetes/keyward.yaml, which
// the example apps read.
var exampleFiles = []string{secretsDir + "/db.env", secretsDir + "/db-password", secretsDir + "/api.json"}

// applyExampleFixtures applies the example's namespace, Secrets, RBAC
// and ConfigMap as they are, plus what the controller-manager would add
// to the namespace.
func applyExampleFixtures(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, f := range []string{"namespace.yaml", "secrets.yaml", "rbac.yaml", "configmap.yaml"} {
		objs, err := kubenode.Decode(readExample(t, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, o := range objs {
			if err := node.Client.Apply(ctx, exampleNS, o); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
		}
		if f == "namespace.yaml" {
			if err := node.CreateNamespace(ctx, exampleNS); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// examplePod returns the pod that the example manifest file makes: the
// Pod itself, or the one its Deployment, Job or CronJob's controller
// would create, named name and bound to the node. Its application
// container ("stands for your application": busybox running sh) is
// testapp with args, with everything else of the manifest (annotations,
// securityContext, volumes, keyward's own containers) as written.
func examplePod(t *testing.T, file, name string, args ...string) *corev1.Pod {
	t.Helper()
	all, err := kubenode.Decode(readExample(t, file))
	if err != nil {
		t.Fatal(err)
	}
	objs := slices.DeleteFunc(all, func(o *unstructured.Unstructured) bool {
		return !slices.Contains([]string{"Pod", "Deployment", "Job", "CronJob"}, o.GetKind())
	})
	if len(objs) != 1 {
		t.Fatalf("%s: %d pods or controllers of pods, want 1", file, len(objs))
	}
	var tmpl corev1.PodTemplateSpec
	conv := runtime.DefaultUnstructuredConverter
	switch o := objs[0]; o.GetKind() {
	case "Pod":
		var p corev1.Pod
		err = conv.FromUnstructured(o.Object, &p)
		tmpl = corev1.PodTemplateSpec{ObjectMeta: p.ObjectMeta, Spec: p.Spec}
	case "Deployment":
		var d appsv1.Deployment
		err = conv.FromUnstructured(o.Object, &d)
		tmpl = d.Spec.Template
	case "Job":
		var j batchv1.Job
		err = conv.FromUnstructured(o.Object, &j)
		tmpl = j.Spec.Template
	case "CronJob":
		var c batchv1.CronJob
		err = conv.FromUnstructured(o.Object, &c)
		tmpl = c.Spec.JobTemplate.Spec.Template
	default:
		t.Fatalf("%s: unexpected kind %s", file, o.GetKind())
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl.ObjectMeta = *tmpl.ObjectMeta.DeepCopy()
	pod := kubenode.PodFromTemplate(name, exampleNS, tmpl)
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if !strings.Contains(c.Image, "busybox") {
			t.Fatalf("%s: container %s runs %s, not the stand-in for the application", file, c.Name, c.Image)
		}
		c.Image, c.ImagePullPolicy = AppImage, corev1.PullNever
		c.Command, c.Args = append([]string{"/testapp"}, args...), nil
	}
	return pod
}

// exampleConfig is examples/kubernetes/keyward.yaml, parsed.
func exampleConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse(readExample(t, "keyward.yaml"), filepath.Join("examples", "kubernetes", "keyward.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// exampleSecret reads key of Secret payments/name as the tests set it.
func exampleSecret(t *testing.T, name, key string) string {
	t.Helper()
	s, err := kubenode.Get[corev1.Secret](context.Background(), node.Client, "Secret", exampleNS, name)
	if err != nil {
		t.Fatal(err)
	}
	return string(s.Data[key])
}

// checkExampleFiles checks testapp's report of the example's files: each
// read from the in-memory volume, db-password holding the Secret's
// password, and the mode, owner and group keyward.yaml asks for.
func checkExampleFiles(t *testing.T, evs []Event) {
	t.Helper()
	cfg := exampleConfig(t)
	password := exampleSecret(t, "payments-db", "password")
	for _, f := range cfg.Files {
		i := slices.IndexFunc(evs, func(e Event) bool { return e.Event == "file" && e.Name == f.Path })
		if i < 0 {
			t.Errorf("the app did not report %s", f.Path)
			continue
		}
		e := evs[i]
		if e.Err != "" {
			t.Errorf("the app cannot read %s: %s", f.Path, e.Err)
			continue
		}
		if want := fmt.Sprintf("%04o", uint32(f.Mode.Perm())); e.Mode != want || *e.Owner != *f.Owner || *e.Group != *f.Group {
			t.Errorf("%s: mode %s owner %d:%d, want %s %d:%d (keyward.yaml)", f.Path, e.Mode, *e.Owner, *e.Group, want, *f.Owner, *f.Group)
		}
		if e.FS != "tmpfs" {
			t.Errorf("%s is on %s, not on the in-memory volume", f.Path, e.FS)
		}
		if f.Path == secretsDir+"/db-password" && e.SHA256 != digest(password) {
			t.Errorf("%s does not hold the Secret's password", f.Path)
		}
	}
}

// TestExamples runs the pods of examples/kubernetes, one at a time (they
// share the example's namespace and Secrets), each with testapp as its
// application.
func TestExamples(t *testing.T) {
	t.Parallel()
	applyExampleFixtures(t)
	t.Cleanup(func() {
		if err := node.DeletePods(context.Background(), exampleNS); err != nil {
			t.Log(err)
		}
	})
	files := strings.Join(exampleFiles, ",")
	// The CSI driver starts while the other examples run.
	go csiOnce.Do(startCSIOnce)

	t.Run("init-pod.yaml", func(t *testing.T) {
		ctx := context.Background()
		pod := examplePod(t, "init-pod.yaml", "payments-init", "-files", files)
		pod.Spec.RestartPolicy = corev1.RestartPolicyNever
		if _, err := kubenode.Create(ctx, node.Client, "Pod", exampleNS, pod); err != nil {
			t.Fatal(err)
		}
		p, err := waitPod(ctx, exampleNS, pod.Name, 60*time.Second, podEnded)
		if err != nil {
			t.Fatal(err)
		}
		if p.Status.Phase != corev1.PodSucceeded {
			t.Fatalf("pod %s:\n%s", p.Status.Phase, describe(p))
		}
		checkExampleFiles(t, events(ctx, t, exampleNS, pod.Name, "app"))
	})

	t.Run("sidecar-pod.yaml", func(t *testing.T) {
		// No init container renders here: only the agent's startupProbe
		// (/readyz: the first render is done) holds the app back, and
		// the app finds its files at start.
		ctx := context.Background()
		pod := examplePod(t, "sidecar-pod.yaml", "payments-sidecar", "-files", files, "-wait")
		if _, err := kubenode.Create(ctx, node.Client, "Pod", exampleNS, pod); err != nil {
			t.Fatal(err)
		}
		p, err := waitPod(ctx, exampleNS, pod.Name, 60*time.Second, podIsReady)
		if err != nil {
			t.Fatal(err)
		}
		checkStartOrder(t, p, "keyward")
		checkExampleFiles(t, events(ctx, t, exampleNS, pod.Name, "app"))
	})

	t.Run("webhook/deployment.yaml", func(t *testing.T) {
		ctx := context.Background()
		pod := examplePod(t, "webhook/deployment.yaml", "payments-api-0", "-files", files, "-watch")
		t0 := time.Now()
		if _, err := kubenode.Create(ctx, node.Client, "Pod", exampleNS, pod); err != nil {
			t.Fatal(err)
		}
		p, err := waitPod(ctx, exampleNS, pod.Name, 60*time.Second, podIsReady)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("pod create → Ready: %v (init render, agent sidecar started, app ready)", time.Since(t0).Round(time.Millisecond))
		if got := names(p.Spec.InitContainers); got != "keyward-init,keyward-agent" {
			t.Fatalf("init containers %s, want keyward-init,keyward-agent (injected)", got)
		}
		checkStartOrder(t, p, "keyward-agent")
		checkExampleFiles(t, events(ctx, t, exampleNS, pod.Name, "app"))
		rotate(t, pod.Name, "app", 12)
		p, err = kubenode.Get[corev1.Pod](ctx, node.Client, "Pod", exampleNS, pod.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
			if s.RestartCount != 0 {
				t.Errorf("container %s restarted %d times during the rotations", s.Name, s.RestartCount)
			}
		}
	})

	t.Run("webhook/job.yaml", func(t *testing.T) {
		ctx := context.Background()
		pod := examplePod(t, "webhook/job.yaml", "payments-migrate-0", "-files", files)
		if _, err := kubenode.Create(ctx, node.Client, "Pod", exampleNS, pod); err != nil {
			t.Fatal(err)
		}
		p, err := waitPod(ctx, exampleNS, pod.Name, 60*time.Second, podEnded)
		if err != nil {
			t.Fatal(err)
		}
		if p.Status.Phase != corev1.PodSucceeded {
			t.Fatalf("the Job's pod %s, want Succeeded (the native sidecar stops after the app):\n%s", p.Status.Phase, describe(p))
		}
		checkExampleFiles(t, events(ctx, t, exampleNS, pod.Name, "migrate"))
	})

	t.Run("webhook/cronjob.yaml", func(t *testing.T) {
		// keyward exec: the environment comes from keyward, signals reach
		// the app through it, and its exit code is the container's.
		ctx := context.Background()
		pod := examplePod(t, "webhook/cronjob.yaml", "payments-report-0", "-files", files, "-env", "DB_PASSWORD,API_KEY,DB", "-wait", "-exit-on-term", "42")
		if _, err := kubenode.Create(ctx, node.Client, "Pod", exampleNS, pod); err != nil {
			t.Fatal(err)
		}
		p, err := waitPod(ctx, exampleNS, pod.Name, 60*time.Second, func(p *corev1.Pod) (bool, error) {
			s := containerStatus(p, "report")
			return s != nil && s.State.Running != nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if cmd := strings.Join(p.Spec.Containers[0].Command, " "); !strings.HasPrefix(cmd, "/keyward/bin/keyward exec -c /etc/keyward/keyward.yaml -- /testapp") {
			t.Fatalf("container command %q, want it under keyward exec", cmd)
		}
		waitEvent(ctx, t, exampleNS, pod.Name, "report", 30*time.Second, func(e Event) bool { return e.Event == "ready" })
		evs := events(ctx, t, exampleNS, pod.Name, "report")
		env := map[string]Event{}
		for _, e := range evs {
			if e.Event == "env" {
				env[e.Name] = e
			}
		}
		if e := env["DB_PASSWORD"]; !e.Set || e.SHA256 != digest(exampleSecret(t, "payments-db", "password")) {
			t.Errorf("DB_PASSWORD in the app's environment: set %v, not the Secret's password", e.Set)
		}
		if e := env["API_KEY"]; !e.Set || e.SHA256 != digest(exampleSecret(t, "payments-api", "api_key")) {
			t.Errorf("API_KEY in the app's environment: set %v, not the Secret's api_key", e.Set)
		}
		if !env["DB"].Set {
			t.Errorf("DB (the whole Secret) is not in the app's environment")
		}
		checkExampleFiles(t, evs)

		id := containerStatus(p, "report").ContainerID
		if err := node.SignalContainer(ctx, id, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitEvent(ctx, t, exampleNS, pod.Name, "report", 10*time.Second, func(e Event) bool { return e.Event == "signal" && e.Name == "hangup" })
		if err := node.SignalContainer(ctx, id, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		p, err = waitPod(ctx, exampleNS, pod.Name, 30*time.Second, podEnded)
		if err != nil {
			t.Fatal(err)
		}
		waitEvent(ctx, t, exampleNS, pod.Name, "report", 10*time.Second, func(e Event) bool { return e.Event == "signal" && e.Name == "terminated" })
		s := containerStatus(p, "report")
		if s.State.Terminated == nil || s.State.Terminated.ExitCode != 42 {
			t.Errorf("container state %+v, want terminated with the app's exit code 42\n%s", s.State, describe(p))
		}
	})

	// The CSI examples: keyward csi-provider beside the real Secrets
	// Store CSI Driver (csi_test.go).
	t.Run("csi/k8s.yaml", testCSIKubernetes)
	t.Run("csi/vault.yaml", testCSIVault)
	t.Run("csi/aws.yaml", testCSIAWS)
	t.Run("csi/gcp.yaml", testCSIGCP)
}

// checkStartOrder checks that the app container started after the
// sidecar had passed its startupProbe (the kubelet's order).
func checkStartOrder(t *testing.T, p *corev1.Pod, sidecar string) {
	t.Helper()
	sc, app := containerStatus(p, sidecar), &p.Status.ContainerStatuses[0]
	if sc == nil || sc.Started == nil || !*sc.Started || sc.State.Running == nil || app.State.Running == nil {
		t.Fatalf("sidecar %s or app not running and started:\n%s", sidecar, describe(p))
	}
	if app.State.Running.StartedAt.Before(&sc.State.Running.StartedAt) {
		t.Errorf("the app started at %v, before the sidecar (%v)", app.State.Running.StartedAt, sc.State.Running.StartedAt)
	}
}

func containerStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for _, group := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for i := range group {
			if group[i].Name == name {
				return &group[i]
			}
		}
	}
	return nil
}

func names(cs []corev1.Container) string {
	var n []string
	for _, c := range cs {
		n = append(n, c.Name)
	}
	return strings.Join(n, ",")
}

// rotate updates the password of Secret payments/payments-db n times
// through the API and measures how long each takes to reach the file the
// app container reads (testapp polls it every 5 ms and stamps what it
// sees); each must arrive within 2 s.
func rotate(t *testing.T, pod, container string, n int) {
	t.Helper()
	ctx := context.Background()
	var lat []time.Duration
	for i := 0; i < n; i++ {
		v := randomValue(t)
		patch, _ := json.Marshal(map[string]any{"stringData": map[string]string{"password": v}})
		t0 := time.Now()
		if err := node.Client.Patch(ctx, "Secret", exampleNS, "payments-db", patch); err != nil {
			t.Fatal(err)
		}
		// The watch delivers an update in well under a second on an idle
		// node; the bound is generous for a loaded one (the latency is
		// reported, not asserted) and far below the 10-minute safety
		// poll, so an update the watch missed still fails here.
		e := waitEvent(ctx, t, exampleNS, pod, container, 30*time.Second, func(e Event) bool {
			return e.Event == "file" && e.Name == secretsDir+"/db-password" && e.SHA256 == digest(v)
		})
		lat = append(lat, time.Unix(0, e.T).Sub(t0))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("Secret update → app file over %d updates: p50 %v, p99 %v, max %v", n, lat[len(lat)/2].Round(time.Millisecond), lat[(len(lat)*99+99)/100-1].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
}
