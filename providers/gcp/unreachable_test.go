package gcp

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"google.golang.org/api/option"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers"
)

// unreachable builds a provider of endpoint through the registered kind,
// as keyward does, with a logger and a retry observer, and returns it
// with the log and the number of retries observed.
func unreachable(t *testing.T, o Options) (*Provider, *testenv.LogBuffer, *atomic.Int32) {
	t.Helper()
	logs := &testenv.LogBuffer{}
	retries := &atomic.Int32{}
	p, err := newInstance(providers.Instance{
		Name: "gcpsm", Kind: KindName,
		Decode:  func(into any) error { *(into.(*Options)) = o; return nil },
		Logger:  logs.Logger(),
		OnRetry: func(error) { retries.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p.(*Provider), logs, retries
}

// TestRefusedEndpoint: an endpoint that refuses connections is retried
// until the deadline, visibly from the first failure (a warning, the
// retry observer), and the final error names the cause, not only the
// deadline. Before, it said "context deadline exceeded" and nothing else.
func TestRefusedEndpoint(t *testing.T) {
	t.Parallel()
	p, logs, retries := unreachable(t, Options{Endpoint: testenv.RefusedAddr(t), Insecure: true})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, err := p.Fetch(ctx, providers.Ref{Scheme: KindName, Path: "p-project/s"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch = %v, want an error wrapping context.DeadlineExceeded", err)
	}
	for _, want := range []string{"projects/p-project/secrets/s/versions/latest", "failed attempts", "gRPC Unavailable", "connection refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	t.Logf("error: %v", err)
	if retries.Load() == 0 {
		t.Error("no retry was reported to the observer")
	}
	if n := logs.Count("provider call failed; retrying"); n != 1 {
		t.Errorf("%d retry warnings within a minute, want 1 (rate-limited, from the first failure):\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "connection refused") || !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("the warning does not name the cause:\n%s", logs)
	}
}

// TestTLSToPlainListener: a TLS client at a plain HTTP listener fails
// with an error that says the handshake failed.
func TestTLSToPlainListener(t *testing.T) {
	t.Parallel()
	addr := testenv.PlainHTTPListener(t)
	p, _, retries := unreachable(t, Options{Endpoint: addr})
	p.dial = func(ctx context.Context) (secretClient, error) {
		// TLS, as for Google, but no credentials: nothing looks for
		// Application Default Credentials (or a metadata server).
		return secretmanager.NewClient(ctx, option.WithEndpoint(addr), option.WithoutAuthentication())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, err := p.ProbeVersion(ctx, providers.Ref{Scheme: KindName, Path: "p-project/s"})
	if err == nil || !strings.Contains(err.Error(), "tls") && !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("ProbeVersion = %v, want an error naming TLS", err)
	}
	t.Logf("error: %v", err)
	if retries.Load() == 0 {
		t.Error("no retry was reported to the observer")
	}
}
