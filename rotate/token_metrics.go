package rotate

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TokenMetrics are the token loop's Prometheus metrics, labelled by token
// name (the config's key) and fixed result words only. A nil *TokenMetrics
// records nothing; methods are safe for concurrent use.
type TokenMetrics struct {
	expiryTS  *prometheus.GaugeVec
	refreshes *prometheus.CounterVec
	latencyH  *prometheus.HistogramVec
}

// NewTokenMetrics creates the token metrics and registers them on reg. It
// panics if they are already registered there.
func NewTokenMetrics(reg prometheus.Registerer) *TokenMetrics {
	m := &TokenMetrics{
		expiryTS: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keyward_token_expiry_timestamp_seconds",
			Help: "Unix time at which the token currently served expires, by token name.",
		}, []string{"token"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_token_refreshes_total",
			Help: "Token exchanges by token name and result (ok, throttled, server_error, invalid_client, rejected, client_credentials_error, refresh_token_refused, write_back_failed, not_verified, error), and forced refreshes answered from the rate limit (rate_limited).",
		}, []string{"token", "result"}),
		latencyH: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keyward_token_exchange_duration_seconds",
			Help:    "Time to obtain a token (client credential lookup, token request, file write), by token name.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"token"}),
	}
	reg.MustRegister(m.expiryTS, m.refreshes, m.latencyH)
	return m
}

func (m *TokenMetrics) expiry(name string, at time.Time) {
	if m != nil {
		m.expiryTS.WithLabelValues(name).Set(float64(at.UnixNano()) / 1e9)
	}
}

func (m *TokenMetrics) refresh(name, result string) {
	if m != nil {
		m.refreshes.WithLabelValues(name, result).Inc()
	}
}

func (m *TokenMetrics) latency(name string, d time.Duration) {
	if m != nil {
		m.latencyH.WithLabelValues(name).Observe(d.Seconds())
	}
}
