//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/internal/testenv/kubenode"
	"github.com/keyward/keyward/providers"
	_ "github.com/keyward/keyward/providers/vault" // the vault provider kind, for config.Parse
	"github.com/keyward/keyward/render"
)

// The Secrets Store CSI Driver as the tests run it.
const (
	csiDriverName = "secrets-store.csi.k8s.io"
	// csiPoll is the driver's rotation poll interval and keyward
	// csi-provider's cache TTL here: a rotation reaches a pod's file
	// within about both (their defaults, 2m and 10s, would only make the
	// tests slower).
	csiPoll = time.Second
)

// csiStack is the driver, a host process beside the kubelet (as its
// DaemonSet's privileged container would be: the pods' volumes are its
// mounts in the kubelet's mount namespace), and keyward csi-provider, the
// pod of the chart's DaemonSet (charts/keyward, csiProvider.enabled), both
// started once by the first test that mounts a CSI volume and stopped with
// the node.
type csiStack struct {
	driver *testenv.Process
	// provider is keyward csi-provider's pod, in releaseNamespace.
	provider string
	// ca is a private CA the provider's pod trusts as a user's would: its
	// certificate is ConfigMap csiCAConfigMap, which the chart's
	// csiProvider.extraVolumes and extraVolumeMounts mount at csiCADir
	// (an instance's tls.ca_cert names csiCADir/ca.crt). Tests serve TLS
	// with certificates it issues.
	ca *testenv.TestCA
}

// The private CA's ConfigMap and where keyward csi-provider's container
// mounts it, through the chart's values as a user would.
const (
	csiCAConfigMap = "keyward-e2e-ca"
	csiCADir       = "/etc/keyward/ca"
)

var (
	csiOnce sync.Once
	csi     *csiStack
	csiErr  error
	csiUp   time.Duration // how long starting it took
)

// startCSI starts the driver and keyward csi-provider the first time it is
// called, and fails t if they cannot run.
func startCSI(t *testing.T) *csiStack {
	t.Helper()
	csiOnce.Do(startCSIOnce)
	if csiErr != nil {
		t.Fatalf("CSI driver: %v", csiErr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			const n = 6000
			l := csi.logs()
			p := l["keyward csi-provider"]
			t.Logf("end of the driver's log:\n%s\nend of keyward csi-provider's log:\n%s", csi.driver.LogTail(n), p[max(0, len(p)-n):])
		}
	})
	return csi
}

func startCSIOnce() {
	t0 := time.Now()
	csi, csiErr = newCSIStack(context.Background())
	csiUp = time.Since(t0)
}

