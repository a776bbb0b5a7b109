package rotate

import (
	"testing"
	"time"

	"github.com/keyward/keyward/providers"
)

// The schedule is a pure function of the source, the time and the random
// number: these tests need no loop and no clock.

func TestScheduleNext(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	fixed := func(r float64) func() float64 { return func() float64 { return r } }
	lease := &providers.Lease{Duration: 90 * time.Minute, Obtained: now.Add(-10 * time.Minute)}
	tests := []struct {
		name    string
		sc      schedule
		s       *source
		watched bool
		rand    float64
		want    time.Time
	}{
		{"poll without a probe", schedule{}, &source{}, false, 0.5, now.Add(DefaultPollInterval)},
		{"poll with a probe", schedule{}, &source{prober: true}, false, 0.5, now.Add(DefaultProbeInterval)},
		{"configured interval", schedule{interval: time.Minute}, &source{prober: true}, false, 0.5, now.Add(time.Minute)},
		{"jitter up", schedule{interval: time.Minute, jitter: 0.5}, &source{}, false, 0.75, now.Add(75 * time.Second)},
		{"jitter down", schedule{interval: time.Minute, jitter: 0.5}, &source{}, false, 0.25, now.Add(45 * time.Second)},
		{"watched: safety floor", schedule{interval: time.Second}, &source{}, true, 0.5, now.Add(minSafetyInterval)},
		{"watched: ten intervals", schedule{interval: time.Hour}, &source{}, true, 0.5, now.Add(10 * time.Hour)},
		{"lease at 2/3", schedule{}, &source{lease: lease}, false, 0.5, lease.Obtained.Add(time.Hour)},
		{"lease brought forward by jitter", schedule{jitter: 0.5}, &source{lease: lease}, false, 0.5, lease.Obtained.Add(45 * time.Minute)},
		{"lease already spent", schedule{}, &source{lease: &providers.Lease{Duration: time.Minute, Obtained: now.Add(-time.Hour)}}, false, 0.5, now.Add(minRecheck)},
		{"pinned", schedule{}, &source{pinned: true, prober: true}, false, 0.5, never},
		{"pinned with a lease", schedule{}, &source{pinned: true, lease: lease}, false, 0.5, lease.Obtained.Add(time.Hour)},
	}
	for _, tt := range tests {
		if got := tt.sc.next(tt.s, tt.watched, now, fixed(tt.rand)); !got.Equal(tt.want) {
			t.Errorf("%s: next = %v, want %v", tt.name, got.Sub(now), tt.want.Sub(now))
		}
	}
}

func TestRetryAt(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	valid := &providers.Lease{Duration: time.Hour, Obtained: now.Add(-50 * time.Minute)}
	spent := &providers.Lease{Duration: time.Hour, Obtained: now.Add(-2 * time.Hour)}
	for _, tt := range []struct {
		name  string
		lease *providers.Lease
		delay time.Duration
		want  time.Time
	}{
		{"no lease", nil, 5 * time.Minute, now.Add(5 * time.Minute)},
		{"lease outlasts the backoff", valid, time.Minute, now.Add(time.Minute)},
		{"not past a valid lease's expiry", valid, time.Hour, valid.Expires()},
		{"an expired lease does not bound it", spent, time.Hour, now.Add(time.Hour)},
	} {
		if got := retryAt(tt.lease, now, tt.delay); !got.Equal(tt.want) {
			t.Errorf("%s: retryAt = %v, want %v", tt.name, got.Sub(now), tt.want.Sub(now))
		}
	}
}

func TestOpFor(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	renewable := &providers.Lease{Duration: time.Hour, Renewable: true, Obtained: now.Add(-time.Minute)}
	expired := &providers.Lease{Duration: time.Hour, Renewable: true, Obtained: now.Add(-2 * time.Hour)}
	for _, tt := range []struct {
		name string
		s    *source
		want op
	}{
		{"plain", &source{}, opFetch},
		{"probe", &source{prober: true, secret: providers.Secret{Version: "3"}}, opProbe},
		{"probe without a version", &source{prober: true}, opFetch},
		{"probe after a failure", &source{prober: true, secret: providers.Secret{Version: "3"}, failing: providers.ErrNotFound}, opFetch},
		{"renew", &source{renewer: true, lease: renewable}, opRenew},
		{"renew needs a renewer", &source{lease: renewable}, opFetch},
		{"an expired lease is fetched", &source{renewer: true, lease: expired}, opFetch},
		{"a lease is never probed", &source{prober: true, secret: providers.Secret{Version: "3"}, lease: &providers.Lease{Duration: time.Hour, Obtained: now}}, opFetch},
	} {
		if got := opFor(tt.s, now); got != tt.want {
			t.Errorf("%s: opFor = %v, want %v", tt.name, got, tt.want)
		}
	}
}
