// Package providertest is the conformance suite every keyward provider
// passes. A provider's tests describe, in a Harness, how to put secrets
// into its store (a temporary directory, a dev server, an emulator) and
// how to build the provider, then call Run.
//
// The suite checks the contract of providers.Provider: whole values and
// #fields come back as stored, not-found and denied map to the providers
// sentinels, versions pin, a secret deleted and created again has a new
// Version, a cancelled context is honoured, concurrent fetches are safe,
// the provider works inside a providers.Set, and no stored value ever
// appears in an error message. A provider that is a
// providers.VersionProber is checked against its own Fetch as well.
package providertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/providers"
)

// Harness connects the suite to one provider and its store. Every function
// gets the subtest's t: it should fail the test with t.Fatal when the store
// cannot be prepared, may register t.Cleanup to remove what it stored, and
// may call t.Skip with a reason when the store cannot do what is asked.
// Subtests run in parallel, so the functions must be safe for concurrent
// use. Names passed to them are unique per call and match [a-z0-9-]+.
type Harness struct {
	// Kind is the registered provider kind under test ("file", "vault", …).
	// Run fails when no such kind is registered; the Resolve subtest uses
	// its Params and CheckRef. Required.
	Kind string

	// New builds the provider under test, configured to reach the store.
	// Run closes it. Required.
	New func(t *testing.T) providers.Provider

	// PutValue stores value as the whole secret name, creating or
	// replacing it, and returns a reference to it. A store that holds
	// only objects (Vault KV, a Kubernetes Secret) may store
	// {"value": value} and return a reference with Field "value". Nil
	// skips the subtests that need it.
	PutValue func(t *testing.T, name string, value []byte) providers.Ref

	// PutObject stores a structured secret with fields, whose values are
	// strings or, unless FlatObjects, nested map[string]any, and returns
	// a reference to the whole secret (Field empty). Nil skips the
	// subtests that need it.
	PutObject func(t *testing.T, name string, fields map[string]any) providers.Ref

	// FlatObjects reports that the store's objects are flat maps of
	// strings (Kubernetes Secret data, dotenv files): PutObject is never
	// given nested objects.
	FlatObjects bool

	// BinarySafe reports that PutValue can store arbitrary bytes (NUL,
	// invalid UTF-8) and the provider returns them unchanged.
	BinarySafe bool

	// PutVersions stores values, in order, as successive versions of the
	// secret name. Nil skips the version subtest: the store has none.
	PutVersions func(t *testing.T, name string, values [][]byte) Versions

	// Delete removes the secret name that PutValue stored, entirely (a
	// Vault KV v2 secret with its metadata, a GCP secret with its
	// versions), so that PutValue of the same name creates it anew. Nil
	// skips the subtest that needs it.
	Delete func(t *testing.T, name string)

	// Missing returns a reference to a secret that does not exist.
	// Required.
	Missing func(t *testing.T, name string) providers.Ref

	// Denied stores value as a secret that the provider's credentials may
	// not read and returns a reference to it. It calls t.Skip with the
	// reason when the store cannot produce a denial in this environment;
	// nil skips the subtest.
	Denied func(t *testing.T, name string, value []byte) providers.Ref

	// WatchTimeout bounds how long the Watcher subtest waits for a change
	// to be reported; 0 means 30s. An in-memory store can set less.
	WatchTimeout time.Duration

	// PutLeased returns a reference to a secret that expires: a Fetch of
	// it returns a renewable providers.Lease (a Vault dynamic secret). Nil
	// skips the LeaseRenewer subtest.
	PutLeased func(t *testing.T, name string) providers.Ref

	// PutMalformed stores a secret holding value that the provider must
	// fail to fetch, or whose reference's Field must fail to extract (a
	// .json file that is not JSON). Nil skips the subtest.
	PutMalformed func(t *testing.T, name string, value []byte) providers.Ref
}

// Versions are the references PutVersions returns.
type Versions struct {
	// Latest names the secret without a version: the last value stored.
	Latest providers.Ref
	// Pinned[i] names the version holding values[i].
	Pinned []providers.Ref
	// Missing names a version that does not exist; a zero Ref skips
	// that check.
	Missing providers.Ref
}

// fetchTimeout bounds each call the suite makes.
const fetchTimeout = 30 * time.Second

