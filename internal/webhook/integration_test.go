//go:build integration

package webhook

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// checkInjected checks the stored spec of a pod the webhook injected.
func checkInjected(t *testing.T, pod *corev1.Pod, wantInits string) {
	t.Helper()
	if got := containerNames(pod.Spec.InitContainers); got != wantInits {
		t.Fatalf("stored init containers %q, want %q", got, wantInits)
	}
	if pod.Annotations[AnnotationStatus] != "injected" {
		t.Errorf("no %s annotation", AnnotationStatus)
	}
	init := &pod.Spec.InitContainers[0]
	if init.Image != testImage || strings.Join(init.Args, " ") != "render --once -c "+ConfigPath+" --file-group=65532" {
		t.Errorf("init container %s %q", init.Image, init.Args)
	}
	checkKeywardContainer(t, init, 1000, 2000, DefaultSecretsPath)
	var memory bool
	for _, v := range pod.Spec.Volumes {
		if v.Name == VolumeSecrets && v.EmptyDir != nil && v.EmptyDir.Medium == corev1.StorageMediumMemory {
			memory = true
		}
	}
	if !memory {
		t.Error("no in-memory secrets volume in the stored pod")
	}
	if m := findMount(&pod.Spec.Containers[0], VolumeSecrets); m == nil || !m.ReadOnly {
		t.Errorf("app container's secrets mount %+v, want read-only", m)
	}
}

func TestE2EPod(t *testing.T) {
	t.Parallel()
	pod := appPod("web", map[string]string{AnnotationInject: "true", AnnotationConfig: "kw"})
	if err := createObj(t.Context(), podsGVR, appNamespace, pod); err != nil {
		t.Fatal(err)
	}
	checkInjected(t, getPod(t, appNamespace, "web"), "keyward-init")
}

// TestE2EDeploymentAndJob creates a Deployment and a Job (both stored as
// written: the webhook mutates pods, not templates, so GitOps tools see no
// drift) and then, since this API server runs without a controller
// manager, creates the pod each controller would create from its template
// (generateName, template metadata and spec, no name or namespace in the
// object) and checks the stored pod.
func TestE2EDeploymentAndJob(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	labels := map[string]string{"app": "api"}
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{AnnotationInject: "true", AnnotationConfig: "kw", AnnotationAgent: "true"}},
		Spec:       appPodSpec(),
	}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "api"},
		Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl},
	}
	jobTmpl := *tmpl.DeepCopy()
	jobTmpl.Labels = map[string]string{"job": "migrate"}
	jobTmpl.Spec.RestartPolicy = corev1.RestartPolicyNever
	jobTmpl.Spec.Containers[0].Command = []string{"sh", "-c", "cat /run/secrets/keyward/db-password >/dev/null"}
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "migrate"}, Spec: batchv1.JobSpec{Template: jobTmpl}}
	job.Spec.Template.Labels = nil // the Job controller sets its own selector labels

	for _, tt := range []struct {
		name string
		gvr  schema.GroupVersionResource
		obj  any
		tmpl corev1.PodTemplateSpec
	}{
		{"deployment", deploymentsGVR, deploy, tmpl},
		{"job", jobsGVR, job, jobTmpl},
	} {
		u, err := createU(ctx, tt.gvr, appNamespace, tt.obj, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		inits, _, _ := unstructuredSlice(u.Object, "spec", "template", "spec", "initContainers")
		if inits != 0 {
			t.Errorf("%s: the stored template was changed (%d init containers)", tt.name, inits)
		}
		pod := &corev1.Pod{ObjectMeta: *tt.tmpl.ObjectMeta.DeepCopy(), Spec: *tt.tmpl.Spec.DeepCopy()}
		pod.GenerateName = tt.name + "-"
		pu, err := createU(ctx, podsGVR, appNamespace, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("%s pod: %v", tt.name, err)
		}
		stored := getPod(t, appNamespace, pu.GetName())
		checkInjected(t, stored, "keyward-init,keyward-agent")
		sc := &stored.Spec.InitContainers[1]
		if sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			t.Errorf("%s: sidecar restartPolicy %v, want Always", tt.name, sc.RestartPolicy)
		}
		if p := sc.StartupProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.IntValue() != 8099 {
			t.Errorf("%s: startupProbe %+v", tt.name, sc.StartupProbe)
		}
	}
}

