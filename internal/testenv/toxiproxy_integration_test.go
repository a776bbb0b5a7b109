//go:build integration

package testenv

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"
)

// TestToxiproxyFaults checks each fault the fault suite relies on against a
// plain HTTP server: it passes through when healed, latency delays,
// timeout holds the request, reset_peer resets, and down refuses.
func TestToxiproxyFaults(t *testing.T) {
	ctx := context.Background()
	tp, err := StartToxiproxy(ctx)
	if err != nil {
		t.Fatalf("toxiproxy (test/servers/toxiproxy.sh) is required under the integration tag: %v", err)
	}
	defer tp.Stop()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "pong")
	}))
	defer srv.Close()
	p, err := tp.Proxy("http", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	url := p.URL(srv.URL)
	get := func(timeout time.Duration) (time.Duration, error) {
		// A fresh connection each time: no keep-alive hides a fault.
		c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
		start := time.Now()
		resp, err := c.Get(url)
		if err != nil {
			return time.Since(start), err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && string(b) != "pong" {
			err = errors.New("unexpected body")
		}
		return time.Since(start), err
	}
	if _, err := get(5 * time.Second); err != nil {
		t.Fatalf("healed proxy: %v", err)
	}

	must(t, p.Latency(300*time.Millisecond, 0))
	if d, err := get(5 * time.Second); err != nil || d < 500*time.Millisecond {
		t.Fatalf("latency 300ms each way: took %v, err %v", d, err)
	}
	must(t, p.Heal())

	must(t, p.Timeout(0))
	if _, err := get(time.Second); err == nil {
		t.Fatal("timeout toxic: request answered")
	}
	must(t, p.Heal())

	must(t, p.ResetPeer())
	if _, err := get(5 * time.Second); !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Fatalf("reset_peer: err %v, want connection reset", err)
	}
	must(t, p.Heal())

	must(t, p.Down())
	if _, err := get(5 * time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("down: err %v, want connection refused", err)
	}
	must(t, p.Heal())
	if _, err := get(5 * time.Second); err != nil {
		t.Fatalf("after Heal: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
