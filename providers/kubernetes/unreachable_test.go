package kubernetes

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers"
)

// TestUnreachableAPIServer: a refused port and a TLS client at a plain
// HTTP port fail with errors naming the cause, whether the attempts run
// out or the deadline comes first; retries are logged from the first one
// and reported to the observer.
func TestUnreachableAPIServer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		addr     string
		deadline bool
		cause    string
	}{
		{"refused, attempts run out", testenv.RefusedAddr(t), false, "connection refused"},
		{"refused, cancelled while waiting to retry", testenv.RefusedAddr(t), true, "connection refused"},
		{"TLS to plain HTTP", testenv.PlainHTTPListener(t), false, "server gave HTTP response to HTTPS client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, logs, n := retryCountingProvider(t, "https://"+tt.addr)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.deadline {
				// The deadline comes while the provider waits to retry.
				ctx, cancel = context.WithCancel(t.Context())
				defer cancel()
				cancelOnFirstSleep(p, cancel)
			}
			_, err := p.Fetch(ctx, providers.Ref{Scheme: KindName, Path: "ns/app"})
			testenv.CheckUnreachableError(t, err, "ns/app", tt.cause, false)
			if tt.deadline && (!errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "after 1 failed attempt")) {
				t.Errorf("Fetch = %v, want the cancellation with the failed attempt", err)
			}
			testenv.CheckRetryReported(t, logs, n, tt.cause)
			if strings.Contains(logs.String()+err.Error(), "kw-test-token") {
				t.Error("leaked value of the token")
			}
		})
	}
}

// retryCountingProvider returns a provider for the API server at server
// (its TLS certificate not checked, the token kw-test-token), the buffer
// its log goes to, and the count of failed attempts reported to its
// observer. The provider is closed when the test ends.
func retryCountingProvider(t *testing.T, server string) (*Provider, *testenv.LogBuffer, *atomic.Int32) {
	t.Helper()
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "`+server+`", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: kw-test-token}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	logs, n := &testenv.LogBuffer{}, &atomic.Int32{}
	p, err := newInstance(providers.Instance{
		Name: "k8s", Kind: KindName, BaseDir: dir,
		Getenv:  func(string) string { return "" },
		Decode:  func(into any) error { into.(*Options).Kubeconfig = kc; return nil },
		Logger:  logs.Logger(),
		OnRetry: func(error) { n.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p.(*Provider), logs, n
}

// cancelOnFirstSleep makes p's waits (a retry's backoff, or the pause
// before a watch restarts) call cancel and return once their context ends,
// so the first one ends the call under test.
func cancelOnFirstSleep(p *Provider, cancel context.CancelFunc) {
	p.sleep = func(c context.Context, _ time.Duration) error {
		cancel()
		<-c.Done()
		return c.Err()
	}
}