func unstructuredSlice(obj map[string]any, fields ...string) (int, bool, error) {
	var cur any = obj
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return 0, false, nil
		}
		cur = m[f]
	}
	s, ok := cur.([]any)
	return len(s), ok, nil
}

func TestE2EUntouched(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		ns          string
		annotations map[string]string
	}{
		{appNamespace, nil},
		{ownNamespace, map[string]string{AnnotationInject: "true", AnnotationConfig: "kw"}},
	} {
		name := "plain-" + tt.ns
		if err := createObj(t.Context(), podsGVR, tt.ns, appPod(name, tt.annotations)); err != nil {
			t.Fatal(err)
		}
		pod := getPod(t, tt.ns, name)
		var keywardVolumes int
		for _, v := range pod.Spec.Volumes {
			if strings.HasPrefix(v.Name, "keyward-") {
				keywardVolumes++
			}
		}
		if len(pod.Spec.InitContainers) != 0 || keywardVolumes != 0 || pod.Annotations[AnnotationStatus] != "" {
			t.Errorf("pod in %s was changed: inits %q, keyward volumes %d", tt.ns, containerNames(pod.Spec.InitContainers), keywardVolumes)
		}
	}
}

func TestE2EDenied(t *testing.T) {
	t.Parallel()
	noCommand := appPod("exec-no-command", map[string]string{AnnotationInject: "true", AnnotationConfig: "kw", AnnotationMode: "exec"})
	noCommand.Spec.Containers[0].Command = nil
	for _, tt := range []struct {
		pod  *corev1.Pod
		want string
	}{
		{appPod("no-configmap", map[string]string{AnnotationInject: "true", AnnotationConfig: "nope"}), "keyward: annotation keyward.io/config: ConfigMap app/nope does not exist"},
		{appPod("bad-inject", map[string]string{AnnotationInject: "yes", AnnotationConfig: "kw"}), `annotation keyward.io/inject: "yes" is not "true" or "false"`},
		{noCommand, "add command: [...] to container(s) app"},
		{appPod("bad-resources", map[string]string{AnnotationInject: "true", AnnotationConfig: "kw", AnnotationMemoryLimit: "lots"}), `annotation keyward.io/memory-limit: "lots" is not a quantity`},
		{appPod("request-over-limit", map[string]string{AnnotationInject: "true", AnnotationConfig: "kw", AnnotationMemoryRequest: "1Gi"}), "annotation keyward.io/memory-request 1Gi is above the webhook's default memory limit 64Mi"},
	} {
		err := createObj(t.Context(), podsGVR, appNamespace, tt.pod)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: create error %v, want the denial %q", tt.pod.Name, err, tt.want)
		}
	}
}

func TestE2ECertificate(t *testing.T) {
	t.Parallel()
	u, err := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "secrets"}).Namespace(ownNamespace).Get(t.Context(), tlsSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the webhook did not write its certificate Secret: %v", err)
	}
	var s corev1.Secret
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &s); err != nil {
		t.Fatal(err)
	}
	mu, err := dyn.Resource(mwcGVR).Get(t.Context(), mwcName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	whs, _, _ := unstructuredField(mu.Object, "webhooks")
	ca := whs.([]any)[0].(map[string]any)["clientConfig"].(map[string]any)["caBundle"]
	if s.Type != corev1.SecretTypeTLS || len(s.Data["ca.crt"]) == 0 {
		t.Fatalf("secret type %s", s.Type)
	}
	if want := b64(s.Data["ca.crt"]); ca != want {
		t.Error("caBundle is not the Secret's ca.crt")
	}
}

func unstructuredField(obj map[string]any, f string) (any, bool, error) {
	v, ok := obj[f]
	return v, ok, nil
}

