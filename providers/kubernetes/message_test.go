package kubernetes

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers"
)

// longMessage is an API server message far longer than an error line
// should repeat, with a line break, ending in a marker.
var longMessage = "etcd is unhappy\n" + strings.Repeat("x", 5000) + " END-OF-SERVER-MESSAGE"

// checkClipped fails when s repeats the whole of longMessage or breaks a
// line with it.
func checkClipped(t *testing.T, what, s string) {
	t.Helper()
	if strings.Contains(s, "END-OF-SERVER-MESSAGE") || strings.Contains(s, "unhappy\nx") {
		t.Errorf("%s repeats the API server's message unclipped (%d bytes)", what, len(s))
	}
}

// TestServerMessageClipped: the API server's message reaches the retry
// log and the final error clipped, as every provider clips a store's
// message (providers.ClipMessage).
func TestServerMessageClipped(t *testing.T) {
	t.Parallel()
	c := newFakeCluster()
	c.failGet = func(string, string) error { return apierrors.NewInternalError(errors.New(longMessage)) }
	p := c.provider(t, Options{})
	logs := &testenv.LogBuffer{}
	p.retries = providers.NewRetries(providers.Instance{Name: KindName, Logger: logs.Logger()})
	p.sleep = func(context.Context, time.Duration) error { return nil }
	_, err := p.Fetch(t.Context(), ref(t, "k8s://payments/db"))
	if err == nil || !strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("Fetch = %v, want the 500", err)
	}
	checkClipped(t, "the error", err.Error())
	if logs.Count("provider call failed; retrying") == 0 {
		t.Fatal("no retry logged")
	}
	checkClipped(t, "the retry log", logs.String())

	// Cancelled during the retries: the error quotes the last attempt.
	ctx, cancel := context.WithCancel(t.Context())
	p.sleep = func(context.Context, time.Duration) error { cancel(); return ctx.Err() }
	_, err = p.Fetch(ctx, ref(t, "k8s://payments/db"))
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "after 1 failed attempt") {
		t.Fatalf("Fetch = %v, want the cancellation with the failed attempt", err)
	}
	checkClipped(t, "the error after a cancellation", err.Error())
}

// TestWatchRetryCountsAttempts: a watch whose list keeps failing logs its
// failures with the number of the attempt (1, then more), and the API
// server's message clipped.
func TestWatchRetryCountsAttempts(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := newFakeCluster()
		c.failList = func(string, metav1.ListOptions) error {
			return apierrors.NewServiceUnavailable(longMessage)
		}
		p := c.provider(t, Options{})
		logs := &testenv.LogBuffer{}
		p.retries = providers.NewRetries(providers.Instance{Name: KindName, Logger: logs.Logger()})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.Watch(ctx, []providers.Ref{ref(t, "k8s://payments/db")}, func(providers.Ref) {}) }()
		time.Sleep(5 * providers.RetryLogEvery)
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("Watch = %v", err)
		}
		var attempts []int
		for _, m := range regexp.MustCompile(`attempt=(\d+)`).FindAllStringSubmatch(logs.String(), -1) {
			n, _ := strconv.Atoi(m[1])
			attempts = append(attempts, n)
		}
		if len(attempts) < 3 {
			t.Fatalf("%d retry warnings in five minutes of failures, want one a minute", len(attempts))
		}
		for i := 1; i < len(attempts); i++ {
			if attempts[i] <= attempts[i-1] {
				t.Fatalf("attempt numbers %v: want them counting the failures in a row", attempts)
			}
		}
		checkClipped(t, "the retry log", logs.String())
	})
}