// suite is the state shared by the subtests of one Run.
type suite struct {
	h Harness

	mu     sync.Mutex
	values [][]byte    // every value stored
	errs   []seenError // every error message seen
}

// seenError is an error message and how many values it was checked
// against when it was seen.
type seenError struct {
	msg     string
	checked int
}

// Run runs the conformance suite against the provider h describes. Call it
// from a provider package's test:
//
//	func TestConformance(t *testing.T) { providertest.Run(t, providertest.Harness{…}) }
//
// Subtests run in parallel. After they all finish, every error message
// any of them saw is checked against every value stored.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Kind == "" || h.New == nil || h.Missing == nil {
		t.Fatal("providertest: Harness.Kind, New and Missing are required")
	}
	if _, ok := providers.LookupKind(h.Kind); !ok {
		t.Fatalf("provider kind %q is not registered: does the package call providers.Register in init?", h.Kind)
	}
	s := &suite{h: h}
	t.Cleanup(s.checkAllErrors(t))

	t.Run("FetchValue", s.testFetchValue)
	t.Run("FetchBinary", s.testFetchBinary)
	t.Run("Update", s.testUpdate)
	t.Run("Object", s.testObject)
	t.Run("NestedField", s.testNestedField)
	t.Run("FieldOfNonObject", s.testFieldOfNonObject)
	t.Run("NotFound", s.testNotFound)
	t.Run("PermissionDenied", s.testPermissionDenied)
	t.Run("Versions", s.testVersions)
	t.Run("Recreated", s.testRecreated)
	t.Run("CancelledContext", s.testCancelledContext)
	t.Run("Malformed", s.testMalformed)
	t.Run("Concurrent", s.testConcurrent)
	t.Run("VersionProbe", s.testVersionProbe)
	t.Run("Watcher", s.testWatcher)
	t.Run("LeaseRenewer", s.testLeaseRenewer)
	t.Run("Resolve", s.testResolve)
	t.Run("CloseUnused", s.testCloseUnused)
}

// provider builds the provider under test and closes it when t ends.
func (s *suite) provider(t *testing.T) providers.Provider {
	t.Helper()
	p := s.h.New(t)
	if p == nil {
		t.Fatal("Harness.New returned nil")
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			s.sawError(t, err)
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// secret returns a fresh random value, remembered for the leak checks.
func (s *suite) secret(t *testing.T) []byte {
	t.Helper()
	// Random only: a label in the value could also stand in a secret's
	// name or path, and the leak check would then see the value in an
	// error that merely names the secret.
	v := []byte("sv" + randomHex(t, 12))
	s.remember(v)
	return v
}

func (s *suite) remember(v []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values = append(s.values, v)
}

// sawError records err for the final check and checks it at once against
// every value stored so far.
func (s *suite) sawError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	s.mu.Lock()
	values := slices.Clone(s.values)
	s.errs = append(s.errs, seenError{msg: msg, checked: len(values)})
	s.mu.Unlock()
	AssertRedacted(t, msg, values...)
}

// checkAllErrors checks every error against the values stored after it
// was seen (by subtests running in parallel).
func (s *suite) checkAllErrors(t *testing.T) func() {
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, e := range s.errs {
			AssertRedacted(t, e.msg, s.values[e.checked:]...)
		}
	}
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

// name returns a store-friendly unique name for this subtest.
func name(t *testing.T) string {
	base := strings.ToLower(t.Name())
	if i := strings.LastIndexByte(base, '/'); i >= 0 {
		base = base[i+1:]
	}
	base = nonName.ReplaceAllString(base, "-")
	return "kwtest-" + strings.Trim(base, "-") + "-" + randomHex(t, 4)
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), fetchTimeout)
	t.Cleanup(cancel)
	return c
}

// fetch fetches ref's secret and selects ref.Field, or the whole payload.
// Every error is recorded for the leak checks.
func (s *suite) fetch(t *testing.T, p providers.Provider, ref providers.Ref) (providers.Value, providers.Secret, error) {
	t.Helper()
	sec, err := p.Fetch(ctx(t), ref.Whole())
	if err != nil {
		s.sawError(t, err)
		return providers.Value{}, providers.Secret{}, err
	}
	if ref.Field != "" {
		v, err := sec.Field(ref.Field)
		s.sawError(t, err)
		return v, sec, err
	}
	v, _, err := sec.Whole()
	s.sawError(t, err)
	return v, sec, err
}

