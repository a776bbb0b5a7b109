package child

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestRestartSplay: Restart waits its random share of the splay before it
// asks Run for the restart, and gives up that wait when the supervisor
// stops or its context ends.
func TestRestartSplay(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := NewSupervisor(SupervisorOptions{Options: Options{Args: []string{"true"}}, Rand: func() float64 { return 0.25 }})
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- s.Restart(t.Context(), time.Second, 10*time.Second) }()
		req := <-s.reqs // what Run would receive
		if d := time.Since(start); d != 2500*time.Millisecond {
			t.Fatalf("the restart was asked for after %v, want 0.25 × the 10s splay", d)
		}
		if req.timeout != time.Second {
			t.Fatalf("stop timeout %v, want 1s", req.timeout)
		}
		req.result <- nil
		if err := <-done; err != nil {
			t.Fatal(err)
		}

		go func() { done <- s.Restart(t.Context(), 0, time.Hour) }()
		time.Sleep(time.Minute)
		close(s.done) // Run returned
		if err := <-done; !errors.Is(err, ErrStopping) {
			t.Fatalf("Restart when the supervisor stopped during the splay = %v, want ErrStopping", err)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		s := NewSupervisor(SupervisorOptions{Options: Options{Args: []string{"true"}}, Rand: func() float64 { return 0.5 }})
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		start := time.Now()
		if err := s.Restart(ctx, 0, time.Hour); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != time.Minute {
			t.Fatalf("Restart whose context ends during the splay = %v after %v, want DeadlineExceeded after 1m", err, time.Since(start))
		}
	})
}
