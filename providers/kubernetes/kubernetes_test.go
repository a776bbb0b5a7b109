package kubernetes

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/providertest"
)

func TestCheckRef(t *testing.T) {
	t.Parallel()
	cases := []struct {
		ref string
		ok  bool
	}{
		{"k8s://payments/db#password", true},
		{"k8s://payments/db", true},
		{"k8s://payments/tls#tls.crt", true},
		{"k8s://kube-system/a.b-c#KEY_1", true},
		{"k8s://payments", false},
		{"k8s://payments/", false},
		{"k8s:///db", false},
		{"k8s://payments/db/extra", false},
		{"k8s://Payments/db", false},
		{"k8s://payments/DB", false},
		{"k8s://payments/db_1", false},
		{"k8s://" + strings.Repeat("n", 64) + "/db", false},
		{"k8s://payments/db#a/b", false},
		{"k8s://payments/db#..", false},
	}
	for _, tc := range cases {
		t.Run(tc.ref, func(t *testing.T) {
			t.Parallel()
			r, err := providers.Parse(tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			err = CheckRef(r)
			if tc.ok && err != nil {
				t.Errorf("CheckRef: %v", err)
			}
			if !tc.ok && !errors.Is(err, providers.ErrInvalidReference) {
				t.Errorf("CheckRef: %v, want an error wrapping ErrInvalidReference", err)
			}
		})
	}
}

func TestFetch(t *testing.T) {
	t.Parallel()
	binary := []byte{0, 0xff, '\n', 0xc3, 'x'}
	c := newFakeCluster()
	rv := c.put("payments", "db", map[string][]byte{"password": []byte("hunter2-hunter2"), "bin": binary, "empty": nil})
	p := c.provider(t, Options{})
	sec, err := p.Fetch(t.Context(), ref(t, "k8s://payments/db"))
	if err != nil {
		t.Fatal(err)
	}
	if sec.Version != rv {
		t.Errorf("Version %q, want the resourceVersion %q", sec.Version, rv)
	}
	if b, ok := sec.Data["bin"].([]byte); !ok || !bytes.Equal(b, binary) {
		t.Errorf("binary key: got %T, want the stored []byte", sec.Data["bin"])
	}
	v, err := sec.Field("password")
	if err != nil || v.Reveal() != "hunter2-hunter2" {
		t.Errorf("Field(password): %v", err)
	}
	if v, err := sec.Field("empty"); err != nil || v.Len() != 0 {
		t.Errorf("Field(empty): %v, %d bytes", err, v.Len())
	}
	_, fields, err := sec.Whole()
	if err != nil || len(fields) != 3 || !bytes.Equal(fields["bin"].Bytes(), binary) {
		t.Errorf("Whole: %v, %d fields", err, len(fields))
	}
}

func TestFetchErrors(t *testing.T) {
	t.Parallel()
	gr := schema.GroupResource{Resource: "secrets"}
	cases := []struct {
		name     string
		fail     func(calls *int) error
		want     error
		words    []string
		attempts int
	}{
		{"not found", nil, providers.ErrNotFound, []string{"get secret payments/missing"}, 1},
		{"forbidden", func(*int) error {
			return apierrors.NewForbidden(gr, "missing", errors.New(`User "restricted" cannot get resource "secrets" in API group "" in the namespace "payments"`))
		}, providers.ErrPermissionDenied, []string{`verb "get"`, `resource "secrets"`, `namespace "payments"`, `User "restricted"`}, 1},
		{"unauthorized", func(*int) error { return apierrors.NewUnauthorized("Unauthorized") },
			providers.ErrPermissionDenied, []string{"get secret payments/missing", "401"}, 1},
		{"503 then found nothing", func(calls *int) error {
			if *calls < 3 {
				return apierrors.NewServiceUnavailable("etcd leader changed")
			}
			return nil
		}, providers.ErrNotFound, nil, 3},
		{"5xx every time", func(*int) error { return apierrors.NewInternalError(errors.New("boom")) },
			nil, []string{"get secret payments/missing", "HTTP 500"}, fetchAttempts},
		{"throttled with retry-after", func(calls *int) error {
			if *calls == 1 {
				return apierrors.NewTooManyRequests("slow down", 1)
			}
			return nil
		}, providers.ErrNotFound, nil, 2},
		{"network error", func(*int) error { return errors.New("dial tcp 127.0.0.1:1: connect: connection refused") },
			nil, []string{"connection refused"}, fetchAttempts},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newFakeCluster()
			calls := 0
			if tc.fail != nil {
				c.failGet = func(string, string) error { calls++; return tc.fail(&calls) }
			}
			p := c.provider(t, Options{})
			var slept []time.Duration
			p.sleep = func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }
			_, err := p.Fetch(t.Context(), ref(t, "k8s://payments/missing"))
			if err == nil {
				t.Fatal("Fetch succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Fetch: %v, want an error wrapping %v", err, tc.want)
			}
			if tc.want == nil && (errors.Is(err, providers.ErrNotFound) || errors.Is(err, providers.ErrPermissionDenied)) {
				t.Errorf("Fetch: %v wraps a sentinel it should not", err)
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if gets, _, _ := c.counts(); gets != tc.attempts {
				t.Errorf("%d attempts, want %d", gets, tc.attempts)
			}
			if len(slept) != tc.attempts-1 {
				t.Errorf("%d backoff sleeps, want %d", len(slept), tc.attempts-1)
			}
			for _, d := range slept {
				if d < 0 || d > time.Minute {
					t.Errorf("backoff of %v", d)
				}
			}
			if tc.name == "throttled with retry-after" && slept[0] < time.Second {
				t.Errorf("slept %v, want at least the Retry-After of 1s", slept[0])
			}
		})
	}
}

