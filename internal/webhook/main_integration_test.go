//go:build integration

package webhook

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	admregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/keyward/keyward/internal/testenv"
)

// The integration tests run a real etcd and kube-apiserver (started once
// in TestMain) and the built keyward binary's `keyward webhook` on a free
// 127.0.0.1 port with a self-generated certificate: the API server calls
// it over TLS for every pod created, as in a cluster.

const (
	ownNamespace = "keyward"
	appNamespace = "app"
	mwcName      = "keyward"
	tlsSecret    = "keyward-webhook-tls"
	testImage    = "keyward:e2e"
	// dbPassword is the test secret's value; it is compared, never printed.
	dbPassword = "s3cr3t-e2e-Pa55"
)

var (
	cluster     *testenv.Kube
	dyn         dynamic.Interface
	workDir     string
	keywardBin  string
	webhookProc *testenv.Process
	webhookAddr string
	metricsAddr string
	kubeconfig  string
)

var (
	podsGVR        = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	saGVR          = schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}
	nsGVR          = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	deploymentsGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	jobsGVR        = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "keyward-webhook-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The injected init container's command runs as a non-root uid: it
	// must reach the binary and the files under dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	workDir = dir
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := setup(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "webhook integration tests: %v\n", err)
		stop()
		return 1
	}
	defer stop()
	return m.Run()
}

func stop() {
	if webhookProc != nil {
		webhookProc.Stop()
	}
	if cluster != nil {
		cluster.Stop()
	}
}

func setup(ctx context.Context) error {
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	keywardBin = filepath.Join(workDir, "keyward")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", keywardBin, "./cmd/keyward")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build keyward: %v: %s", err, out)
	}
	kdir := filepath.Join(workDir, "kube")
	if err := os.Mkdir(kdir, 0o700); err != nil {
		return err
	}
	k, err := testenv.StartKube(ctx, kdir)
	if err != nil {
		return fmt.Errorf("cannot start etcd and kube-apiserver: %w", err)
	}
	cluster = k
	dyn, err = dynamic.NewForConfig(restConfig())
	if err != nil {
		return err
	}
	kubeconfig = filepath.Join(workDir, "admin.kubeconfig")
	if err := os.WriteFile(kubeconfig, k.Kubeconfig(k.API.URL, k.AdminToken), 0o600); err != nil {
		return err
	}
	for _, ns := range []string{ownNamespace, appNamespace} {
		if err := createObj(ctx, nsGVR, "", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
		// No controller manager here makes the default ServiceAccount.
		if err := createObj(ctx, saGVR, ns, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}); err != nil {
			return err
		}
	}
	if err := createFixtures(ctx); err != nil {
		return err
	}
	port, err := testenv.FreePort()
	if err != nil {
		return err
	}
	webhookAddr = "127.0.0.1:" + strconv.Itoa(port)
	if port, err = testenv.FreePort(); err != nil {
		return err
	}
	metricsAddr = "127.0.0.1:" + strconv.Itoa(port)
	if err := createObj(ctx, mwcGVR, "", webhookConfiguration("https://"+webhookAddr+"/mutate", admregv1.Fail)); err != nil {
		return err
	}
	webhookProc, err = testenv.Start("keyward-webhook", workDir, []string{keywardBin, "webhook",
		"--listen", webhookAddr,
		"--namespace", ownNamespace,
		"--tls-secret", tlsSecret,
		"--webhook-config", mwcName,
		"--cert-ip", "127.0.0.1",
		"--image", testImage,
		"--kubeconfig", kubeconfig,
		"--metrics-listen", metricsAddr,
	}, nil)
	if err != nil {
		return err
	}
	return waitInjecting(ctx)
}

func restConfig() *rest.Config {
	return &rest.Config{
		Host:            cluster.API.URL,
		BearerToken:     cluster.AdminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: cluster.CAData},
		QPS:             200,
		Burst:           400,
	}
}

// webhookConfiguration is what the chart installs, pointed at url.
func webhookConfiguration(url string, policy admregv1.FailurePolicyType) *admregv1.MutatingWebhookConfiguration {
	none := admregv1.SideEffectClassNone
	return &admregv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: mwcName},
		Webhooks: []admregv1.MutatingWebhook{{
			Name:                    "inject.keyward.io",
			ClientConfig:            admregv1.WebhookClientConfig{URL: &url},
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             &none,
			FailurePolicy:           &policy,
			ReinvocationPolicy:      ptr(admregv1.NeverReinvocationPolicy),
			TimeoutSeconds:          ptr(int32(10)),
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{ownNamespace},
			}}},
			Rules: []admregv1.RuleWithOperations{{
				Operations: []admregv1.OperationType{admregv1.Create},
				Rule:       admregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}, Scope: ptr(admregv1.NamespacedScope)},
			}},
		}},
	}
}

