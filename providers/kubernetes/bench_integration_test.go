//go:build integration

package kubernetes

import (
	"flag"
	"fmt"
	"slices"
	"testing"
	"time"
)

var quietFor = flag.Duration("kw.quiet", time.Minute, "BenchmarkQuietWatch: how long to count requests")

// BenchmarkPropagation measures the latency from a Secret update (the
// moment the writer sends it to the API server) to the provider's changed
// callback, one update at a time, and reports its median and 99th
// percentile. Run with -benchtime=100x for 100 updates:
//
//	go test -tags integration -run '^$' -bench Propagation -benchtime 100x ./providers/kubernetes/
func BenchmarkPropagation(b *testing.B) {
	putSecret(b, "bench", "propagation", map[string][]byte{"v": []byte("initial")})
	p := integrationProvider(b, cluster.API.URL, cluster.Tokens["reader"], Options{})
	if _, err := p.Fetch(b.Context(), ref(b, "k8s://bench/propagation")); err != nil {
		b.Fatal(err)
	}
	w := startWatch(b, p, "k8s://bench/propagation")
	// One update to know the watch is running before timing.
	putSecret(b, "bench", "propagation", map[string][]byte{"v": []byte("warm-up")})
	w.waitFor(b, "bench/propagation", 1, 30*time.Second)

	var lat []time.Duration
	n := 1
	for b.Loop() {
		n++
		start := time.Now()
		putSecret(b, "bench", "propagation", map[string][]byte{"v": fmt.Appendf(nil, "value-%d", n)})
		at := w.waitFor(b, "bench/propagation", n, 30*time.Second)
		lat = append(lat, at.Sub(start))
	}
	slices.Sort(lat)
	pct := func(q float64) float64 {
		i := int(q*float64(len(lat))+0.5) - 1
		return float64(lat[min(max(i, 0), len(lat)-1)].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(len(lat)), "updates")
}

// BenchmarkQuietWatch watches 100 Secrets through a counting reverse
// proxy and, once the 100 watches are open, counts the API requests made
// while nothing changes for -kw.quiet (default one minute). The target is
// 0: no polling, only the open watches.
//
//	go test -tags integration -run '^$' -bench QuietWatch -benchtime 1x ./providers/kubernetes/
func BenchmarkQuietWatch(b *testing.B) {
	const secrets = 100
	cp := quietWatch(b, secrets)
	setup := cp.total()
	for b.Loop() {
		before := cp.total()
		time.Sleep(*quietFor) // observing the absence of requests over a window
		b.ReportMetric(float64(cp.total()-before), "requests/quiet-window")
	}
	b.ReportMetric(float64(setup), "setup-requests")
	b.ReportMetric(float64(cp.openWatches.Load()), "open-watches")
	b.ReportMetric(quietFor.Seconds(), "window-s")
}
