package rotate

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/providers"
)

// Metrics are the rotation engine's Prometheus metrics. Labels carry
// provider instance names, operation names, secret names (the config's
// keys), action kinds and fixed result words: never a value, a version or
// a fingerprint. All methods are safe for concurrent use; a nil *Metrics
// records nothing.
type Metrics struct {
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	lastSuccess  *prometheus.GaugeVec
	up           *prometheus.GaugeVec
	leaseExpiry  *prometheus.GaugeVec
	changes      *prometheus.CounterVec
	renders      *prometheus.CounterVec
	filesWritten prometheus.Counter
	actions      *prometheus.CounterVec
	errors       *prometheus.CounterVec
	readyFn      atomic.Pointer[func() bool]

	mu   sync.Mutex
	last map[string]time.Time // secret name -> last success, for the age gauge
}

// NewMetrics creates the metrics and registers them on reg (keyward uses
// the server's private registry). It panics if they are already
// registered there, like prometheus.MustRegister.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_provider_requests_total",
			Help: "Provider calls by provider instance, operation (fetch, probe, renew) and result (ok, not_found, permission_denied, canceled, error).",
		}, []string{"provider", "op", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keyward_provider_request_duration_seconds",
			Help:    "Latency of provider calls by provider instance, operation and result.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"provider", "op", "result"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keyward_secret_last_success_timestamp_seconds",
			Help: "Unix time of the last successful fetch, probe or renewal of each secret, by secret name.",
		}, []string{"secret"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keyward_secret_up",
			Help: "1 when the last look at the secret succeeded, 0 while it fails (the last good value is still served).",
		}, []string{"secret"}),
		leaseExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keyward_secret_lease_expiry_timestamp_seconds",
			Help: "Unix time at which the lease of a leased (dynamic) secret expires, by secret name.",
		}, []string{"secret"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_secret_changes_total",
			Help: "Rotations seen: times a secret's value changed after the first fetch, by secret name.",
		}, []string{"secret"}),
		renders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_renders_total",
			Help: "Renders of files by result (ok, error); the initial render included.",
		}, []string{"result"}),
		filesWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyward_files_written_total",
			Help: "Files whose content, mode or owner was (re)written by a render.",
		}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_change_actions_total",
			Help: "on_change actions run, by action (signal, restart, command) and result (ok, error).",
		}, []string{"action", "result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_errors_total",
			Help: "Errors by stage: fetch (a look at a secret failed, after the provider's retries), retry (a provider call attempt failed and is retried), render, action, watch.",
		}, []string{"stage"}),
		last: map[string]time.Time{},
	}
	ready := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "keyward_secrets_ready",
		Help: "1 when the first render is done and no lease has expired without replacement (the secrets part of /readyz).",
	}, func() float64 {
		if f := m.readyFn.Load(); f != nil && (*f)() {
			return 1
		}
		return 0
	})
	for _, stage := range []string{"fetch", "retry", "render", "action", "watch"} {
		m.errors.WithLabelValues(stage)
	}
	for _, r := range []string{"ok", "error"} {
		m.renders.WithLabelValues(r)
	}
	reg.MustRegister(m.requests, m.latency, m.lastSuccess, m.up, m.leaseExpiry, m.changes,
		m.renders, m.filesWritten, m.actions, m.errors, ready, ageCollector{m})
	return m
}

// ageCollector reports keyward_secret_age_seconds, computed at scrape time.
type ageCollector struct{ m *Metrics }

var ageDesc = prometheus.NewDesc("keyward_secret_age_seconds",
	"Seconds since the last successful fetch, probe or renewal of each secret, by secret name.",
	[]string{"secret"}, nil)

func (c ageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- ageDesc }

func (c ageCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	now := time.Now()
	for name, t := range c.m.last {
		ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, now.Sub(t).Seconds(), name)
	}
}

// result classifies an error for the result label.
func result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, providers.ErrNotFound):
		return "not_found"
	case errors.Is(err, providers.ErrPermissionDenied):
		return "permission_denied"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "error"
}

func (m *Metrics) request(provider, op string, err error, d time.Duration) {
	if m == nil {
		return
	}
	r := result(err)
	m.requests.WithLabelValues(provider, op, r).Inc()
	m.latency.WithLabelValues(provider, op, r).Observe(d.Seconds())
}

func (m *Metrics) success(names []string, at time.Time) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range names {
		m.last[n] = at
		m.lastSuccess.WithLabelValues(n).Set(float64(at.UnixNano()) / 1e9)
		m.up.WithLabelValues(n).Set(1)
	}
}

func (m *Metrics) failure(names []string) {
	if m == nil {
		return
	}
	m.errors.WithLabelValues("fetch").Inc()
	for _, n := range names {
		m.up.WithLabelValues(n).Set(0)
	}
}

func (m *Metrics) lease(names []string, l *providers.Lease) {
	if m == nil {
		return
	}
	for _, n := range names {
		if l == nil {
			m.leaseExpiry.DeleteLabelValues(n)
			continue
		}
		m.leaseExpiry.WithLabelValues(n).Set(float64(l.Expires().UnixNano()) / 1e9)
	}
}

func (m *Metrics) changed(name string) {
	if m != nil {
		m.changes.WithLabelValues(name).Inc()
	}
}

func (m *Metrics) render(err error, written int) {
	if m == nil {
		return
	}
	if err != nil {
		m.renders.WithLabelValues("error").Inc()
		m.errors.WithLabelValues("render").Inc()
		return
	}
	m.renders.WithLabelValues("ok").Inc()
	m.filesWritten.Add(float64(written))
}

func (m *Metrics) action(kind string, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.actions.WithLabelValues(kind, "error").Inc()
		m.errors.WithLabelValues("action").Inc()
		return
	}
	m.actions.WithLabelValues(kind, "ok").Inc()
}

// providerRetry counts a failed provider call attempt that the provider
// retries (see providers.Set.ObserveRetries): an outage shows from its
// first failure, not only once a look at a secret gives up.
func (m *Metrics) providerRetry(string, error) {
	if m != nil {
		m.errors.WithLabelValues("retry").Inc()
	}
}

func (m *Metrics) watchError() {
	if m != nil {
		m.errors.WithLabelValues("watch").Inc()
	}
}

// setReadyFunc sets what keyward_secrets_ready reports.
func (m *Metrics) setReadyFunc(f func() bool) {
	if m != nil {
		m.readyFn.Store(&f)
	}
}