// e2eConfig is the ConfigMap's keyward.yaml: the k8s provider reads the
// Secret db of the app namespace (KUBECONFIG locally, in-cluster in a pod).
const e2eConfig = `version: 1
secrets:
  DB_PASSWORD: k8s://app/db#password
  DB: k8s://app/db
files:
  - path: /run/secrets/keyward/db-password
    secret: DB_PASSWORD
    mode: "0400"
  - path: /run/secrets/keyward/db.env
    format: dotenv
    secrets: [DB]
server:
  listen: "0.0.0.0:8099"
  allow_remote: true
`

func createFixtures(ctx context.Context) error {
	objs := []struct {
		gvr schema.GroupVersionResource
		ns  string
		obj any
	}{
		{schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, appNamespace, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "db"},
			StringData: map[string]string{"password": dbPassword, "user": "app"},
		}},
		{schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, appNamespace, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "kw"},
			Data:       map[string]string{ConfigKey: e2eConfig},
		}},
	}
	for _, o := range objs {
		if err := createObj(ctx, o.gvr, o.ns, o.obj); err != nil {
			return err
		}
	}
	return nil
}

func toU(obj any) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	return u, nil
}

var kinds = map[string][2]string{
	"namespaces":                    {"v1", "Namespace"},
	"serviceaccounts":               {"v1", "ServiceAccount"},
	"secrets":                       {"v1", "Secret"},
	"configmaps":                    {"v1", "ConfigMap"},
	"pods":                          {"v1", "Pod"},
	"deployments":                   {"apps/v1", "Deployment"},
	"jobs":                          {"batch/v1", "Job"},
	"mutatingwebhookconfigurations": {"admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"},
}

func createU(ctx context.Context, gvr schema.GroupVersionResource, ns string, obj any, opts metav1.CreateOptions) (*unstructured.Unstructured, error) {
	u, err := toU(obj)
	if err != nil {
		return nil, err
	}
	k := kinds[gvr.Resource]
	u.SetAPIVersion(k[0])
	u.SetKind(k[1])
	var r dynamic.ResourceInterface = dyn.Resource(gvr)
	if ns != "" {
		r = dyn.Resource(gvr).Namespace(ns)
	}
	return r.Create(ctx, u, opts)
}

func createObj(ctx context.Context, gvr schema.GroupVersionResource, ns string, obj any) error {
	_, err := createU(ctx, gvr, ns, obj, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create %s: %w", gvr.Resource, err)
	}
	return nil
}

// waitInjecting waits until the API server calls the webhook with the
// caBundle it set: a dry-run create of an annotated pod comes back injected.
func waitInjecting(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	ctx, cancelEarly := context.WithTimeout(ctx, 55*time.Second)
	defer cancelEarly()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		pod := appPod("probe", map[string]string{AnnotationInject: "true", AnnotationConfig: "kw"})
		u, err := createU(ctx, podsGVR, appNamespace, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && u.GetAnnotations()[AnnotationStatus] == "injected" {
			return nil
		}
		if ctx.Err() == nil {
			last = err
		}
		if err == nil {
			last = fmt.Errorf("pod not injected, annotations %v", u.GetAnnotations())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the API server never called the webhook successfully (last error: %v); webhook log: %s; kube-apiserver log: %s", last, webhookProc.LogTail(3000), cluster.API.LogTail(3000))
		case <-webhookProc.Exited():
			return fmt.Errorf("keyward webhook exited: %s", webhookProc.LogTail(3000))
		case <-tick.C:
		}
	}
}

// appPod is an application pod running as uid 1000, gid 2000.
func appPod(name string, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
		Spec:       appPodSpec(),
	}
}

func appPodSpec() corev1.PodSpec {
	return corev1.PodSpec{
		Containers: []corev1.Container{{
			Name:    "app",
			Image:   "busybox:1.37",
			Command: []string{"sh", "-c", "cat /run/secrets/keyward/db-password >/dev/null && sleep 3600"},
			SecurityContext: &corev1.SecurityContext{
				RunAsUser: ptr(int64(1000)), RunAsGroup: ptr(int64(2000)), RunAsNonRoot: ptr(true),
			},
		}},
	}
}

// getPod returns the stored pod.
func getPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	u, err := dyn.Resource(podsGVR).Namespace(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod %s/%s: %v", ns, name, err)
	}
	pod := &corev1.Pod{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

func containerNames(cs []corev1.Container) string {
	return strings.Join(names(cs), ",")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
