//go:build integration

package webhook

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// BenchmarkAdmission posts AdmissionReviews of an annotated pod to the
// running `keyward webhook` process over loopback TLS (a kept-alive
// connection, as the API server's client uses) and reports the latency
// percentiles and the process's resident memory. Each review makes the
// webhook GET the pod's ConfigMap from the real API server.
// Run with -benchtime=1000x for the 1,000-review figure.
func BenchmarkAdmission(b *testing.B) {
	u, err := dyn.Resource(secretsGVRForBench).Namespace(ownNamespace).Get(b.Context(), tlsSecret, metav1.GetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var s corev1.Secret
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &s); err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.Data["ca.crt"])
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer client.CloseIdleConnections()
	body := review(b, podKind, admissionv1.Create, appPod("bench", map[string]string{AnnotationInject: "true", AnnotationConfig: "kw", AnnotationAgent: "true"}))
	url := "https://" + webhookAddr + "/mutate"
	post := func() {
		resp, err := client.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(out, []byte(`"patch"`)) {
			b.Fatalf("status %d: %.300s", resp.StatusCode, out)
		}
	}
	post() // handshake outside the measurement
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		post()
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	rss, hwm := procMemory(b, webhookProc.Pid())
	b.ReportMetric(rss, "rss-MiB")
	b.ReportMetric(hwm, "peak-rss-MiB")
}

var secretsGVRForBench = resources["Secret"].gvr

// procMemory returns VmRSS and VmHWM of pid in MiB.
func procMemory(b *testing.B, pid int) (rss, hwm float64) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			hwm = kb / 1024
		}
	}
	return rss, hwm
}