// TestE2EInitContainerRendersFiles runs the stored pod's keyward-init
// command (the image's entrypoint is keyward: the built binary here) as
// the container would: as its uid and gid, with the ConfigMap at
// /etc/keyward and the emptyDir at the secrets path (bind mounts in a
// private mount namespace), against the same API server and Secret.
func TestE2EInitContainerRendersFiles(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pod := appPod("render", map[string]string{AnnotationInject: "true", AnnotationConfig: "kw"})
	if err := createObj(ctx, podsGVR, appNamespace, pod); err != nil {
		t.Fatal(err)
	}
	stored := getPod(t, appNamespace, "render")
	init := stored.Spec.InitContainers[0]
	if len(init.Command) != 0 {
		t.Fatalf("init container sets command %q; the test runs the image entrypoint (keyward) with args", init.Command)
	}
	uid, gid := *init.SecurityContext.RunAsUser, *init.SecurityContext.RunAsGroup
	// The kubelet gives every container of the pod its supplemental
	// groups (the webhook adds the group that shares the files).
	var groups []string
	if psc := stored.Spec.SecurityContext; psc != nil {
		for _, g := range psc.SupplementalGroups {
			groups = append(groups, itoa(g))
		}
	}
	if !slices.Contains(groups, itoa(DefaultFileGroup)) {
		t.Fatalf("stored pod's supplementalGroups %v lack %d", groups, DefaultFileGroup)
	}
	var mountPath string
	for _, m := range init.VolumeMounts {
		if m.Name == VolumeSecrets {
			mountPath = m.MountPath
		}
	}

	etc := filepath.Join(workDir, "etc-render")
	vol := filepath.Join(workDir, "vol-render")
	cmData := e2eConfig // the ConfigMap the pod's keyward-config volume mounts
	for p, mode := range map[string]os.FileMode{etc: 0o755, filepath.Join(etc, "keyward"): 0o755, vol: 0o777} {
		if err := os.MkdirAll(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // an emptyDir is 0777
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(etc, "keyward", ConfigKey), []byte(cmData), 0o644); err != nil {
		t.Fatal(err)
	}
	// The pod's service-account identity, here the admin token.
	if err := os.WriteFile(filepath.Join(etc, "kubeconfig"), cluster.Kubeconfig(cluster.API.URL, cluster.AdminToken), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `set -e
mount --bind "$ETC" /etc
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p "$SECRETS"
mount --bind "$VOL" "$SECRETS"
exec setpriv --reuid="$RUID" --regid="$RGID" --groups="$SUPP_GROUPS" --no-new-privs env -i KUBECONFIG=/etc/kubeconfig "$@"`
	args := append([]string{"--mount", "sh", "-c", script, "sh", keywardBin}, init.Args...)
	cmd := exec.CommandContext(ctx, "unshare", args...)
	cmd.Env = append(os.Environ(), "ETC="+etc, "VOL="+vol, "SECRETS="+mountPath,
		"RUID="+itoa(uid), "RGID="+itoa(gid), "SUPP_GROUPS="+strings.Join(groups, ","))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("keyward %s: %v\n%s", strings.Join(init.Args, " "), err, out.String())
	}
	if strings.Contains(out.String(), dbPassword) {
		t.Error("the init container's output contains the secret value")
	}
	for _, f := range []struct {
		name string
		mode os.FileMode
		want string
	}{
		// The config's modes, with the group's read permission.
		{"db-password", 0o440, dbPassword},
		{"db.env", 0o640, dbPassword},
	} {
		p := filepath.Join(vol, f.name)
		st, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s was not rendered: %v", f.name, err)
			continue
		}
		sys := st.Sys().(*syscall.Stat_t)
		if st.Mode() != f.mode || int64(sys.Uid) != uid || int64(sys.Gid) != DefaultFileGroup {
			t.Errorf("%s: mode %v owner %d:%d, want %v %d:%d", f.name, st.Mode(), sys.Uid, sys.Gid, f.mode, uid, DefaultFileGroup)
		}
		b, _ := os.ReadFile(p)
		if !strings.Contains(string(b), f.want) {
			t.Errorf("%s does not hold the Secret's value (%d bytes)", f.name, len(b))
		}
	}
}

