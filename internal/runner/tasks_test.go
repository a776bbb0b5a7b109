package runner

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestTasksShutdownBounded: shutdown cancels the tasks and waits for them,
// but not past its timeout for one that ignores cancellation.
func TestTasksShutdownBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		tk := &tasks{cancel: cancel, timeout: time.Second}
		stuck := make(chan struct{})
		tk.Go(func() { <-ctx.Done() })
		tk.Go(func() { <-stuck }) // a store that ignores cancellation
		start := time.Now()
		err := tk.shutdown()
		if err == nil || !strings.Contains(err.Error(), "--shutdown-timeout 1s") {
			t.Fatalf("shutdown with a stuck task = %v, want an error naming the bound", err)
		}
		if d := time.Since(start); d != time.Second {
			t.Fatalf("shutdown returned after %v, want the 1s bound", d)
		}
		if again := tk.shutdown(); again != err {
			t.Fatalf("second shutdown = %v, want the first's result", again)
		}
		close(stuck)
	})
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		tk := &tasks{cancel: cancel, timeout: time.Hour}
		tk.Go(func() { <-ctx.Done() })
		start := time.Now()
		if err := tk.shutdown(); err != nil || time.Since(start) != 0 {
			t.Fatalf("shutdown = %v after %v, want nil at once", err, time.Since(start))
		}
	})
}