func (s *suite) mustFetch(t *testing.T, p providers.Provider, ref providers.Ref, want []byte) providers.Secret {
	t.Helper()
	got, sec, err := s.fetch(t, p, ref)
	if err != nil {
		t.Fatalf("Fetch(%s): %v", ref, err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("Fetch(%s) returned a different value: got %d bytes (%s), want %d bytes (%s)",
			ref, got.Len(), got.Fingerprint(), len(want), providers.NewValue(want).Fingerprint())
	}
	return sec
}

func (s *suite) needValue(t *testing.T) {
	t.Helper()
	if s.h.PutValue == nil {
		t.Skip("Harness.PutValue is nil: the store holds no plain values")
	}
}

func (s *suite) needObject(t *testing.T) {
	t.Helper()
	if s.h.PutObject == nil {
		t.Skip("Harness.PutObject is nil: the store holds no structured secrets")
	}
}

func (s *suite) testFetchValue(t *testing.T) {
	t.Parallel()
	s.needValue(t)
	p := s.provider(t)
	want := s.secret(t)
	ref := s.h.PutValue(t, name(t), want)
	s.mustFetch(t, p, ref, want)
}

func (s *suite) testFetchBinary(t *testing.T) {
	t.Parallel()
	s.needValue(t)
	if !s.h.BinarySafe {
		t.Skip("Harness.BinarySafe is false: the store holds text only")
	}
	p := s.provider(t)
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	want := append([]byte{0, 0xff, '\n', '\r', 0xc3}, raw...)
	s.remember(want)
	ref := s.h.PutValue(t, name(t), want)
	s.mustFetch(t, p, ref, want)
}

// testUpdate checks that a replaced value is seen by the next Fetch, and
// that Version, when the provider sets it, is stable for one content and
// changes with it (rotation detection relies on both).
func (s *suite) testUpdate(t *testing.T) {
	t.Parallel()
	s.needValue(t)
	p := s.provider(t)
	n := name(t)
	v1, v2 := s.secret(t), s.secret(t)
	ref := s.h.PutValue(t, n, v1)
	sec1 := s.mustFetch(t, p, ref, v1)
	sec1again := s.mustFetch(t, p, ref, v1)
	if sec1.Version != sec1again.Version {
		t.Errorf("Version changed between two fetches of the same content: %q, then %q", sec1.Version, sec1again.Version)
	}
	ref = s.h.PutValue(t, n, v2)
	sec2 := s.mustFetch(t, p, ref, v2)
	if sec1.Version != "" && sec1.Version == sec2.Version {
		t.Errorf("Version %q did not change when the value did", sec1.Version)
	}
}

// objectFields returns the fields the object subtests store, and which
// field reference selects which value.
func (s *suite) objectFields(t *testing.T) (map[string]any, map[string][]byte) {
	user, pass, dotted := s.secret(t), s.secret(t), s.secret(t)
	fields := map[string]any{
		"username": string(user),
		"password": string(pass),
		"tls.crt":  string(dotted), // a key containing dots, as in Kubernetes
	}
	want := map[string][]byte{"username": user, "password": pass, "tls.crt": dotted}
	if !s.h.FlatObjects {
		host, port, inner := s.secret(t), s.secret(t), s.secret(t)
		// "db.host" exists as a key itself and matches before db → host.
		fields["db.host"] = string(host)
		fields["db"] = map[string]any{
			"host": "shadowed-by-the-dotted-key",
			"port": string(port),
			"a":    map[string]any{"b": string(inner)},
		}
		want["db.host"] = host
		want["db.port"] = port
		want["db.a.b"] = inner
	}
	return fields, want
}

func (s *suite) testObject(t *testing.T) {
	t.Parallel()
	s.needObject(t)
	p := s.provider(t)
	fields, want := s.objectFields(t)
	ref := s.h.PutObject(t, name(t), fields)
	sec, err := p.Fetch(ctx(t), ref.Whole())
	s.sawError(t, err)
	if err != nil {
		t.Fatalf("Fetch(%s): %v", ref, err)
	}
	for _, f := range slices.Sorted(maps.Keys(want)) {
		got, err := sec.Field(f)
		s.sawError(t, err)
		if err != nil {
			t.Errorf("Field(%q): %v", f, err)
			continue
		}
		if !bytes.Equal(got.Bytes(), want[f]) {
			t.Errorf("Field(%q) returned a different value (%s, want %s)", f, got.Fingerprint(), providers.NewValue(want[f]).Fingerprint())
		}
	}
	_, top, err := sec.Whole()
	s.sawError(t, err)
	if err != nil {
		t.Fatalf("Whole: %v", err)
	}
	for k, v := range fields {
		str, ok := v.(string)
		if !ok {
			continue
		}
		if got, ok := top[k]; !ok || got.Reveal() != str {
			t.Errorf("Whole: top-level field %q missing or different", k)
		}
	}
	_, err = sec.Field("no-such-field")
	s.sawError(t, err)
	if !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("Field(no-such-field) = %v, want an error wrapping providers.ErrNotFound", err)
	}
}

