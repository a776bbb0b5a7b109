package aws

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers"
)

// unreachable returns a provider of endpoint with static credentials (no
// credential chain, no metadata service), a log and a retry counter.
func unreachable(t *testing.T, endpoint string, attempts int) (*Provider, *testenv.LogBuffer, *atomic.Int32) {
	t.Helper()
	p, err := New(Options{Region: fakeRegion, Endpoint: endpoint, MaxAttempts: attempts, ConfigOptions: []func(*awsconfig.LoadOptions) error{
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("k", "s", "")),
		awsconfig.WithSharedConfigFiles(nil), awsconfig.WithSharedCredentialsFiles(nil),
	}})
	if err != nil {
		t.Fatal(err)
	}
	logs, n := &testenv.LogBuffer{}, &atomic.Int32{}
	p.retries = providers.NewRetries(providers.Instance{Name: "awssm", Logger: logs.Logger(), OnRetry: func(error) { n.Add(1) }})
	p.delays.normal.Base = 20 * time.Millisecond
	return p, logs, n
}

// TestUnreachableEndpoint: a refused port and a TLS client at a plain
// HTTP port fail with errors naming the cause, whether the attempts run
// out or the deadline does first; retries are logged from the first one
// and reported to the observer.
func TestUnreachableEndpoint(t *testing.T) {
	t.Parallel()
	refused := "http://" + testenv.RefusedAddr(t)
	plain := "https://" + testenv.PlainHTTPListener(t)
	tests := []struct {
		name     string
		endpoint string
		attempts int
		deadline bool
		cause    string
	}{
		{"refused, attempts run out", refused, 3, false, "connection refused"},
		{"refused, deadline first", refused, 1000, true, "connection refused"},
		{"TLS to plain HTTP", plain, 3, false, "server gave HTTP response to HTTPS client"},
		{"TLS to plain HTTP, deadline first", plain, 1000, true, "server gave HTTP response to HTTPS client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, logs, retries := unreachable(t, tt.endpoint, tt.attempts)
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			if tt.deadline {
				ctx, cancel = context.WithTimeout(t.Context(), time.Second)
			}
			defer cancel()
			_, err := p.Fetch(ctx, providers.Ref{Scheme: KindName, Path: "prod/db"})
			testenv.CheckUnreachableError(t, err, "prod/db", tt.cause, tt.deadline)
			testenv.CheckRetryReported(t, logs, retries, tt.cause)
		})
	}
}