func TestFetchCancelled(t *testing.T) {
	t.Parallel()
	c := newFakeCluster()
	c.put("ns", "a", data("1"))
	p := c.provider(t, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := p.Fetch(ctx, ref(t, "k8s://ns/a"))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Fetch: %v, want context.Canceled", err)
	}
	if gets, _, _ := c.counts(); gets != 0 {
		t.Errorf("%d API calls with a cancelled context", gets)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	b := newBackoff(100*time.Millisecond, time.Second)
	for i := range 50 {
		limit := time.Second
		if i < 4 {
			limit = 100 * time.Millisecond << i
		}
		if d := b.Next(); d < 0 || d > limit {
			t.Fatalf("delay %d = %v, want within [0, %v]", i, d, limit)
		}
	}
	if d := b.NextAfter(3 * time.Second); d < 3*time.Second {
		t.Errorf("delay %v below the Retry-After of 3s", d)
	}
	b.Reset()
	if d := b.Next(); d > 100*time.Millisecond {
		t.Errorf("after reset: %v", d)
	}
}

// TestConformance runs the conformance suite against the fake cluster;
// the integration tests run it against a real API server.
func TestConformance(t *testing.T) {
	t.Parallel()
	c := newFakeCluster()
	gr := schema.GroupResource{Resource: "secrets"}
	c.failGet = func(ns, name string) error {
		if ns == "denied" {
			return apierrors.NewForbidden(gr, name, errors.New(`User "u" cannot get resource "secrets" in the namespace "denied"`))
		}
		return nil
	}
	providertest.Run(t, providertest.Harness{
		Kind:        KindName,
		New:         func(t *testing.T) providers.Provider { return c.provider(t, Options{}) },
		FlatObjects: true,
		BinarySafe:  true,
		PutValue: func(t *testing.T, name string, value []byte) providers.Ref {
			c.put("conformance", name, map[string][]byte{"value": value})
			return providers.Ref{Scheme: KindName, Path: "conformance/" + name, Field: "value"}
		},
		PutObject: func(t *testing.T, name string, fields map[string]any) providers.Ref {
			d := map[string][]byte{}
			for k, v := range fields {
				d[k] = []byte(v.(string))
			}
			c.put("conformance", name, d)
			return providers.Ref{Scheme: KindName, Path: "conformance/" + name}
		},
		Delete: func(t *testing.T, name string) { c.del("conformance", name) },
		Missing: func(t *testing.T, name string) providers.Ref {
			return providers.Ref{Scheme: KindName, Path: "conformance/" + name}
		},
		Denied: func(t *testing.T, name string, value []byte) providers.Ref {
			c.put("denied", name, map[string][]byte{"value": value})
			return providers.Ref{Scheme: KindName, Path: "denied/" + name, Field: "value"}
		},
	})
}

func TestNewInstanceOptions(t *testing.T) {
	t.Parallel()
	k, ok := providers.LookupKind(KindName)
	if !ok {
		t.Fatal("kind k8s not registered")
	}
	cases := []struct {
		name   string
		decode func(any) error
		ok     bool
	}{
		{"no options", nil, true},
		{"context and kubeconfig", func(v any) error {
			o := v.(*Options)
			o.Context, o.Kubeconfig = "prod", "kubeconfig"
			return nil
		}, true},
		{"namespace scope", func(v any) error { v.(*Options).WatchScope = WatchNamespace; return nil }, true},
		{"bad scope", func(v any) error { v.(*Options).WatchScope = "cluster"; return nil }, false},
		{"decode error", func(any) error { return errors.New("providers.k8s: unknown key contxt") }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := k.New(providers.Instance{Name: "k8s", Kind: "k8s", Decode: tc.decode, Getenv: func(string) string { return "" }})
			if tc.ok != (err == nil) {
				t.Fatalf("New: %v, want ok=%v", err, tc.ok)
			}
			if p != nil {
				if err := p.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}
		})
	}
}
