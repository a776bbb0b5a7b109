package runner

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// TestStopOnSignal: SIGTERM and SIGINT each cancel the context
// StopOnSignal returns (and, while it is registered, do not end the test
// process).
func TestStopOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		ctx, stop := StopOnSignal(context.Background())
		if err := syscall.Kill(syscall.Getpid(), sig); err != nil {
			stop()
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(30 * time.Second):
			t.Errorf("%v did not cancel the context", sig)
		}
		stop()
	}
}
