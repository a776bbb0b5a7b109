package kubernetes

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/providers"
)

// TestWatchFailureIsRecorded: a watch request whose connection the API
// server's side drops, and a watch stream broken mid-event, are failed
// attempts the provider records (logged, reported to the observer) — not
// retried unseen by client-go nor taken for a watch that ended normally.
func TestWatchFailureIsRecorded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		watch func(w http.ResponseWriter)
		cause string
	}{
		{"connection dropped before the answer", func(w http.ResponseWriter) {
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close()
			}
		}, "EOF"},
		{"stream broken mid-event", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`{"type":"ADDED","object":{"kind":"Sec`))
			rc := http.NewResponseController(w)
			_ = rc.Flush()
			c, _, err := rc.Hijack()
			if err == nil {
				c.Close()
			}
		}, "unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("watch") == "true" {
					tt.watch(w)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"kind":"SecretList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]}`))
			}))
			t.Cleanup(srv.Close)
			p, logs, n := retryCountingProvider(t, srv.URL)
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			// The first wait of the stream (a retry's backoff, or the one
			// after a watch that closed early) ends the test's watch.
			cancelOnFirstSleep(p, cancel)
			err := p.Watch(ctx, []providers.Ref{{Scheme: KindName, Path: "ns/app"}}, func(providers.Ref) {})
			if err != context.Canceled {
				t.Fatalf("Watch = %v, want it cancelled", err)
			}
			if n.Load() != 1 {
				t.Errorf("%d failed attempts reported to the observer, want 1", n.Load())
			}
			if c := logs.Count("provider call failed; retrying"); c != 1 || !strings.Contains(logs.String(), tt.cause) {
				t.Errorf("%d retry warnings, want 1 naming %q:\n%s", c, tt.cause, logs)
			}
			if strings.Contains(logs.String(), "kw-test-token") {
				t.Error("leaked value of the token")
			}
		})
	}
}