func (s *suite) testNestedField(t *testing.T) {
	t.Parallel()
	s.needObject(t)
	if s.h.FlatObjects {
		t.Skip("Harness.FlatObjects: the store has no nested objects")
	}
	p := s.provider(t)
	leaf := s.secret(t)
	ref := s.h.PutObject(t, name(t), map[string]any{
		"outer": map[string]any{"middle": map[string]any{"leaf": string(leaf)}},
	})
	for _, f := range []string{"outer.middle.leaf"} {
		r := ref
		r.Field = f
		s.mustFetch(t, p, r, leaf)
	}
	r := ref
	r.Field = "outer.middle.nope"
	_, _, err := s.fetch(t, p, r)
	if !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("missing nested field: got %v, want an error wrapping providers.ErrNotFound", err)
	}
}

func (s *suite) testFieldOfNonObject(t *testing.T) {
	t.Parallel()
	s.needValue(t)
	p := s.provider(t)
	ref := s.h.PutValue(t, name(t), s.secret(t))
	if ref.Field != "" {
		t.Skip("PutValue stores values inside objects: every secret of the store has fields")
	}
	ref.Field = "some.field"
	_, _, err := s.fetch(t, p, ref)
	if !errors.Is(err, providers.ErrNotObject) {
		t.Errorf("#field of a plain value: got %v, want an error wrapping providers.ErrNotObject", err)
	}
}

func (s *suite) testNotFound(t *testing.T) {
	t.Parallel()
	p := s.provider(t)
	ref := s.h.Missing(t, name(t))
	_, err := p.Fetch(ctx(t), ref.Whole())
	s.sawError(t, err)
	if !errors.Is(err, providers.ErrNotFound) {
		t.Fatalf("Fetch(%s) of a missing secret: got %v, want an error wrapping providers.ErrNotFound", ref, err)
	}
	if errors.Is(err, providers.ErrPermissionDenied) {
		t.Errorf("Fetch(%s) of a missing secret also wraps ErrPermissionDenied: %v", ref, err)
	}
}

func (s *suite) testPermissionDenied(t *testing.T) {
	t.Parallel()
	if s.h.Denied == nil {
		t.Skip("Harness.Denied is nil: the store cannot deny access in this setup")
	}
	p := s.provider(t)
	ref := s.h.Denied(t, name(t), s.secret(t))
	_, err := p.Fetch(ctx(t), ref.Whole())
	s.sawError(t, err)
	if !errors.Is(err, providers.ErrPermissionDenied) {
		t.Fatalf("Fetch(%s) of a denied secret: got %v, want an error wrapping providers.ErrPermissionDenied", ref, err)
	}
	if errors.Is(err, providers.ErrNotFound) {
		t.Errorf("Fetch(%s) of a denied secret also wraps ErrNotFound: %v", ref, err)
	}
}

