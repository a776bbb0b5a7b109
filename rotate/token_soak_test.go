//go:build integration

package rotate

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/server"
)

// BenchmarkTokenSoak is the token soak (test/bench/tokens.sh): a workload
// reads a 15 s token from the endpoint every 100 ms for
// $KEYWARD_SOAK_DURATION (default 10m) and has the real server introspect
// every read; then the endpoint is loaded on loopback for
// $KEYWARD_SOAK_LOAD (default 10s) by $KEYWARD_SOAK_CLIENTS (default 16)
// keep-alive clients in this process. It fails on
// any expired or inactive token and reports exchanges per token lifetime,
// requests per second and the p99 latency. Run it with -benchtime=1x.
func BenchmarkTokenSoak(b *testing.B) {
	soak := envDuration(b, "KEYWARD_SOAK_DURATION", 10*time.Minute)
	load := envDuration(b, "KEYWARD_SOAK_LOAD", 10*time.Second)
	const lifetime = 15 * time.Second
	o := realOAuth(b)
	spec, _ := realSetup(b, o, "soak", "soak-secret", "urn:kw:opaque:15")
	tk, m, _ := realTokens(b, spec)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := tk.Init(ctx); err != nil {
		b.Fatal(err)
	}
	srv := server.New(server.Options{Listen: "127.0.0.1:0", NoProcessMetrics: true})
	if err := srv.Listen(); err != nil {
		b.Fatal(err)
	}
	const guard = "soak-guard"
	tk.Register(srv, guard)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = tk.Run(ctx) })
	wg.Go(func() { _ = srv.Serve(ctx) })
	url := "http://" + srv.Addr() + "/v1/tokens/soak"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DialContext: (&net.Dialer{}).DialContext}}
	get := func() (tokenJSON, error) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set(TokenGuardHeader, guard)
		resp, err := client.Do(req)
		if err != nil {
			return tokenJSON{}, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return tokenJSON{}, err
		}
		if resp.StatusCode != 200 {
			return tokenJSON{}, fmt.Errorf("status %d", resp.StatusCode)
		}
		var tj tokenJSON
		return tj, json.Unmarshal(body, &tj)
	}

	b.ResetTimer()
	start := time.Now()
	exchanges0 := refreshCount(m, "soak", "ok")
	var reads, expired, inactive, failed int
	tick := time.NewTicker(100 * time.Millisecond)
	for time.Since(start) < soak {
		<-tick.C
		tj, err := get()
		reads++
		if err != nil {
			failed++
			continue
		}
		if !time.Now().Before(tj.ExpiresAt) {
			expired++
		}
		active, err := o.Active(ctx, oauthClients["soak"], tj.AccessToken)
		if err != nil || !active {
			inactive++
		}
	}
	tick.Stop()
	elapsed := time.Since(start)
	perLifetime := (refreshCount(m, "soak", "ok") - exchanges0) / (elapsed.Seconds() / lifetime.Seconds())

	// Endpoint throughput and latency.
	clients := 16
	if v := os.Getenv("KEYWARD_SOAK_CLIENTS"); v != "" {
		if _, err := fmt.Sscan(v, &clients); err != nil || clients < 1 {
			b.Fatalf("KEYWARD_SOAK_CLIENTS=%q", v)
		}
	}
	lat := make([][]time.Duration, clients)
	loadStart := time.Now()
	var lwg sync.WaitGroup
	var loadErr error
	var errMu sync.Mutex
	for i := range clients {
		lwg.Go(func() {
			for time.Since(loadStart) < load {
				t0 := time.Now()
				if _, err := get(); err != nil {
					errMu.Lock()
					loadErr = err
					errMu.Unlock()
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		})
	}
	lwg.Wait()
	loadElapsed := time.Since(loadStart)
	b.StopTimer()
	if loadErr != nil {
		b.Fatalf("load: %v", loadErr)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	p99 := all[len(all)*99/100]
	p50 := all[len(all)/2]
	rps := float64(len(all)) / loadElapsed.Seconds()

	b.ReportMetric(float64(reads), "reads")
	b.ReportMetric(float64(expired), "expired")
	b.ReportMetric(float64(inactive), "inactive")
	b.ReportMetric(float64(failed), "failed")
	b.ReportMetric(perLifetime, "exchanges/lifetime")
	b.ReportMetric(rps, "req/s")
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	if expired > 0 || inactive > 0 || failed > 0 {
		b.Fatalf("%d reads: %d expired, %d inactive at the server, %d failed", reads, expired, inactive, failed)
	}
}

func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	return d
}