// newCSIStack applies the driver's CRDs (its module's config/crd/bases)
// and the CSIDriver object, ServiceAccount and RBAC its chart renders with
// examples/kubernetes/csi/driver-values.yaml, starts keyward csi-provider
// (the pod of charts/keyward's DaemonSet) and the driver (as its
// ServiceAccount, with its chart's flags, polling every csiPoll) and
// registers the driver with the kubelet.
func newCSIStack(ctx context.Context) (_ *csiStack, err error) {
	bin, err := testenv.Binary("csi-driver.sh")
	if err != nil {
		return nil, err
	}
	src := filepath.Join(filepath.Dir(bin), "src")
	crds, err := filepath.Glob(filepath.Join(src, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(crds) == 0 {
		return nil, fmt.Errorf("no CRDs in %s (%v)", src, err)
	}
	for _, f := range crds {
		if err := applyFile(ctx, f, nil); err != nil {
			return nil, err
		}
	}
	// The driver's chart: its CSIDriver object, its ServiceAccount and
	// RBAC as they are (not its install hooks), its DaemonSet's
	// secrets-store container's flags.
	chart, err := driverChart(ctx, src)
	if err != nil {
		return nil, err
	}
	if err := node.CreateNamespace(ctx, driverNamespace); err != nil {
		return nil, err
	}
	var driverArgs []string
	for _, o := range chart {
		if _, hook := o.GetAnnotations()["helm.sh/hook"]; hook {
			continue
		}
		switch o.GetKind() {
		case "CSIDriver", "ServiceAccount", "ClusterRole", "ClusterRoleBinding":
			if err := node.Client.Apply(ctx, driverNamespace, o); err != nil {
				return nil, err
			}
		case "DaemonSet":
			var ds appsv1.DaemonSet
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &ds); err != nil {
				return nil, err
			}
			for _, c := range ds.Spec.Template.Spec.Containers {
				if c.Name == "secrets-store" {
					driverArgs = c.Args
				}
			}
		}
	}
	if driverArgs == nil {
		return nil, errors.New("the driver's chart renders no secrets-store container")
	}
	token, err := serviceAccountToken(ctx, driverNamespace, "secrets-store-csi-driver")
	if err != nil {
		return nil, err
	}
	for _, f := range crds {
		if err := waitEstablished(ctx, f); err != nil {
			return nil, err
		}
	}

	dir := filepath.Join(node.Dir, "csi")
	providers := filepath.Join(dir, "providers")
	for _, d := range []string{dir, providers} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	kubeconfig := filepath.Join(dir, "driver.kubeconfig")
	if err := os.WriteFile(kubeconfig, node.Kube.Kubeconfig(node.Kube.API.URL, token), 0o600); err != nil {
		return nil, err
	}
	s := &csiStack{}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	if s.ca, err = testenv.NewTestCA(); err != nil {
		return nil, err
	}
	if err := node.CreateNamespace(ctx, releaseNamespace); err != nil {
		return nil, err
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: csiCAConfigMap}, Data: map[string]string{"ca.crt": string(s.ca.PEM)}}
	if _, err := kubenode.Create(ctx, node.Client, "ConfigMap", releaseNamespace, cm); err != nil {
		return nil, fmt.Errorf("create the private CA's ConfigMap: %w", err)
	}
	if s.provider, err = startCSIProviderPod(ctx, providers,
		"csiProvider.extraVolumes[0].name=private-ca",
		"csiProvider.extraVolumes[0].configMap.name="+csiCAConfigMap,
		"csiProvider.extraVolumeMounts[0].name=private-ca",
		"csiProvider.extraVolumeMounts[0].mountPath="+csiCADir,
		"csiProvider.extraVolumeMounts[0].readOnly=true"); err != nil {
		return nil, err
	}
	if err := waitSocket(nil, filepath.Join(providers, "keyward.sock")); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, podLogs(ctx, releaseNamespace, s.provider, "csi-provider"))
	}
	// The kubelet's plugins dir, where node-driver-registrar would find
	// the driver's socket (the chart's kubeletRootDir/plugins/csi-secrets-store).
	sock := filepath.Join(node.KubeletDir(), "plugins", "csi-secrets-store", "csi.sock")
	if err := os.MkdirAll(filepath.Dir(sock), 0o750); err != nil {
		return nil, err
	}
	// The chart's flags, with the node's paths, a short poll and no
	// metrics listener.
	args, err := withFlags(driverArgs, map[string]string{
		"--endpoint":                         "unix://" + sock,
		"--nodeid":                           kubenode.Name,
		"--provider-volume":                  providers,
		"--additional-provider-volume-paths": providers,
		"--rotation-poll-interval":           csiPoll.String(),
		"--metrics-addr":                     "0",
	})
	if err != nil {
		return nil, err
	}
	if !slices.Contains(args, "--enable-secret-rotation=true") {
		return nil, fmt.Errorf("the driver's chart with driver-values.yaml does not enable rotation: %q", args)
	}
	s.driver, err = testenv.Start("secrets-store-csi-driver", dir, append([]string{bin, "-v=2"}, args...), []string{"KUBECONFIG=" + kubeconfig})
	if err != nil {
		return nil, err
	}
	if err := waitSocket(s.driver, sock); err != nil {
		return nil, err
	}
	unregister, err := node.RegisterCSIDriver(ctx, csiDriverName, sock)
	if err != nil {
		return nil, fmt.Errorf("%w\ndriver log: %s", err, s.driver.LogTail(3000))
	}
	node.OnStop(func() {
		unregister()
		s.stop()
	})
	return s, nil
}

func (s *csiStack) stop() {
	if s.driver != nil {
		s.driver.Stop()
	}
}

