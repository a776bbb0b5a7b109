package vault

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers"
)

// TestUnreachableVault: a refused port and a TLS client at a plain HTTP
// port fail with errors naming the cause, whether the client's retries
// run out or the deadline comes first; retries are logged from the first
// one and reported to the observer.
func TestUnreachableVault(t *testing.T) {
	t.Parallel()
	refused := "http://" + testenv.RefusedAddr(t)
	plain := "https://" + testenv.PlainHTTPListener(t)
	tests := []struct {
		name     string
		addr     string
		retries  int
		deadline bool
		cause    string
		retried  bool
	}{
		{"refused, retries run out", refused, 2, false, "connection refused", true},
		{"refused, deadline first", refused, 1000, true, "connection refused", true},
		{"TLS to plain HTTP", plain, 2, false, "server gave HTTP response to HTTPS client", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logs, n := &testenv.LogBuffer{}, &atomic.Int32{}
			p, err := New(providers.Instance{
				Name: "vault", Kind: KindName,
				Getenv:  func(k string) string { return map[string]string{envAddr: tt.addr, envToken: "hvs.test-token"}[k] },
				Decode:  func(into any) error { into.(*Options).MaxRetries = &tt.retries; return nil },
				Logger:  logs.Logger(),
				OnRetry: func(error) { n.Add(1) },
			})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			if tt.deadline {
				ctx, cancel = context.WithTimeout(t.Context(), 2*time.Second)
			}
			defer cancel()
			_, err = p.Fetch(ctx, mustParse(t, "vault://secret/app#password"))
			testenv.CheckUnreachableError(t, err, "secret/app", tt.cause, tt.deadline)
			if !tt.retried {
				return
			}
			testenv.CheckRetryReported(t, logs, n, tt.cause)
			if strings.Contains(logs.String(), "hvs.test-token") {
				t.Error("leaked value of the token in the log")
			}
		})
	}
}