func (s *suite) testVersions(t *testing.T) {
	t.Parallel()
	if s.h.PutVersions == nil {
		t.Skip("Harness.PutVersions is nil: the store has no versions")
	}
	p := s.provider(t)
	values := [][]byte{s.secret(t), s.secret(t), s.secret(t)}
	vs := s.h.PutVersions(t, name(t), values)
	if len(vs.Pinned) != len(values) {
		t.Fatalf("PutVersions returned %d pinned references for %d values", len(vs.Pinned), len(values))
	}
	seen := map[string]int{}
	for i, ref := range vs.Pinned {
		sec := s.mustFetch(t, p, ref, values[i])
		if sec.Version != "" {
			if j, dup := seen[sec.Version]; dup {
				t.Errorf("versions %d and %d both report Version %q", j+1, i+1, sec.Version)
			}
			seen[sec.Version] = i
		}
	}
	latest := s.mustFetch(t, p, vs.Latest, values[len(values)-1])
	if last := s.mustFetch(t, p, vs.Pinned[len(values)-1], values[len(values)-1]); latest.Version != last.Version {
		t.Errorf("latest reports Version %q, its pinned reference %q", latest.Version, last.Version)
	}
	if vs.Missing.Scheme != "" {
		_, _, err := s.fetch(t, p, vs.Missing)
		if !errors.Is(err, providers.ErrNotFound) {
			t.Errorf("Fetch(%s) of a missing version: got %v, want an error wrapping providers.ErrNotFound", vs.Missing, err)
		}
	}
}

// testRecreated checks that a secret deleted and created again under its
// name reports another Version than before, by Fetch and by
// ProbeVersion. Stores that number versions per secret (GCP, Vault KV v2)
// start again at 1 after a re-creation: a Version that is only that
// number would make a rotation check keep the deleted secret's value.
func (s *suite) testRecreated(t *testing.T) {
	t.Parallel()
	s.needValue(t)
	if s.h.Delete == nil {
		t.Skip("Harness.Delete is nil")
	}
	p := s.provider(t)
	vp, probes := p.(providers.VersionProber)
	n := name(t)
	v1, v2 := s.secret(t), s.secret(t)
	ref := s.h.PutValue(t, n, v1)
	before := s.mustFetch(t, p, ref, v1)
	if before.Version == "" {
		t.Skip("the provider reports no Version")
	}
	s.h.Delete(t, n)
	if _, _, err := s.fetch(t, p, ref); !errors.Is(err, providers.ErrNotFound) {
		t.Fatalf("Fetch(%s) of a deleted secret: got %v, want an error wrapping providers.ErrNotFound", ref, err)
	}
	ref = s.h.PutValue(t, n, v2)
	after := s.mustFetch(t, p, ref, v2)
	if after.Version == before.Version {
		t.Errorf("the secret created again reports the deleted one's Version %q: a rotation check would keep the old value", before.Version)
	}
	if probes {
		got, err := vp.ProbeVersion(ctx(t), ref.Whole())
		s.sawError(t, err)
		if err != nil {
			t.Fatalf("ProbeVersion(%s): %v", ref, err)
		}
		if got != after.Version {
			t.Errorf("ProbeVersion(%s) of the secret created again = %q, Fetch reports %q", ref, got, after.Version)
		}
	}
}

// testCancelledContext checks that Fetch with a cancelled context returns
// promptly with an error wrapping context.Canceled.
func (s *suite) testCancelledContext(t *testing.T) {
	t.Parallel()
	p := s.provider(t)
	var ref providers.Ref
	switch {
	case s.h.PutValue != nil:
		ref = s.h.PutValue(t, name(t), s.secret(t))
	case s.h.PutObject != nil:
		ref = s.h.PutObject(t, name(t), map[string]any{"k": string(s.secret(t))})
	default:
		ref = s.h.Missing(t, name(t))
	}
	c, cancel := context.WithCancel(t.Context())
	cancel()
	done := make(chan error, 1)
	go func() {
		_, err := p.Fetch(c, ref.Whole())
		done <- err
	}()
	select {
	case err := <-done:
		s.sawError(t, err)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Fetch with a cancelled context: got %v, want an error wrapping context.Canceled", err)
		}
	case <-time.After(fetchTimeout):
		t.Fatalf("Fetch with a cancelled context did not return within %v", fetchTimeout)
	}
}

func (s *suite) testMalformed(t *testing.T) {
	t.Parallel()
	if s.h.PutMalformed == nil {
		t.Skip("Harness.PutMalformed is nil: the provider parses nothing that could be malformed")
	}
	p := s.provider(t)
	v := s.secret(t)
	ref := s.h.PutMalformed(t, name(t), v)
	got, _, err := s.fetch(t, p, ref)
	if err == nil {
		t.Fatalf("Fetch(%s) of a malformed secret succeeded (%d bytes)", ref, got.Len())
	}
}