// startCSIProviderPod installs keyward csi-provider as the chart renders
// it with csiProvider.enabled (its ServiceAccount, RBAC and DaemonSet,
// whose pod is created directly: there is no DaemonSet controller), with
// its socket in providers and the chart values sets (helm --set), and
// returns the pod's name.
func startCSIProviderPod(ctx context.Context, providers string, sets ...string) (string, error) {
	manifests, err := helmTemplate(ctx, append([]string{"csiProvider.enabled=true", "csiProvider.socketDir=" + providers,
		"csiProvider.cacheTTL=" + csiPoll.String(), "logLevel=debug"}, sets...)...)
	if err != nil {
		return "", err
	}
	objs, err := kubenode.Decode(manifests)
	if err != nil {
		return "", err
	}
	var ds *appsv1.DaemonSet
	for _, o := range objs {
		if o.GetLabels()["app.kubernetes.io/component"] != "csi-provider" {
			continue // the webhook's objects, installed by the setup
		}
		if o.GetKind() == "DaemonSet" {
			ds = &appsv1.DaemonSet{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, ds); err != nil {
				return "", err
			}
			continue
		}
		if err := node.Client.Apply(ctx, releaseNamespace, o); err != nil {
			return "", err
		}
	}
	if ds == nil {
		return "", errors.New("helm template with csiProvider.enabled made no DaemonSet")
	}
	pod := kubenode.PodFromTemplate(ds.Name+"-0", releaseNamespace, ds.Spec.Template)
	if _, err := kubenode.Create(ctx, node.Client, "Pod", releaseNamespace, pod); err != nil {
		return "", fmt.Errorf("create keyward csi-provider's pod: %w", err)
	}
	return pod.Name, nil
}

// logs returns the logs of the driver, keyward csi-provider and the
// kubelet, by name.
func (s *csiStack) logs() map[string]string {
	const all = 1 << 30
	return map[string]string{
		"secrets-store-csi-driver": s.driver.LogTail(all),
		"keyward csi-provider":     podLogs(context.Background(), releaseNamespace, s.provider, "csi-provider"),
		"kubelet":                  node.LogTail(all),
	}
}

// checkNoLeak fails t if any of values appears in the logs of the driver,
// keyward or the kubelet, in an event or in a SecretProviderClassPodStatus
// of namespace. It fails too when values is empty or holds an empty
// value: a search for nothing would pass whatever the logs say.
func (s *csiStack) checkNoLeak(t *testing.T, namespace string, values map[string]string) {
	t.Helper()
	if len(values) == 0 {
		t.Fatal("no values to look for in the logs: the leak check would pass vacuously")
	}
	for name, v := range values {
		if v == "" {
			t.Fatalf("the value of %s is empty: nothing to look for in the logs", name)
		}
	}
	ctx := context.Background()
	texts := s.logs()
	evs, err := kubenode.List[corev1.Event](ctx, node.Client, "Event", namespace, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		texts["event "+e.Reason+" of "+e.InvolvedObject.Name] = e.Message
	}
	st, err := kubenode.List[unstructured.Unstructured](ctx, node.Client, "SecretProviderClassPodStatus", namespace, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range st {
		b, _ := json.Marshal(o.Object)
		texts["SecretProviderClassPodStatus "+o.GetName()] = string(b)
	}
	for where, text := range texts {
		for name, v := range values {
			if strings.Contains(text, v) {
				t.Errorf("leaked value of %s in %s", name, where)
			}
		}
	}
}

// recorded fails t unless n values of what were recorded to look for in
// the logs: a check that finds nothing of a kind because none was
// recorded proves nothing about it.
func recorded(t *testing.T, what string, n int) {
	t.Helper()
	if n == 0 {
		t.Errorf("no %s recorded: the leak check has none of them to look for", what)
	}
}

// checkDriverAllowed fails t if the API server refused the driver a
// request: its chart's RBAC must be enough for mounts and rotation.
func (s *csiStack) checkDriverAllowed(t *testing.T) {
	t.Helper()
	if l := s.driver.LogTail(1 << 30); strings.Contains(l, "serviceaccount:"+driverNamespace+":secrets-store-csi-driver") {
		i := strings.Index(l, "serviceaccount:"+driverNamespace+":secrets-store-csi-driver")
		t.Errorf("the API server refused the driver's ServiceAccount a request (its chart's RBAC):\n%s", l[max(0, i-300):min(len(l), i+300)])
	}
}

// waitSocket waits until the unix socket path exists, or p (when not
// nil) exits.
func waitSocket(p *testenv.Process, path string) error {
	deadline := time.Now().Add(60 * time.Second)
	var exited <-chan struct{}
	if p != nil {
		exited = p.Exited()
	}
	for {
		if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited: %s", p.Name, p.LogTail(3000))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tail := ""
			if p != nil {
				tail = p.LogTail(3000)
			}
			return fmt.Errorf("no socket %s after 60s: %s", path, tail)
		}
	}
}

