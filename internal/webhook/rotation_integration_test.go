//go:build integration

package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	admregv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/keyward/keyward/internal/testenv"
)

// rotationConfig is a MutatingWebhookConfiguration with one webhook per
// url (one per replica), called only for pods labelled keyward-test=label:
// the API server calls every replica for each such pod, so a pod create
// succeeds only while the caBundle trusts what each replica serves.
func rotationConfig(name, label string, urls []string, caBundle []byte) *admregv1.MutatingWebhookConfiguration {
	c := webhookConfiguration("", admregv1.Fail)
	c.Name = name
	tmpl := c.Webhooks[0]
	c.Webhooks = nil
	for i, u := range urls {
		w := *tmpl.DeepCopy()
		w.Name = fmt.Sprintf("r%d.%s.keyward.io", i, label)
		w.ClientConfig = admregv1.WebhookClientConfig{URL: ptr(u), CABundle: caBundle}
		w.ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"keyward-test": label}}
		c.Webhooks = append(c.Webhooks, w)
	}
	return c
}

// servedCert is the certificate the webhook at addr presents now.
func servedCert(ctx context.Context, addr string) (*x509.Certificate, error) {
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} // the test checks it against the caBundle itself
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

func caBundleOf(t *testing.T, name string) []byte {
	t.Helper()
	u, err := dyn.Resource(mwcGVR).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var c admregv1.MutatingWebhookConfiguration
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &c); err != nil {
		t.Fatal(err)
	}
	return c.Webhooks[0].ClientConfig.CABundle
}

// rotationStats is what keepCalling saw.
type rotationStats struct {
	creates, failures int
	untrusted         int               // handshakes the caBundle did not trust
	serials           []map[string]bool // per replica
}

// keepCalling creates (dry run) a pod labelled for the webhooks at addrs
// every 100 ms for d, and in between checks each replica's certificate
// against the caBundle as the API server does on a new connection (it
// keeps its connections, and opens new ones whenever the caBundle
// changes: twice per renewal). Every failure is reported.
func keepCalling(t *testing.T, label, mwc string, addrs []string, d time.Duration) rotationStats {
	t.Helper()
	ctx := t.Context()
	st := rotationStats{serials: make([]map[string]bool, len(addrs))}
	for i := range addrs {
		st.serials[i] = map[string]bool{}
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		pod := appPod("", nil)
		pod.GenerateName = label + "-"
		pod.Labels = map[string]string{"keyward-test": label}
		st.creates++
		if _, err := createU(ctx, podsGVR, appNamespace, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			st.failures++
			if st.failures <= 5 {
				t.Errorf("pod create %d (%v before the end): %v", st.creates, time.Until(deadline).Round(time.Millisecond), err)
			}
		}
		for i, a := range addrs {
			// What the API server checks on each new connection: the
			// served certificate against the caBundle, for the URL's
			// host, now. Read just before the dial: a replica serves a
			// new certificate only once the caBundle has trusted its CA
			// for a while, so the order cannot make a false failure.
			bundle := caBundleOf(t, mwc)
			cert, err := servedCert(ctx, a)
			if err != nil {
				t.Errorf("replica %d: %v", i, err)
				continue
			}
			st.serials[i][cert.SerialNumber.String()] = true
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(bundle)
			if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"}); err != nil {
				st.untrusted++
				if st.untrusted <= 5 {
					t.Errorf("replica %d's certificate (serial %s) is not trusted by the caBundle: %v", i, cert.SerialNumber.Text(16), err)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return st
}

// waitCalled waits until a labelled pod create succeeds.
func waitCalled(t *testing.T, label string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		pod := appPod("", nil)
		pod.GenerateName = label + "-"
		pod.Labels = map[string]string{"keyward-test": label}
		if _, err = createU(t.Context(), podsGVR, appNamespace, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the API server never called the webhooks successfully: %v", err)
}

// TestE2ECertificateRotation runs two replicas sharing one Secret with
// certificates that live 8 seconds (renewed 4 s ahead) and has the real
// API server call both, ten times a second, across several renewals: not
// one call may fail.
func TestE2ECertificateRotation(t *testing.T) {
	t.Parallel()
	const label, mwc, secret = "rotation", "keyward-rotation", "keyward-rotation-tls"
	args := []string{"--tls-secret", secret, "--webhook-config", mwc, "--cert-ip", "127.0.0.1",
		"--cert-lifetime", "8s", "--cert-renew-before", "4s"}
	var addrs []string
	for range 2 {
		port, err := testenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(port))
	}
	if err := createObj(t.Context(), mwcGVR, "", rotationConfig(mwc, label, []string{"https://" + addrs[0] + "/mutate", "https://" + addrs[1] + "/mutate"}, nil)); err != nil {
		t.Fatal(err)
	}
	for i, a := range addrs {
		startReplicaAt(t, fmt.Sprintf("webhook-rotation-%d", i), a, args...)
	}
	waitCalled(t, label)
	const span = 24 * time.Second
	st := keepCalling(t, label, mwc, addrs, span)
	t.Logf("%d pod creates through 2 replicas in %v, %d failed; %d handshakes untrusted; certificates served: %d and %d",
		st.creates, span, st.failures, st.untrusted, len(st.serials[0]), len(st.serials[1]))
	for i, s := range st.serials {
		// A renewal every 4 s: 6 in 24 s; ask for 4 to leave room for a slow machine.
		if len(s) < 4 {
			t.Errorf("replica %d served %d certificates in %v, want at least 4", i, len(s), span)
		}
	}
	if n := len(parseBundle(caBundleOf(t, mwc))); n < 1 || n > 2 {
		t.Errorf("the caBundle holds %d CAs, want 1 or 2", n)
	}
}

// startReplicaAt is startReplica on a chosen address.
func startReplicaAt(t *testing.T, name, addr string, args ...string) {
	t.Helper()
	p, err := testenv.Start(name, workDir, append([]string{keywardBin, "webhook",
		"--listen", addr, "--namespace", ownNamespace, "--image", testImage, "--kubeconfig", kubeconfig},
		args...), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, p.LogTail(6000))
		}
	})
}