// testConcurrent fetches a few secrets from many goroutines at once on one
// provider; run with -race.
func (s *suite) testConcurrent(t *testing.T) {
	t.Parallel()
	p := s.provider(t)
	type item struct {
		ref  providers.Ref
		want []byte
	}
	var items []item
	if s.h.PutValue != nil {
		for range 3 {
			v := s.secret(t)
			items = append(items, item{s.h.PutValue(t, name(t), v), v})
		}
	}
	if s.h.PutObject != nil {
		a, b := s.secret(t), s.secret(t)
		ref := s.h.PutObject(t, name(t), map[string]any{"a": string(a), "b": string(b)})
		ra, rb := ref, ref
		ra.Field, rb.Field = "a", "b"
		items = append(items, item{ra, a}, item{rb, b})
	}
	if len(items) == 0 {
		t.Skip("Harness.PutValue and PutObject are nil: nothing to fetch")
	}
	const workers, rounds = 8, 10
	var wg sync.WaitGroup
	var failures atomic.Int32
	errs := make(chan error, workers*rounds*len(items))
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				it := items[(w+r)%len(items)]
				got, _, err := s.fetch(t, p, it.ref)
				if err == nil && !bytes.Equal(got.Bytes(), it.want) {
					err = fmt.Errorf("fetch %s: different value", it.ref)
				}
				if err != nil {
					failures.Add(1)
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent fetch: %v", err)
	}
	if n := failures.Load(); n > 0 {
		t.Errorf("%d of %d concurrent fetches failed", n, workers*rounds)
	}
}

// testVersionProbe checks a providers.VersionProber: its version equals
// the Version of a Fetch of the same ref, and moves when the secret does.
func (s *suite) testVersionProbe(t *testing.T) {
	t.Parallel()
	p := s.provider(t)
	vp, ok := p.(providers.VersionProber)
	if !ok {
		t.Skip("the provider does not implement providers.VersionProber")
	}
	s.needValue(t)
	probe := func(ref providers.Ref) (string, error) {
		v, err := vp.ProbeVersion(ctx(t), ref.Whole())
		s.sawError(t, err)
		return v, err
	}
	n := name(t)
	v1, v2 := s.secret(t), s.secret(t)
	ref := s.h.PutValue(t, n, v1)
	for i, want := range [][]byte{v1, v2} {
		if i > 0 {
			ref = s.h.PutValue(t, n, want)
		}
		sec := s.mustFetch(t, p, ref, want)
		got, err := probe(ref)
		if err != nil {
			t.Fatalf("ProbeVersion(%s): %v", ref, err)
		}
		if got == "" || got != sec.Version {
			t.Errorf("ProbeVersion(%s) = %q, Fetch reports Version %q", ref, got, sec.Version)
		}
	}
	_, err := probe(s.h.Missing(t, name(t)))
	if !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("ProbeVersion of a missing secret: got %v, want an error wrapping providers.ErrNotFound", err)
	}
	c, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := vp.ProbeVersion(c, ref.Whole()); !errors.Is(err, context.Canceled) {
		s.sawError(t, err)
		t.Errorf("ProbeVersion with a cancelled context: got %v, want an error wrapping context.Canceled", err)
	}
}

// watchTimeout is the default of Harness.WatchTimeout, a failure bound,
// not a measurement.
const watchTimeout = 30 * time.Second

