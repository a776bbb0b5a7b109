package backoff

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

func TestCeilingGrowsAndCaps(t *testing.T) {
	t.Parallel()
	b := &Backoff{Base: 100 * time.Millisecond, Max: time.Second, Rand: func() float64 { return 0.5 }}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		w *= time.Millisecond
		if got := b.Ceiling(); got != w {
			t.Fatalf("attempt %d: ceiling %v, want %v", i, got, w)
		}
		if got := b.Next(); got != w/2 {
			t.Fatalf("attempt %d: delay %v, want %v (half the ceiling at rand 0.5)", i, got, w/2)
		}
	}
	if b.Attempt() != len(want) {
		t.Fatalf("Attempt = %d", b.Attempt())
	}
	b.Reset()
	if got := b.Ceiling(); got != 100*time.Millisecond {
		t.Fatalf("after Reset: ceiling %v", got)
	}
}

func TestZeroValueDefaults(t *testing.T) {
	t.Parallel()
	var b Backoff
	if got := b.Ceiling(); got != DefaultBase {
		t.Fatalf("ceiling %v, want %v", got, DefaultBase)
	}
	for range 40 { // would overflow without the cap
		b.Next()
	}
	if got := b.Ceiling(); got != DefaultMax {
		t.Fatalf("ceiling %v, want %v", got, DefaultMax)
	}
}

func TestFullJitterBounds(t *testing.T) {
	t.Parallel()
	for _, r := range []float64{0, 0.25, 0.999999} {
		b := &Backoff{Base: time.Second, Max: 8 * time.Second, Rand: func() float64 { return r }}
		for range 6 {
			ceil := b.Ceiling()
			d := b.Next()
			if d < 0 || d >= ceil {
				t.Fatalf("rand %v: delay %v outside [0, %v)", r, d, ceil)
			}
		}
	}
	// The real source stays within bounds too.
	b := &Backoff{Base: time.Millisecond, Max: 50 * time.Millisecond}
	for range 1000 {
		ceil := b.Ceiling()
		if d := b.Next(); d < 0 || d >= ceil {
			t.Fatalf("delay %v outside [0, %v)", d, ceil)
		}
	}
}