// applyFile applies every object of a manifest file, edited by edit when
// it is not nil.
func applyFile(ctx context.Context, path string, edit func(*unstructured.Unstructured)) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	objs, err := kubenode.Decode(b)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, o := range objs {
		if edit != nil {
			edit(o)
		}
		if err := node.Client.Apply(ctx, "", o); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}

// waitEstablished waits until the CRD of a manifest file serves its kind.
func waitEstablished(ctx context.Context, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	objs, err := kubenode.Decode(b)
	if err != nil || len(objs) != 1 {
		return fmt.Errorf("%s: %d objects (%v)", path, len(objs), err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		crd, err := kubenode.Get[unstructured.Unstructured](ctx, node.Client, "CustomResourceDefinition", "", objs[0].GetName())
		if err == nil {
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			for _, c := range conds {
				if c, ok := c.(map[string]any); ok && c["type"] == "Established" && c["status"] == "True" {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("CRD %s not established after 30s (%v)", objs[0].GetName(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// driverNamespace is where the driver's chart is installed.
const driverNamespace = "kube-system"

// driverChart renders the driver's own chart (from its module's source)
// with examples/kubernetes/csi/driver-values.yaml, as the examples' README
// installs it.
func driverChart(ctx context.Context, src string) ([]*unstructured.Unstructured, error) {
	helm, err := testenv.Binary("helm.sh")
	if err != nil {
		return nil, err
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, helm, "template", "csi-secrets-store", filepath.Join(src, "charts", "secrets-store-csi-driver"),
		"--namespace", driverNamespace, "--kube-version", "1.36.3",
		"-f", filepath.Join(root, "examples", "kubernetes", "csi", "driver-values.yaml"))
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("helm template of the driver's chart: %v: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("helm template of the driver's chart: %w", err)
	}
	return kubenode.Decode(out)
}

// withFlags returns args (--name=value flags) with the value of each flag
// of set replaced; every flag of set must be there.
func withFlags(args []string, set map[string]string) ([]string, error) {
	out := slices.Clone(args)
	for name, v := range set {
		i := slices.IndexFunc(out, func(a string) bool { return strings.HasPrefix(a, name+"=") })
		if i < 0 {
			return nil, fmt.Errorf("the driver's chart does not set %s: %q", name, args)
		}
		out[i] = name + "=" + v
	}
	return out, nil
}

// serviceAccountToken returns a token of ServiceAccount namespace/name
// (TokenRequest, one hour), as the kubelet would project it.
func serviceAccountToken(ctx context.Context, namespace, name string) (string, error) {
	req := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
		"metadata": map[string]any{"name": name},
		"spec":     map[string]any{"expirationSeconds": int64(3600)},
	}}
	got, err := node.Client.Dynamic.Resource(kubenode.Resources["ServiceAccount"]).Namespace(namespace).Create(ctx, req, metav1.CreateOptions{}, "token")
	if err != nil {
		return "", fmt.Errorf("token of ServiceAccount %s/%s: %w", namespace, name, err)
	}
	token, _, _ := unstructured.NestedString(got.Object, "status", "token")
	if token == "" {
		return "", fmt.Errorf("token of ServiceAccount %s/%s: none in the response", namespace, name)
	}
	return token, nil
}

// csiExample returns the objects of examples/kubernetes/csi/file other
// than its pod, and the pod, whose application container ("stands for your
// application") is testapp with args and which is named name.
func csiExample(t *testing.T, file, name string, args ...string) ([]*unstructured.Unstructured, *corev1.Pod) {
	t.Helper()
	objs, err := kubenode.Decode(readExample(t, filepath.Join("csi", file)))
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(objs, func(o *unstructured.Unstructured) bool { return o.GetKind() == "Pod" })
	if i < 0 {
		t.Fatalf("csi/%s: no pod", file)
	}
	pod := examplePod(t, filepath.Join("csi", file), name, args...)
	return slices.Delete(objs, i, i+1), pod
}

// spcConfig returns the keyward config of the SecretProviderClass among
// objs.
func spcConfig(t *testing.T, objs []*unstructured.Unstructured) string {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == "SecretProviderClass" {
			cfg, _, _ := unstructured.NestedString(o.Object, "spec", "parameters", "config")
			return cfg
		}
	}
	t.Fatal("no SecretProviderClass")
	return ""
}

// expectedFiles renders the files of a SecretProviderClass's keyward
// config with the values value returns for its references, and returns
// the SHA-256 of each by its path in the volume under mountPath.
func expectedFiles(t *testing.T, cfgText, mountPath string, value func(providers.Ref) string) map[string]string {
	t.Helper()
	const dir = "/volume"
	cfg, err := config.Parse([]byte(cfgText), filepath.Join(dir, "keyward.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	res := map[string]providers.Resolved{}
	for name, s := range cfg.Secrets {
		res[name] = providers.Resolved{Value: providers.NewValue([]byte(value(s.Ref)))}
	}
	files := make([]render.File, len(cfg.Files))
	for i, f := range cfg.Files {
		files[i] = render.File{Path: f.Path, Format: render.Format(f.Format), Dialect: render.Dialect(f.Dialect),
			Secrets: f.Secrets, Secret: f.Secret, Template: f.Template, UID: -1, GID: -1}
	}
	contents, err := render.Build(files, res)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for i, f := range cfg.Files {
		rel, _ := filepath.Rel(dir, f.Path)
		out[filepath.Join(mountPath, rel)] = digest(string(contents[i]))
	}
	return out
}

// waitFiles waits until testapp's report (-watch) shows every file of
// want with its digest, and returns the events that did.
func waitFiles(ctx context.Context, t *testing.T, namespace, pod, container string, timeout time.Duration, want map[string]string) map[string]Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := map[string]Event{}
		for _, e := range events(ctx, t, namespace, pod, container) {
			if e.Event == "file" && want[e.Name] != "" && e.SHA256 == want[e.Name] {
				got[e.Name] = e
			}
		}
		if len(got) == len(want) {
			return got
		}
		if time.Now().After(deadline) {
			var missing []string
			for f := range want {
				if _, ok := got[f]; !ok {
					missing = append(missing, f)
				}
			}
			slices.Sort(missing)
			p, _ := kubenode.Get[corev1.Pod](ctx, node.Client, "Pod", namespace, pod)
			st := ""
			if p != nil {
				st = describe(p)
			}
			t.Fatalf("%s/%s: after %v the app has not read the expected contents of %s; report:\n%s\n%s", namespace, pod, timeout, strings.Join(missing, ", "), podLogs(ctx, namespace, pod, container), st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitMountFailure waits until the kubelet reports that it cannot mount
// the pod's volumes (a FailedMount event), checks that the pod's
// containers never started, and returns the event's message.
func waitMountFailure(ctx context.Context, t *testing.T, namespace, pod string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		evs, err := kubenode.List[corev1.Event](ctx, node.Client, "Event", namespace, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.InvolvedObject.Name == pod && e.Reason == "FailedMount" {
				p, err := kubenode.Get[corev1.Pod](ctx, node.Client, "Pod", namespace, pod)
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range p.Status.ContainerStatuses {
					if s.State.Running != nil || s.State.Terminated != nil {
						t.Errorf("container %s started although its volume could not be mounted", s.Name)
					}
				}
				return e.Message
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s: no FailedMount event after %v", namespace, pod, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// csiVolumeMount is where the example pod's container mounts its CSI
// volume.
func csiVolumeMount(t *testing.T, pod *corev1.Pod) string {
	t.Helper()
	for _, v := range pod.Spec.Volumes {
		if v.CSI == nil || v.CSI.Driver != csiDriverName {
			continue
		}
		for _, m := range pod.Spec.Containers[0].VolumeMounts {
			if m.Name == v.Name {
				return m.MountPath
			}
		}
	}
	t.Fatalf("pod %s mounts no %s volume", pod.Name, csiDriverName)
	return ""
}

func fileList(want map[string]string) string {
	var fs []string
	for f := range want {
		fs = append(fs, f)
	}
	slices.Sort(fs)
	return strings.Join(fs, ",")
}

// csiMountAndRotate runs the example pod, waits until its app reads every
// file of the SecretProviderClass with the contents want returns, then
// changes the store with rotate and waits until the app reads the new
// contents (the driver's rotation reconciler mounts again, keyward
// returns new object versions). It returns how long the rotation took to
// reach the app's file.
func csiMountAndRotate(t *testing.T, pod *corev1.Pod, want func() map[string]string, rotate func()) time.Duration {
	t.Helper()
	ctx := context.Background()
	first := want()
	pod.Spec.Containers[0].Command = []string{"/testapp", "-files", fileList(first), "-watch", "-poll", "20ms"}
	t0 := time.Now()
	if _, err := kubenode.Create(ctx, node.Client, "Pod", exampleNS, pod); err != nil {
		t.Fatal(err)
	}
	if _, err := waitPod(ctx, exampleNS, pod.Name, 60*time.Second, podIsReady); err != nil {
		t.Fatal(err)
	}
	got := waitFiles(ctx, t, exampleNS, pod.Name, "app", 30*time.Second, first)
	t.Logf("pod create → Ready with its CSI volume: %v", time.Since(t0).Round(time.Millisecond))
	for name, e := range got {
		if e.FS != "tmpfs" {
			t.Errorf("%s is on %s, not on the driver's tmpfs", name, e.FS)
		}
		t.Logf("%s: mode %s owner %d group %d", name, e.Mode, *e.Owner, *e.Group)
	}
	rotate()
	t0 = time.Now()
	next := want()
	for f, d := range next {
		if first[f] == d {
			delete(next, f) // not changed by the rotation
		}
	}
	if len(next) == 0 {
		t.Fatal("the rotation changed no file")
	}
	got = waitFiles(ctx, t, exampleNS, pod.Name, "app", 30*time.Second, next)
	var lat time.Duration
	for _, e := range got {
		lat = max(lat, time.Unix(0, e.T).Sub(t0))
	}
	return lat
}

// csiDenied runs the example pod as ServiceAccount sa (which may not read
// its secrets) and returns the kubelet's FailedMount message; its
// containers must never start.
func csiDenied(t *testing.T, pod *corev1.Pod, sa string) string {
	t.Helper()
	ctx := context.Background()
	if err := node.Client.Apply(ctx, exampleNS, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ServiceAccount", "metadata": map[string]any{"name": sa},
	}}); err != nil {
		t.Fatal(err)
	}
	pod.Spec.ServiceAccountName = sa
	pod.Spec.Containers[0].Command = []string{"/testapp", "-wait"}
	created, err := kubenode.Create(ctx, node.Client, "Pod", exampleNS, pod)
	if err != nil {
		t.Fatal(err)
	}
	msg := waitMountFailure(ctx, t, exampleNS, pod.Name, 60*time.Second)
	// Nothing was written where the pod's CSI volume would be.
	vols := filepath.Join(node.KubeletDir(), "pods", string(created.UID), "volumes", "kubernetes.io~csi")
	err = filepath.WalkDir(vols, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("the denied pod's CSI volume holds %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// applyCSIExample applies the objects of examples/kubernetes/csi/file
// other than its pod (edited by edit, when not nil) and returns them.
func applyCSIExample(t *testing.T, file string, edit func(*unstructured.Unstructured)) []*unstructured.Unstructured {
	t.Helper()
	objs, _ := csiExample(t, file, "unused")
	for _, o := range objs {
		if edit != nil {
			edit(o)
		}
		if err := node.Client.Apply(context.Background(), exampleNS, o); err != nil {
			t.Fatal(err)
		}
	}
	return objs
}

// testCSIKubernetes: examples/kubernetes/csi/k8s.yaml on the real driver.
// The pod's files hold the payments Secrets as its ServiceAccount reads
// them; a change of the Secret reaches the file through the driver's
// rotation; a pod of a ServiceAccount the Role does not name never starts
// and the kubelet's event says why; no value is in any log.
func testCSIKubernetes(t *testing.T) {
	ctx := context.Background()
	stack := startCSI(t)
	t.Logf("CSI driver registered with the kubelet, keyward csi-provider serving: %v after the start", csiUp.Round(time.Millisecond))
	objs := applyCSIExample(t, "k8s.yaml", nil)
	cfg := spcConfig(t, objs)
	_, pod := csiExample(t, "k8s.yaml", "payments-csi")
	mount := csiVolumeMount(t, pod)
	// Random values, so that finding one in a log cannot be chance (the
	// example's username is "payments", as its namespace).
	values := map[string]string{}
	set := func(secret, key string) {
		v := randomValue(t)
		values[fmt.Sprintf("%s#%s (%d)", secret, key, len(values))] = v
		patch, _ := json.Marshal(map[string]any{"stringData": map[string]string{key: v}})
		if err := node.Client.Patch(ctx, "Secret", exampleNS, secret, patch); err != nil {
			t.Fatal(err)
		}
	}
	set("payments-db", "password")
	set("payments-api", "api_key")
	want := func() map[string]string {
		return expectedFiles(t, cfg, mount, func(ref providers.Ref) string {
			return exampleSecret(t, strings.TrimPrefix(ref.Path, exampleNS+"/"), ref.Field)
		})
	}
	lat := csiMountAndRotate(t, pod, want, func() { set("payments-db", "password") })
	t.Logf("Secret update → app file through the driver's rotation: %v (poll interval %v, keyward cache TTL %v)", lat.Round(time.Millisecond), csiPoll, csiPoll)

	_, denied := csiExample(t, "k8s.yaml", "payments-csi-denied")
	msg := csiDenied(t, denied, "payments-csi-denied")
	t.Logf("a pod whose ServiceAccount may not read the Secrets: %s", msg)
	if !strings.Contains(msg, "payments-db") || !strings.Contains(msg, "forbidden") {
		t.Errorf("FailedMount event %q: want the Secret refused to the pod's ServiceAccount (forbidden) named", msg)
	}
	stack.checkNoLeak(t, exampleNS, values)
	stack.checkDriverAllowed(t)
}

// testCSIVault: examples/kubernetes/csi/vault.yaml on the real driver,
// with Vault on the node (its address in place of the example's). keyward
// logs in with the pod's own token for audience vault (the CSIDriver's
// tokenRequests), as the README's role allows; a new version of the KV
// secret reaches the pod's file through the driver's rotation; a pod of a
// ServiceAccount the role does not name never starts; no value is in any
// log.
func testCSIVault(t *testing.T) {
	ctx := context.Background()
	stack := startCSI(t)
	logStart := len(stack.logs()["keyward csi-provider"])
	v, err := testenv.StartVault(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Stop)
	cfg := vaultapi.DefaultConfig()
	cfg.Address = v.Addr
	admin, err := vaultapi.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	admin.SetToken(testenv.VaultRootToken)
	if err := admin.Sys().EnableAuthWithOptionsWithContext(ctx, "kubernetes", &vaultapi.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	if err := admin.Sys().PutPolicyWithContext(ctx, "payments-read", `path "secret/data/payments/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	for path, body := range map[string]map[string]any{
		"auth/kubernetes/config": {
			"kubernetes_host":    node.Kube.API.URL,
			"kubernetes_ca_cert": string(node.Kube.CAData),
			"token_reviewer_jwt": node.Kube.AdminToken,
		},
		// As examples/kubernetes/csi/README.md writes it.
		"auth/kubernetes/role/payments-app": {
			"bound_service_account_names":      "payments-app",
			"bound_service_account_namespaces": exampleNS,
			"audience":                         "vault",
			"token_policies":                   "payments-read",
			"token_ttl":                        "10m",
		},
	} {
		if _, err := admin.Logical().WriteWithContext(ctx, path, body); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	kv := map[string]map[string]string{"payments/db": {"password": randomValue(t)}, "payments/api": {"key": randomValue(t)}}
	put := func(path string) {
		data := map[string]any{}
		for k, v := range kv[path] {
			data[k] = v
		}
		if _, err := admin.KVv2("secret").Put(ctx, path, data); err != nil {
			t.Fatal(err)
		}
	}
	put("payments/db")
	put("payments/api")

	applyCSIExample(t, "k8s.yaml", nil) // ServiceAccount payments-app
	// keyward csi-provider runs in a pod: it reaches Vault at the node's
	// address.
	vaultAddr := "http://" + forward(t, strings.TrimPrefix(v.Addr, "http://"))
	const exampleAddr = "address: https://vault.vault.svc:8200"
	var spc string
	objs := applyCSIExample(t, "vault.yaml", func(o *unstructured.Unstructured) {
		if o.GetKind() != "SecretProviderClass" {
			return
		}
		c, _, _ := unstructured.NestedString(o.Object, "spec", "parameters", "config")
		if !strings.Contains(c, exampleAddr) {
			t.Fatalf("csi/vault.yaml: the SecretProviderClass's config has no %q to replace", exampleAddr)
		}
		// Vault on the node: plain HTTP.
		var lines []string
		for _, l := range strings.Split(c, "\n") {
			if strings.Contains(l, "tls:") {
				continue
			}
			lines = append(lines, strings.Replace(l, exampleAddr, "address: "+vaultAddr, 1))
		}
		c = strings.Join(lines, "\n")
		if err := unstructured.SetNestedField(o.Object, c, "spec", "parameters", "config"); err != nil {
			t.Fatal(err)
		}
		spc = c
	})
	if spc == "" {
		t.Fatalf("csi/vault.yaml: no SecretProviderClass among %d objects", len(objs))
	}
	_, pod := csiExample(t, "vault.yaml", "payments-csi-vault")
	mount := csiVolumeMount(t, pod)
	values := map[string]string{}
	want := func() map[string]string {
		return expectedFiles(t, spc, mount, func(ref providers.Ref) string {
			v := kv[strings.TrimPrefix(ref.Path, "secret/")][ref.Field]
			values[fmt.Sprintf("%s#%s (%d)", ref.Path, ref.Field, len(values))] = v
			return v
		})
	}
	lat := csiMountAndRotate(t, pod, want, func() {
		kv["payments/db"]["password"] = randomValue(t)
		put("payments/db")
	})
	t.Logf("Vault KV update → app file through the driver's rotation: %v", lat.Round(time.Millisecond))
	// The chart's pod verifies the pods' tokens with TokenReview (its
	// system:auth-delegator binding): the driver's remounts, with tokens
	// it requested itself, are of the same identity and reuse its login.
	if n := strings.Count(stack.logs()["keyward csi-provider"][logStart:], "logged in to vault"); n != 1 {
		t.Errorf("keyward logged in to Vault %d times for one pod's mount and the driver's remounts, want 1 (one identity, its login reused)", n)
	}

	_, denied := csiExample(t, "vault.yaml", "payments-csi-vault-denied")
	msg := csiDenied(t, denied, "payments-csi-denied")
	t.Logf("a pod whose ServiceAccount may not read the Secrets: %s", msg)
	if !strings.Contains(msg, "permission denied") {
		t.Errorf("FailedMount event %q: want Vault's refusal of the pod's ServiceAccount", msg)
	}
	stack.checkNoLeak(t, exampleNS, values)
	stack.checkDriverAllowed(t)
}

// forward serves to (a server on 127.0.0.1) on the node's address NodeIP,
// which pods reach, until the test ends, and returns the address.
func forward(t *testing.T, to string) string {
	t.Helper()
	l, err := net.Listen("tcp", kubenode.NodeIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				d, err := net.Dial("tcp", to)
				if err != nil {
					return
				}
				defer d.Close()
				go func() { _, _ = io.Copy(d, c) }()
				_, _ = io.Copy(c, d)
			}()
		}
	}()
	return l.Addr().String()
}
