package webhook

import (
	"crypto/tls"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Admission results, the result label of the webhook's metrics.
const (
	// ResultInjected: the pod was patched.
	ResultInjected = "injected"
	// ResultSkipped: allowed unchanged (not annotated, not a pod
	// creation, the webhook's own namespace, injected already).
	ResultSkipped = "skipped"
	// ResultDenied: refused with a message saying what to change.
	ResultDenied = "denied"
	// ResultError: refused because of an internal error (a ConfigMap
	// that could not be read).
	ResultError = "error"
	// ResultBadRequest: the body was not an AdmissionReview.
	ResultBadRequest = "bad_request"
)

// Metrics are the webhook's Prometheus metrics. Labels carry fixed result
// words only: never a namespace, a pod name or anything from a config. A
// nil *Metrics records nothing. Safe for concurrent use.
type Metrics struct {
	admissions *prometheus.CounterVec
	latency    *prometheus.HistogramVec
}

// NewMetrics creates the metrics and registers them on reg (the private
// registry of internal/server): admissions and their latency by result,
// and, when cert is not nil, the expiry time of the certificate cert
// returns (the one being served). It panics if they are already
// registered there, like prometheus.MustRegister.
func NewMetrics(reg prometheus.Registerer, cert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *Metrics {
	m := &Metrics{
		admissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_webhook_admissions_total",
			Help: "AdmissionReviews answered, by result (injected, skipped, denied, error, bad_request).",
		}, []string{"result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keyward_webhook_admission_duration_seconds",
			Help:    "Time to answer an AdmissionReview, by result.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"result"}),
	}
	for _, r := range []string{ResultInjected, ResultSkipped, ResultDenied, ResultError, ResultBadRequest} {
		m.admissions.WithLabelValues(r)
	}
	reg.MustRegister(m.admissions, m.latency)
	if cert != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keyward_webhook_certificate_expiry_timestamp_seconds",
			Help: "Unix time at which the serving certificate expires (the one served now; renewals move it).",
		}, func() float64 {
			c, err := cert(nil)
			if err != nil || c == nil || c.Leaf == nil {
				return 0
			}
			return float64(c.Leaf.NotAfter.Unix())
		}))
	}
	return m
}

// observe records one admission.
func (m *Metrics) observe(result string, d time.Duration) {
	if m == nil {
		return
	}
	m.admissions.WithLabelValues(result).Inc()
	m.latency.WithLabelValues(result).Observe(d.Seconds())
}