func TestNextAfterRetryAfter(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		rand       float64
		retryAfter time.Duration
		maxRA      time.Duration
		want       time.Duration
	}{
		{"no hint", 0.5, 0, 0, 500 * time.Millisecond},
		{"hint longer than jitter", 0.5, 3 * time.Second, 0, 3 * time.Second},
		{"hint shorter than jitter", 0.5, 100 * time.Millisecond, 0, 500 * time.Millisecond},
		{"hint capped", 0, time.Hour, 10 * time.Second, 10 * time.Second},
		{"hint capped by default", 0, 48 * time.Hour, 0, DefaultMaxRetryAfter},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := &Backoff{Base: time.Second, MaxRetryAfter: c.maxRA, Rand: func() float64 { return c.rand }}
			if got := b.NextAfter(c.retryAfter); got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 2 * time.Minute, true},
		{" 0 ", 0, true},
		{"", 0, false},
		{"-1", 0, false},
		{"soon", 0, false},
		{"Fri, 02 Jan 2026 03:04:35 GMT", 30 * time.Second, true},
		{"Fri, 02 Jan 2026 03:00:00 GMT", 0, true}, // in the past
		{"99999999999999999999", 0, false},
	}
	for _, c := range cases {
		got, ok := ParseRetryAfter(c.in, now)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

type throttled struct{ wait time.Duration }

func (e throttled) Error() string             { return "throttled" }
func (e throttled) RetryAfter() time.Duration { return e.wait }

func TestRetryAfterFromChain(t *testing.T) {
	t.Parallel()
	err := errors.Join(errors.New("x"), throttled{wait: 7 * time.Second})
	if got := RetryAfter(err); got != 7*time.Second {
		t.Fatalf("got %v", got)
	}
	if got := RetryAfter(errors.New("plain")); got != 0 {
		t.Fatalf("got %v", got)
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if err := Wait(t.Context(), 3*time.Second); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start); got != 3*time.Second {
			t.Fatalf("waited %v", got)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start = time.Now()
		if err := Wait(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		if got := time.Since(start); got != time.Second {
			t.Fatalf("cancelled wait took %v", got)
		}
	})
}

func TestRetry(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := &Backoff{Base: time.Second, Max: 4 * time.Second, Rand: func() float64 { return 0.5 }}
		var calls []time.Duration
		start := time.Now()
		err := Retry(t.Context(), b, func(context.Context) error {
			calls = append(calls, time.Since(start))
			switch len(calls) {
			case 1, 2:
				return errors.New("transient")
			case 3:
				return throttled{wait: 10 * time.Second}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// 0; +0.5s; +1s; then Retry-After 10s beats the 2s jitter.
		want := []time.Duration{0, 500 * time.Millisecond, 1500 * time.Millisecond, 11500 * time.Millisecond}
		if len(calls) != len(want) {
			t.Fatalf("calls at %v", calls)
		}
		for i := range want {
			if calls[i] != want[i] {
				t.Fatalf("calls at %v, want %v", calls, want)
			}
		}
		if b.Attempt() != 0 {
			t.Fatalf("not reset after success")
		}
	})
}

func TestRetryPermanentAndCancel(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		denied := errors.New("denied")
		n := 0
		err := Retry(t.Context(), &Backoff{}, func(context.Context) error { n++; return Permanent(denied) })
		if err != denied || n != 1 {
			t.Fatalf("err %v after %d calls", err, n)
		}
		if Permanent(nil) != nil {
			t.Fatal("Permanent(nil) != nil")
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		boom := errors.New("boom")
		err = Retry(ctx, &Backoff{Base: time.Second, Max: time.Second}, func(context.Context) error { return boom })
		if !errors.Is(err, boom) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestEvery(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		e := &Every{Interval: time.Minute}
		steps := []struct {
			advance    time.Duration
			ok         bool
			suppressed int
		}{
			{0, true, 0},
			{time.Second, false, 0},
			{30 * time.Second, false, 0},
			{29 * time.Second, true, 2},
			{59 * time.Second, false, 0},
			{time.Second, true, 1},
		}
		for i, s := range steps {
			time.Sleep(s.advance) // advances the bubble's fake clock
			ok, n := e.Allow()
			if ok != s.ok || n != s.suppressed {
				t.Fatalf("step %d: Allow() = %v, %d; want %v, %d", i, ok, n, s.ok, s.suppressed)
			}
		}
		e.Reset()
		if ok, _ := e.Allow(); !ok {
			t.Fatal("not allowed after Reset")
		}
	})
	var zero Every
	for range 3 {
		if ok, _ := zero.Allow(); !ok {
			t.Fatal("zero interval refused a call")
		}
	}
}

// TestDelayIsNextWithoutCounting: Delay(n, ra) is what the n-th NextAfter
// draws, and leaves the attempt count alone.
func TestDelayIsNextWithoutCounting(t *testing.T) {
	t.Parallel()
	b := &Backoff{Base: 100 * time.Millisecond, Max: time.Second, MaxRetryAfter: 2 * time.Second, Rand: func() float64 { return 0.5 }}
	want := []time.Duration{50, 100, 200, 400, 500, 500}
	for i, w := range want {
		if got := b.Delay(i, 0); got != w*time.Millisecond {
			t.Errorf("Delay(%d) = %v, want %v", i, got, w*time.Millisecond)
		}
	}
	if b.Attempt() != 0 {
		t.Fatalf("Delay counted attempts: %d", b.Attempt())
	}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Errorf("Next #%d = %v, want %v", i, got, w*time.Millisecond)
		}
	}
	if got := b.Delay(0, 1500*time.Millisecond); got != 1500*time.Millisecond {
		t.Errorf("Delay with Retry-After 1.5s = %v", got)
	}
	if got := b.Delay(0, time.Hour); got != 2*time.Second {
		t.Errorf("Delay with Retry-After 1h = %v, want the 2s cap", got)
	}
	if got := b.Delay(-3, 0); got != 50*time.Millisecond {
		t.Errorf("Delay(-3) = %v, want the first delay", got)
	}
}

// TestRetryPermanentDeep: an error marked Permanent deep inside what fn
// returns ends Retry at once, and Retry returns it as fn wrapped it.
func TestRetryPermanentDeep(t *testing.T) {
	t.Parallel()
	refused := errors.New("refused")
	wrapped := fmt.Errorf("fetch A: %w", fmt.Errorf("read f: %w", Permanent(refused)))
	n := 0
	err := Retry(t.Context(), &Backoff{}, func(context.Context) error { n++; return wrapped })
	if n != 1 || err != wrapped || !errors.Is(err, refused) || !IsPermanent(err) {
		t.Fatalf("Retry = %v after %d calls, want the wrapped error at once", err, n)
	}
	if IsPermanent(refused) || IsPermanent(nil) {
		t.Fatal("IsPermanent of an unmarked error")
	}
}