// TestInstallBinary runs what the exec mode's keyward-install init
// container runs, and the webhook command's usage checks.
func TestInstallBinary(t *testing.T) {
	t.Parallel()
	dst := filepath.Join(t.TempDir(), "keyward")
	if out, err := exec.CommandContext(t.Context(), keywardBin, "webhook", "install-binary", dst).CombinedOutput(); err != nil {
		t.Fatalf("install-binary: %v: %s", err, out)
	}
	st, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	src, _ := os.ReadFile(keywardBin)
	got, _ := os.ReadFile(dst)
	if st.Mode().Perm() != 0o555 || !bytes.Equal(src, got) {
		t.Errorf("installed binary mode %v, identical %v; want 0555, true", st.Mode().Perm(), bytes.Equal(src, got))
	}
	for _, args := range [][]string{
		{"webhook", "--namespace", "x"},
		{"webhook", "--tls-secret", "s"},
		{"webhook", "--tls-cert-file", "c", "--namespace", "x"},
		{"webhook", "--tls-cert-file", "c", "--tls-key-file", "k", "--namespace", "x", "--cert-lifetime", "1h"},
		{"webhook", "--tls-secret", "s", "--namespace", "x", "--cert-lifetime", "1h", "--cert-renew-before", "40m"},
		{"webhook", "--tls-secret", "s", "--namespace", "x", "--cert-lifetime", "-1h"},
		{"webhook", "--tls-secret", "s", "--namespace", "x", "--injector-memory-limit", "lots"},
		{"webhook", "--tls-secret", "s", "--namespace", "x", "--injector-cpu-request", "2", "--injector-cpu-limit", "1"},
	} {
		cmd := exec.CommandContext(t.Context(), keywardBin, args...)
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("keyward %v: %v, want exit code 2", args, err)
		}
	}
}

// TestE2EResources: a pod's resource annotations reach the containers
// keyward adds, as the API server stores them.
func TestE2EResources(t *testing.T) {
	t.Parallel()
	pod := appPod("resources", map[string]string{AnnotationInject: "true", AnnotationConfig: "kw",
		AnnotationCPURequest: "25m", AnnotationMemoryRequest: "48Mi", AnnotationCPULimit: "250m", AnnotationMemoryLimit: "96Mi"})
	if err := createObj(t.Context(), podsGVR, appNamespace, pod); err != nil {
		t.Fatal(err)
	}
	stored := getPod(t, appNamespace, "resources")
	for _, c := range stored.Spec.InitContainers {
		r := c.Resources
		if r.Requests.Cpu().String() != "25m" || r.Requests.Memory().String() != "48Mi" || r.Limits.Cpu().String() != "250m" || r.Limits.Memory().String() != "96Mi" {
			t.Errorf("%s: stored resources %v", c.Name, r)
		}
	}
	if len(stored.Spec.InitContainers) == 0 {
		t.Fatal("nothing injected")
	}
}

// TestE2EMetrics scrapes the webhook's /metrics around an injected and a
// denied pod, and checks the certificate expiry against the certificate
// the webhook serves.
func TestE2EMetrics(t *testing.T) {
	t.Parallel()
	before := scrape(t)
	if err := createObj(t.Context(), podsGVR, appNamespace, appPod("metrics", map[string]string{AnnotationInject: "true", AnnotationConfig: "kw"})); err != nil {
		t.Fatal(err)
	}
	if err := createObj(t.Context(), podsGVR, appNamespace, appPod("metrics-denied", map[string]string{AnnotationInject: "maybe"})); err == nil {
		t.Fatal("a pod with a bad annotation was admitted")
	}
	after := scrape(t)
	for _, series := range []string{
		`keyward_webhook_admissions_total{result="injected"}`,
		`keyward_webhook_admissions_total{result="denied"}`,
		`keyward_webhook_admission_duration_seconds_count{result="injected"}`,
	} {
		if after[series] < before[series]+1 {
			t.Errorf("%s went from %v to %v, want at least one more", series, before[series], after[series])
		}
	}
	cert, err := servedCert(t.Context(), webhookAddr)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := after["keyward_webhook_certificate_expiry_timestamp_seconds"], float64(cert.NotAfter.Unix()); got != want {
		t.Errorf("certificate expiry %v, want the served certificate's %v", got, want)
	}
	resp, err := http.Get("http://" + metricsAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz %d, want 200", resp.StatusCode)
	}
}

// scrape returns the webhook's metric samples by series ("name{labels}").
func scrape(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	out := map[string]float64{}
	for line := range strings.SplitSeq(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}