// TestE2ECertManagerModeUnaffected: with --tls-cert-file (cert-manager
// mode) the webhook leaves the caBundle alone, and a renewal as
// cert-manager and its CA injector make it (the new CA joins the
// caBundle, then the new files replace the old) is served without a
// restart while every call succeeds.
func TestE2ECertManagerModeUnaffected(t *testing.T) {
	t.Parallel()
	const label, mwc = "certmanager", "keyward-certmanager"
	dir := filepath.Join(workDir, "certmanager")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := issueInto(t, dir)
	first.install(t, certFile, keyFile)
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if err := createObj(t.Context(), mwcGVR, "", rotationConfig(mwc, label, []string{"https://" + addr + "/mutate"}, first.caPEM)); err != nil {
		t.Fatal(err)
	}
	startReplicaAt(t, "webhook-certmanager", addr, "--tls-cert-file", certFile, "--tls-key-file", keyFile)
	waitCalled(t, label)
	before, err := servedCert(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}

	second := issueInto(t, dir)
	both := append(append([]byte{}, first.caPEM...), second.caPEM...)
	setCABundle(t, mwc, both)
	// What cert-manager's ordering gives: the API server has loaded the
	// new caBundle before the new pair is served.
	time.Sleep(time.Second)
	second.install(t, certFile, keyFile)
	st := keepCalling(t, label, mwc, []string{addr}, 5*time.Second)
	after, err := servedCert(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	if after.Equal(before) {
		t.Error("the renewed files were not served")
	}
	if st.failures > 0 {
		t.Errorf("%d of %d calls failed in cert-manager mode", st.failures, st.creates)
	}
	if got := caBundleOf(t, mwc); string(got) != string(both) {
		t.Error("the webhook changed the caBundle in cert-manager mode")
	}
}

// stagedPair is a pair written beside the served files, moved into
// place by install.
type stagedPair struct {
	caPEM           []byte
	certTmp, keyTmp string
}

func issueInto(t *testing.T, dir string) stagedPair {
	t.Helper()
	ca, cert, key, err := GenerateCertificate(nil, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sp := stagedPair{caPEM: ca, certTmp: filepath.Join(dir, "next.crt"), keyTmp: filepath.Join(dir, "next.key")}
	for p, b := range map[string][]byte{sp.certTmp: cert, sp.keyTmp: key} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return sp
}

func (sp stagedPair) install(t *testing.T, certFile, keyFile string) {
	t.Helper()
	for src, dst := range map[string]string{sp.keyTmp: keyFile, sp.certTmp: certFile} {
		if err := os.Rename(src, dst); err != nil {
			t.Fatal(err)
		}
	}
}

func setCABundle(t *testing.T, name string, bundle []byte) {
	t.Helper()
	u, err := dyn.Resource(mwcGVR).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var c admregv1.MutatingWebhookConfiguration
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &c); err != nil {
		t.Fatal(err)
	}
	for i := range c.Webhooks {
		c.Webhooks[i].ClientConfig.CABundle = bundle
	}
	nu, err := toU(&c)
	if err != nil {
		t.Fatal(err)
	}
	nu.SetAPIVersion("admissionregistration.k8s.io/v1")
	nu.SetKind("MutatingWebhookConfiguration")
	if _, err := dyn.Resource(mwcGVR).Update(t.Context(), nu, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}
