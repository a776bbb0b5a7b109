package webhook

import (
	"bytes"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prometheus/client_golang/prometheus"
)

func TestHandlerMetrics(t *testing.T) {
	t.Parallel()
	_, certPEM, keyPEM, err := GenerateCertificate(nil, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Now(), 42*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg, func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil })
	cms := testConfigMaps()
	h := NewHandler(NewMutator(Options{Namespace: "keyward"}, cms), slog.New(slog.DiscardHandler), metrics)
	broken := NewHandler(NewMutator(Options{Namespace: "keyward"}, fakeConfigMaps{err: errors.New("apiserver unreachable")}), slog.New(slog.DiscardHandler), metrics)
	send := func(h *Handler, body []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/mutate", bytes.NewReader(body)))
	}
	for range 3 {
		send(h, review(t, podKind, admissionv1.Create, testPod(inject(nil))))
	}
	send(h, review(t, podKind, admissionv1.Create, testPod(nil)))
	send(h, review(t, metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, admissionv1.Create, map[string]any{}))
	send(h, review(t, podKind, admissionv1.Create, testPod(inject(map[string]string{AnnotationConfig: "nope"}))))
	send(h, []byte(`{"hello":`))
	send(broken, review(t, podKind, admissionv1.Create, testPod(inject(nil))))

	want := map[string]float64{ResultInjected: 3, ResultSkipped: 2, ResultDenied: 1, ResultBadRequest: 1, ResultError: 1}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, mf := range mfs {
		found[mf.GetName()] = true
		for _, m := range mf.GetMetric() {
			var result string
			for _, lp := range m.GetLabel() {
				if lp.GetName() != "result" {
					t.Errorf("%s has a label %s; only result is allowed", mf.GetName(), lp.GetName())
				}
				result = lp.GetValue()
			}
			switch mf.GetName() {
			case "keyward_webhook_admissions_total":
				if got := m.GetCounter().GetValue(); got != want[result] {
					t.Errorf("admissions{result=%q} = %v, want %v", result, got, want[result])
				}
			case "keyward_webhook_admission_duration_seconds":
				if got := float64(m.GetHistogram().GetSampleCount()); got != want[result] {
					t.Errorf("duration{result=%q} count = %v, want %v", result, got, want[result])
				}
			case "keyward_webhook_certificate_expiry_timestamp_seconds":
				if got, want := m.GetGauge().GetValue(), float64(cert.Leaf.NotAfter.Unix()); got != want {
					t.Errorf("certificate expiry %v, want %v", got, want)
				}
			}
		}
	}
	for _, name := range []string{"keyward_webhook_admissions_total", "keyward_webhook_admission_duration_seconds", "keyward_webhook_certificate_expiry_timestamp_seconds"} {
		if !found[name] {
			t.Errorf("%s is not registered", name)
		}
	}
}

// A nil *Metrics records nothing and does not panic.
func TestNilMetrics(t *testing.T) {
	t.Parallel()
	var m *Metrics
	m.observe(ResultInjected, time.Second)
}
