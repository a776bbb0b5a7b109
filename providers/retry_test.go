package providers_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers"
)

func TestAttemptsExpired(t *testing.T) {
	t.Parallel()
	r := providers.NewRetries(providers.Instance{Name: "x"})
	refused := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	tests := []struct {
		failures int
		ctxErr   error
		want     string
	}{
		{0, context.DeadlineExceeded, "context deadline exceeded: no answer before the deadline"},
		{0, context.Canceled, "context canceled"},
		{1, context.DeadlineExceeded, "context deadline exceeded after 1 failed attempt: dial tcp 127.0.0.1:1: connect: connection refused"},
		{3, context.Canceled, "context canceled after 3 failed attempts, the last: dial tcp 127.0.0.1:1: connect: connection refused"},
	}
	for _, tt := range tests {
		a := r.Call("read", "secret/app")
		for range tt.failures {
			a.Failed(refused, time.Second)
		}
		err := a.Expired(tt.ctxErr)
		if err.Error() != tt.want || !errors.Is(err, tt.ctxErr) {
			t.Errorf("%d failures, %v: %q, want %q wrapping the context error", tt.failures, tt.ctxErr, err, tt.want)
		}
		if errors.Is(err, refused) {
			t.Errorf("the last transient failure is wrapped: %v", err)
		}
		if a.Count() != tt.failures {
			t.Errorf("Count = %d, want %d", a.Count(), tt.failures)
		}
	}
	var none *providers.Attempts
	none.Failed(refused, 0)
	if err := none.Expired(context.Canceled); !errors.Is(err, context.Canceled) {
		t.Errorf("nil Attempts: %v", err)
	}
}

// TestRetriesLogOncePerInterval: the first failure is logged at once,
// later ones at most once per RetryLogEvery with the number left out,
// and every one reaches OnRetry.
func TestRetriesLogOncePerInterval(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		logs := &testenv.LogBuffer{}
		var mu sync.Mutex
		var seen []string
		r := providers.NewRetries(providers.Instance{Name: "vault-eu", Logger: logs.Logger(), OnRetry: func(err error) {
			mu.Lock()
			seen = append(seen, err.Error())
			mu.Unlock()
		}})
		fail := func() { r.Call("read", "secret/app").Failed(errors.New("connection refused"), time.Second) }
		fail()
		if n := logs.Count("provider call failed; retrying"); n != 1 {
			t.Fatalf("%d warnings after the first failure, want 1", n)
		}
		for range 5 {
			time.Sleep(time.Second)
			fail()
		}
		if n := logs.Count("provider call failed; retrying"); n != 1 {
			t.Fatalf("%d warnings within a minute, want 1", n)
		}
		time.Sleep(providers.RetryLogEvery)
		fail()
		if n := logs.Count("provider call failed; retrying"); n != 2 || !strings.Contains(logs.String(), "suppressed=5") {
			t.Fatalf("after a minute: %d warnings, want 2, the second saying 5 were suppressed:\n%s", n, logs)
		}
		for _, want := range []string{"provider=vault-eu", "op=read", "secret=secret/app", `err="connection refused"`, "level=WARN"} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log does not say %s:\n%s", want, logs)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 7 {
			t.Errorf("OnRetry saw %d failures, want 7", len(seen))
		}
	})
}

// retryKind's provider reports one retried failure per Fetch.
const retryKind = "providers-test-retry"

func init() {
	providers.Register(providers.Kind{
		Name: retryKind,
		New: func(in providers.Instance) (providers.Provider, error) {
			return retryProvider{providers.NewRetries(in)}, nil
		},
	})
}

type retryProvider struct{ r *providers.Retries }

func (p retryProvider) Fetch(_ context.Context, ref providers.Ref) (providers.Secret, error) {
	p.r.Call("fetch", ref.Path).Failed(errors.New("connection reset"), 0)
	return providers.Secret{Value: providers.StringValue("v")}, nil
}

func (retryProvider) Close() error { return nil }

// TestSetObserveRetries: the observer set on a Set sees the retries of its
// providers with the instance's name, including providers built before
// it was set.
func TestSetObserveRetries(t *testing.T) {
	t.Parallel()
	set := providers.NewSet(providers.Instance{}, []providers.Instance{{Name: "r1", Kind: retryKind}})
	defer set.Close()
	ref := map[string]providers.Ref{"A": {Scheme: "r1", Path: "a"}}
	if _, err := set.Resolve(t.Context(), ref); err != nil {
		t.Fatal(err)
	}
	var got []string
	set.ObserveRetries(func(instance string, err error) { got = append(got, instance+": "+err.Error()) })
	if _, err := set.Resolve(t.Context(), ref); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "r1: connection reset" {
		t.Errorf("observed %q, want one retry of r1", got)
	}
}

func TestClipMessage(t *testing.T) {
	t.Parallel()
	got := providers.ClipMessage(strings.Repeat("ü", 200))
	if !strings.HasSuffix(got, "…") || len(got) > providers.MaxServerMessage+len("…") {
		t.Errorf("ClipMessage: %d bytes", len(got))
	}
	if !strings.HasPrefix(got, "ü") || strings.ContainsRune(got, '\uFFFD') || !utf8.ValidString(got) {
		t.Errorf("ClipMessage cut a rune in half")
	}
	if got := providers.ClipMessage(" denied\nby policy\r\n"); got != "denied by policy" {
		t.Errorf("ClipMessage of a message with line breaks: %q", got)
	}
}
