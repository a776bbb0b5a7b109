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
			dir := t.TempDir()
			kc := filepath.Join(dir, "kubeconfig")
			if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://`+tt.addr+`", insecure-skip-tls-verify: true}}]
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
			defer p.Close()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.deadline {
				// The deadline comes while the provider waits to retry.
				ctx, cancel = context.WithCancel(t.Context())
				defer cancel()
				p.(*Provider).sleep = func(c context.Context, _ time.Duration) error {
					cancel()
					<-c.Done()
					return c.Err()
				}
			}
			_, err = p.Fetch(ctx, providers.Ref{Scheme: KindName, Path: "ns/app"})
			if err == nil || !strings.Contains(err.Error(), tt.cause) || !strings.Contains(err.Error(), "ns/app") {
				t.Fatalf("Fetch = %v, want an error naming ns/app and %q", err, tt.cause)
			}
			if tt.deadline && (!errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "after 1 failed attempt")) {
				t.Errorf("Fetch = %v, want the cancellation with the failed attempt", err)
			}
			if n.Load() == 0 {
				t.Error("no retry reported to the observer")
			}
			if c := logs.Count("provider call failed; retrying"); c != 1 || !strings.Contains(logs.String(), tt.cause) {
				t.Errorf("%d retry warnings, want 1 naming %q:\n%s", c, tt.cause, logs)
			}
			if strings.Contains(logs.String()+err.Error(), "kw-test-token") {
				t.Error("leaked value of the token")
			}
		})
	}
}