// testWatcher checks a providers.Watcher: a change to a watched secret is
// reported with its whole-secret ref, never with a ref that was not
// watched, never by concurrent calls of changed; Watch returns an error
// wrapping context.Canceled once its context is cancelled, and changed is
// not called after it returned.
func (s *suite) testWatcher(t *testing.T) {
	t.Parallel()
	p := s.provider(t)
	w, ok := p.(providers.Watcher)
	if !ok {
		t.Skip("the provider does not implement providers.Watcher")
	}
	s.needValue(t)
	nA, nB := name(t), name(t)
	refA := s.h.PutValue(t, nA, s.secret(t)).Whole()
	refB := s.h.PutValue(t, nB, s.secret(t)).Whole()
	for _, r := range []providers.Ref{refA, refB} {
		if _, _, err := s.fetch(t, p, r); err != nil {
			t.Fatalf("Fetch(%s): %v", r, err)
		}
	}

	var (
		mu       sync.Mutex
		inflight int
		returned bool
		problems []string
	)
	events := make(chan providers.Ref, 1024)
	changed := func(r providers.Ref) {
		mu.Lock()
		inflight++
		switch {
		case returned:
			problems = append(problems, "changed was called after Watch returned")
		case inflight > 1:
			problems = append(problems, "changed was called concurrently with itself")
		case r.Key() != refA.Key() && r.Key() != refB.Key():
			problems = append(problems, fmt.Sprintf("changed was called with %s, which was not watched", r))
		case r.Field != "":
			problems = append(problems, fmt.Sprintf("changed was called with %s, not a whole-secret ref", r))
		}
		mu.Unlock()
		select {
		case events <- r:
		default:
		}
		mu.Lock()
		inflight--
		mu.Unlock()
	}
	c, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		err := w.Watch(c, []providers.Ref{refA, refB}, changed)
		mu.Lock()
		returned = true
		mu.Unlock()
		done <- err
	}()

	// The watch may still be setting up: change A again every second
	// until a report of A arrives.
	bound := s.h.WatchTimeout
	if bound <= 0 {
		bound = watchTimeout
	}
	deadline := time.After(bound)
	tick := time.NewTicker(min(time.Second, bound/4))
	defer tick.Stop()
	s.h.PutValue(t, nA, s.secret(t))
wait:
	for {
		select {
		case r := <-events:
			if r.Key() == refA.Key() {
				break wait
			}
		case <-tick.C:
			s.h.PutValue(t, nA, s.secret(t))
		case err := <-done:
			s.sawError(t, err)
			t.Fatalf("Watch returned before it reported a change: %v", err)
		case <-deadline:
			t.Fatalf("a change of %s was not reported within %v", refA, bound)
		}
	}

	cancel()
	select {
	case err := <-done:
		s.sawError(t, err)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Watch after its context was cancelled returned %v, want an error wrapping context.Canceled", err)
		}
	case <-time.After(watchTimeout):
		t.Fatalf("Watch did not return within %v of its context's cancellation", watchTimeout)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, pr := range problems {
		t.Error(pr)
	}
}

// testLeaseRenewer checks a providers.LeaseRenewer with a secret from
// Harness.PutLeased: its Fetch carries a renewable lease, which Renew
// extends; a lease marked not renewable, an expired one and one the store
// does not know are refused (the first and last wrapping
// providers.ErrLeaseNotRenewable, so that the caller fetches afresh); a
// cancelled context is honoured.
func (s *suite) testLeaseRenewer(t *testing.T) {
	t.Parallel()
	p := s.provider(t)
	lr, ok := p.(providers.LeaseRenewer)
	if !ok {
		t.Skip("the provider does not implement providers.LeaseRenewer")
	}
	if s.h.PutLeased == nil {
		t.Skip("Harness.PutLeased is nil: the store has no expiring secrets in this setup")
	}
	ref := s.h.PutLeased(t, name(t)).Whole()
	sec, err := p.Fetch(ctx(t), ref)
	s.sawError(t, err)
	if err != nil {
		t.Fatalf("Fetch(%s): %v", ref, err)
	}
	l := sec.Lease
	if l == nil || l.ID == "" || l.Duration <= 0 || !l.Renewable || l.Obtained.IsZero() {
		t.Fatalf("Fetch(%s) returned lease %+v, want a renewable lease with an ID, a duration and the time obtained", ref, l)
	}
	renew := func(c context.Context, l providers.Lease) (providers.Lease, error) {
		got, err := lr.Renew(c, ref, l)
		s.sawError(t, err)
		return got, err
	}
	got, err := renew(ctx(t), *l)
	if err != nil {
		t.Fatalf("Renew of a fresh lease: %v", err)
	}
	if got.ID == "" || got.Duration <= 0 || got.Obtained.IsZero() {
		t.Errorf("Renew returned %+v, want a lease with an ID, a duration and the time obtained", got)
	}

	notRenewable := *l
	notRenewable.Renewable = false
	if _, err := renew(ctx(t), notRenewable); !errors.Is(err, providers.ErrLeaseNotRenewable) {
		t.Errorf("Renew of a lease not renewable = %v, want an error wrapping providers.ErrLeaseNotRenewable", err)
	}
	expired := *l
	expired.Obtained = time.Now().Add(-2 * l.Duration)
	if _, err := renew(ctx(t), expired); err == nil {
		t.Error("Renew of an expired lease succeeded")
	}
	unknown := *l
	unknown.ID = l.ID + "-" + randomHex(t, 4)
	if _, err := renew(ctx(t), unknown); !errors.Is(err, providers.ErrLeaseNotRenewable) {
		t.Errorf("Renew of a lease the store does not know = %v, want an error wrapping providers.ErrLeaseNotRenewable", err)
	}
	c, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := renew(c, *l); !errors.Is(err, context.Canceled) {
		t.Errorf("Renew with a cancelled context = %v, want an error wrapping context.Canceled", err)
	}
}

func (s *suite) testCloseUnused(t *testing.T) {
	t.Parallel()
	p := s.h.New(t)
	if err := p.Close(); err != nil {
		s.sawError(t, err)
		t.Errorf("Close of an unused provider: %v", err)
	}
}

// AssertRedacted fails t when text (an error message, a log line) holds
// any of values: whole, as a run of 12 or more of its bytes, or in base64,
// hex or percent-encoding. It reports which value by index and fingerprint, never by
// content.
func AssertRedacted(t testing.TB, text string, values ...[]byte) {
	t.Helper()
	for i, v := range values {
		if where := leak(text, v); where != "" {
			// The text itself is not printed: it holds the value in some
			// encoding, and a test failure message must not leak it either.
			t.Errorf("a secret value (#%d, %s) appears %s in a text of %d bytes",
				i, providers.NewValue(v).Fingerprint(), where, len(text))
		}
	}
}

// AssertErrorRedacted is AssertRedacted of the message of err and of
// every error it wraps (a wrapped error can be printed on its own, or
// read with errors.As).
func AssertErrorRedacted(t testing.TB, err error, values ...[]byte) {
	t.Helper()
	for depth, todo := 0, []error{err}; len(todo) > 0; depth++ {
		var next []error
		for _, e := range todo {
			if e == nil {
				continue
			}
			for i, v := range values {
				if where := leak(e.Error(), v); where != "" {
					t.Errorf("a secret value (#%d, %s) appears %s in an error wrapped %d deep (%T)",
						i, providers.NewValue(v).Fingerprint(), where, depth, e)
				}
			}
			switch u := e.(type) {
			case interface{ Unwrap() error }:
				next = append(next, u.Unwrap())
			case interface{ Unwrap() []error }:
				next = append(next, u.Unwrap()...)
			}
		}
		todo = next
	}
}

const window = 12

func leak(text string, v []byte) string {
	if len(v) == 0 {
		return ""
	}
	if strings.Contains(text, string(v)) {
		return "whole"
	}
	for i := 0; i+window <= len(v); i++ {
		if strings.Contains(text, string(v[i:i+window])) {
			return "in part"
		}
	}
	if len(v) >= window/2 {
		if strings.Contains(text, base64.StdEncoding.EncodeToString(v)) ||
			strings.Contains(text, base64.RawURLEncoding.EncodeToString(v)) {
			return "in base64"
		}
		if strings.Contains(strings.ToLower(text), hex.EncodeToString(v)) {
			return "in hex"
		}
		if q := url.QueryEscape(string(v)); q != string(v) && strings.Contains(text, q) {
			return "percent-encoded"
		}
	}
	return ""
}

// Credential returns a random credential for a test whose fake server
// echoes what it was sent: long enough to be cut short, and holding
// characters that base64 and percent-encoding change.
func Credential(t testing.TB) string {
	return "kw/" + randomHex(t, 12) + "+c&r=d " + randomHex(t, 12)
}

// Echoes are the ways a server's message may quote a credential it was
// sent, by name: raw, base64'd, percent-encoded, and cut short (its first
// two thirds, then more text). A fake server answers each in turn; the
// error must hold none (see AssertRedacted).
func Echoes(credential string) map[string]string {
	return map[string]string{
		"raw":             credential,
		"base64":          base64.StdEncoding.EncodeToString([]byte(credential)),
		"percent-encoded": url.QueryEscape(credential),
		"cut short":       credential[:len(credential)*2/3] + "... (truncated)",
	}
}
