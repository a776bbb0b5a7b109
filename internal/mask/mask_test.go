package mask

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestForms(t *testing.T) {
	t.Parallel()
	const v = "hunter2 db/pass"
	kinds := func(forms []Form) map[string]string {
		out := map[string]string{}
		for _, f := range forms {
			out[string(f.Bytes)] = f.Kind
		}
		return out
	}
	got := kinds(Forms([]byte(v), 6))
	want := map[string]string{
		v: KindRaw,
		base64.StdEncoding.EncodeToString([]byte(v)):   KindBase64,
		hex.EncodeToString([]byte(v)):                  KindHex,
		strings.ToUpper(hex.EncodeToString([]byte(v))): KindHex,
		url.QueryEscape(v):                             KindURL,
		url.PathEscape(v):                              KindURL,
		"hunter2+db%2fpass":                            KindURL,
	}
	for form, kind := range want {
		if got[form] != kind {
			t.Errorf("form %q: kind %q, want %q", form, got[form], kind)
		}
	}

	bin := []byte("\xfb\xff\xbf>>>???")
	if got := kinds(Forms(bin, 6)); got[base64.RawURLEncoding.EncodeToString(bin)] != KindBase64URL {
		t.Errorf("URL-alphabet base64 missing: %v", got)
	}

	multi := "-----BEGIN KEY-----\r\nabcdefgh\nxy\rlast-line-here\n"
	got = kinds(Forms([]byte(multi), 6))
	for _, line := range []string{"-----BEGIN KEY-----", "abcdefgh", "last-line-here"} {
		if got[line] != KindLine {
			t.Errorf("line %q: kind %q, want line", line, got[line])
		}
	}
	if _, ok := got["xy"]; ok {
		t.Error("a line shorter than the minimum length is a form")
	}
	if got[`-----BEGIN KEY-----\r\nabcdefgh\nxy\rlast-line-here`] != KindJSON {
		t.Error("JSON-escaped form missing")
	}

	if f := Forms([]byte("12345"), 6); f != nil {
		t.Errorf("value below the minimum length has forms: %d", len(f))
	}
	for _, f := range Forms([]byte("abcdef"), 6) {
		if len(f.Bytes) < 6 {
			t.Errorf("form %q (%s) shorter than the minimum", f.Bytes, f.Kind)
		}
	}
}

// TestBase64Shifted: a value inside a longer base64-encoded blob is caught
// at each of the three alignments, in both alphabets.
func TestBase64Shifted(t *testing.T) {
	t.Parallel()
	v := []byte("sk_live_4eC39HqLyjWDarjtT1zdp7dc")
	set := NewSet([]Secret{{Name: "K", Value: v}}, 0)
	for k := 0; k < 3; k++ {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			blob := append(append(bytes.Repeat([]byte{'x'}, 10+k), v...), "tail-bytes"...)
			text := []byte("data: " + enc.EncodeToString(blob) + "\n")
			found := false
			set.Matcher().Find(text, func(int, int, int) bool { found = true; return false })
			if !found {
				t.Errorf("shift %d: value not found in base64 blob", k)
			}
		}
	}
}

// naiveFind returns every (pattern, start) occurrence, by brute force.
func naiveFind(pats [][]byte, text []byte) map[[2]int]bool {
	out := map[[2]int]bool{}
	seen := map[string]int{}
	for i, p := range pats {
		if len(p) < MinPatternLength {
			continue
		}
		if _, dup := seen[string(p)]; dup {
			continue
		}
		seen[string(p)] = i
		for s := 0; s+len(p) <= len(text); s++ {
			if bytes.Equal(text[s:s+len(p)], p) {
				out[[2]int{i, s}] = true
			}
		}
	}
	return out
}

func TestMatcherAgainstNaive(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 300; iter++ {
		alpha := "abc"[:1+r.IntN(3)] + "\n"
		var pats [][]byte
		for range 1 + r.IntN(8) {
			pats = append(pats, randBytes(r, alpha, 3+r.IntN(8)))
		}
		text := randBytes(r, alpha, r.IntN(200))
		m := NewMatcher(pats)
		got := map[[2]int]bool{}
		m.Find(text, func(p, s, e int) bool {
			if e-s != len(pats[p]) {
				t.Fatalf("end-start %d != len %d", e-s, len(pats[p]))
			}
			if got[[2]int{p, s}] {
				t.Fatalf("occurrence reported twice")
			}
			got[[2]int{p, s}] = true
			return true
		})
		want := naiveFind(pats, text)
		if len(got) != len(want) {
			t.Fatalf("iter %d: %d occurrences, want %d (patterns %q, text %q)", iter, len(got), len(want), pats, text)
		}
		for k := range want {
			if !got[k] {
				t.Fatalf("iter %d: missed pattern %d at %d", iter, k[0], k[1])
			}
		}
		// Pending agrees with a naive longest-proper-prefix suffix.
		wantPending := 0
		for p := 0; p < len(text) && wantPending == 0; p++ {
			for _, pat := range pats {
				if len(pat) >= MinPatternLength && len(pat) > len(text)-p && bytes.HasPrefix(pat, text[p:]) {
					wantPending = len(text) - p
					break
				}
			}
		}
		if got := m.Pending(text, 0); got != wantPending {
			t.Fatalf("iter %d: Pending %d, want %d (patterns %q, text %q)", iter, got, wantPending, pats, text)
		}
	}
}

func randBytes(r *rand.Rand, alpha string, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = alpha[r.IntN(len(alpha))]
	}
	return b
}

// fakeClock is an injected idle timer that fires only when the test says.
type fakeClock struct {
	mu     sync.Mutex
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	f       func()
	stopped bool
}

func (c *fakeClock) AfterFunc(_ time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// fire runs every timer that is still armed and reports how many ran.
func (c *fakeClock) fire() int {
	c.mu.Lock()
	var due []*fakeTimer
	for _, t := range c.timers {
		if !t.stopped {
			t.stopped = true
			due = append(due, t)
		}
	}
	c.timers = nil
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
	return len(due)
}

func TestWriterIdleAndNewline(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{}
	set := NewSet([]Secret{{Name: "PW", Value: []byte("hunter2-db-password")}}, 0)
	m := New(set, Options{AfterFunc: clock.AfterFunc})
	var out bytes.Buffer
	w := m.Writer(&out)

	steps := []struct {
		write string // "" means: fire the idle timer
		want  string // everything written so far
	}{
		{"building…\n", "building…\n"},             // a line is written at once
		{"password: hun", "building…\npassword: "}, // a possible secret is held back
		{"ter2-db", "building…\npassword: "},
		{"-password and more\n", "building…\npassword: *** and more\n"},
		{"prompt> hunter2", "building…\npassword: *** and more\nprompt> "},
		{"", "building…\npassword: *** and more\nprompt> hunter2"},                    // idle: held bytes go out
		{"-db-password\n", "building…\npassword: *** and more\nprompt> hunter2***\n"}, // but the rest is masked
	}
	for i, s := range steps {
		if s.write == "" {
			if n := clock.fire(); n != 1 {
				t.Fatalf("step %d: %d timers armed, want 1", i, n)
			}
		} else if _, err := w.Write([]byte(s.write)); err != nil {
			t.Fatal(err)
		}
		if out.String() != s.want {
			t.Fatalf("step %d: output %q, want %q", i, out.String(), s.want)
		}
	}
	if n := clock.fire(); n != 0 {
		t.Errorf("%d timers armed with nothing held back", n)
	}
	if _, err := w.Write([]byte("end hunter2-d")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "end hunter2-d") {
		t.Errorf("Close did not flush: %q", out.String())
	}
	if _, err := w.Write([]byte("x")); err != ErrClosed {
		t.Errorf("Write after Close: %v", err)
	}
}

func TestWriterLearn(t *testing.T) {
	t.Parallel()
	m := New(NewSet([]Secret{{Name: "A", Value: []byte("old-secret-value")}}, 0), Options{})
	var out bytes.Buffer
	w := m.Writer(&out)
	fmt.Fprint(w, "1 old-secret-value new-secret-value\n")
	if short := m.Learn(Secret{Name: "A", Value: []byte("new-secret-value")}, Secret{Name: "PIN", Value: []byte("1234")}); len(short) != 1 || short[0] != "PIN" {
		t.Errorf("too short: %v, want [PIN]", short)
	}
	fmt.Fprint(w, "2 old-secret-value new-secret-value\n")
	w.Close()
	want := "1 *** new-secret-value\n2 *** ***\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
	if short := m.Learn(Secret{Name: "PIN", Value: []byte("1234")}); short != nil {
		t.Errorf("a known value reported again: %v", short)
	}
}

// TestLearnKeepsRotatedBounded: a name's earlier values stay masked, the
// last KeepRotated of them, so a value that changes every few minutes (an
// access token) does not grow the Masker without bound.
func TestLearnKeepsRotatedBounded(t *testing.T) {
	t.Parallel()
	m := New(nil, Options{})
	var vals []string
	for i := range 20 {
		v := fmt.Sprintf("token-value-%03d", i)
		vals = append(vals, v)
		m.Learn(Secret{Name: "token:api", Value: []byte(v)}, Secret{Name: "DB", Value: []byte("db-password")})
	}
	for i, v := range vals {
		masked := m.String("x "+v+" y") == "x *** y"
		if want := i >= len(vals)-1-KeepRotated; masked != want {
			t.Errorf("value %d of 20: masked %v, want %v", i, masked, want)
		}
	}
	if m.String("db-password") != "***" {
		t.Error("another name's value was forgotten")
	}
}

// TestRedacting: whole messages are masked in one Write each, every form,
// with nothing held back.
func TestRedacting(t *testing.T) {
	t.Parallel()
	m := New(nil, Options{})
	m.Learn(Secret{Name: "K", Value: []byte(`s3cr3t <&> "quoted"`)})
	var out bytes.Buffer
	w := m.Redacting(&out)
	for _, msg := range []string{
		"plain s3cr3t <&> \"quoted\" end\n",
		`{"err":"s3cr3t \u003c\u0026\u003e \"quoted\""}` + "\n",
		"msg=\"bad: s3cr3t <&> \\\"quoted\\\"\"\n",
		"GET /x?k=s3cr3t+%3C%26%3E+%22quoted%22\n",
	} {
		out.Reset()
		if n, err := w.Write([]byte(msg)); err != nil || n != len(msg) {
			t.Fatalf("Write: %d, %v", n, err)
		}
		if !strings.Contains(out.String(), "***") || strings.Contains(out.String(), "s3cr3t") {
			t.Errorf("message not masked: %d bytes out", out.Len())
		}
	}
	out.Reset()
	w.Write([]byte("held? s3cr3t <&"))
	if out.String() != "held? s3cr3t <&" {
		t.Errorf("a message that only begins a value was changed or held back")
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	f.n++
	return 0, fmt.Errorf("disk full")
}

func TestWriterError(t *testing.T) {
	t.Parallel()
	m := New(nil, Options{})
	fw := &failWriter{}
	w := m.Writer(fw)
	if _, err := w.Write([]byte("x\n")); err == nil {
		t.Fatal("no error from a failing writer")
	}
	if _, err := w.Write([]byte("y\n")); err == nil || fw.n != 1 {
		t.Fatalf("error not sticky: err %v, %d writes", err, fw.n)
	}
}

// TestWriterSplitAcrossPause: a value written in two parts with a pause
// longer than the idle time between them (the held-back beginning had to be
// written out) never comes out whole: its rest is masked.
func TestWriterSplitAcrossPause(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(8, 9))
	for iter := range 300 {
		v := randBytes(r, "abcdefghijklmnopqrstuvwxyz0123456789-_", 8+r.IntN(40))
		clock := &fakeClock{}
		m := New(NewSet([]Secret{{Name: "V", Value: v}}, 0), Options{AfterFunc: clock.AfterFunc})
		var out bytes.Buffer
		w := m.Writer(&out)
		k := 1 + r.IntN(len(v)-1)
		fmt.Fprintf(w, "log: %s", v[:k])
		if n := clock.fire(); n != 1 {
			t.Fatalf("iter %d: %d idle timers, want 1", iter, n)
		}
		fmt.Fprintf(w, "%s end\n", v[k:])
		w.Close()
		want := "log: " + string(v[:k]) + "*** end\n"
		if out.String() != want {
			t.Fatalf("iter %d: split at %d of %d: output %q, want the beginning and *** for the rest", iter, k, len(v), out.String())
		}
	}
}

// TestWriterSplitPEM: a multi-line value written in two parts with a long
// pause, cut inside a line, shows no line whole: complete lines are masked,
// and of the line cut in two only the part before the pause is visible.
func TestWriterSplitPEM(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(4, 4))
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for iter := range 100 {
		var pem bytes.Buffer
		pem.WriteString("-----BEGIN PRIVATE KEY-----\n")
		var lines []string
		for range 3 + r.IntN(10) {
			l := string(randBytes(r, b64, 64))
			lines = append(lines, l)
			pem.WriteString(l + "\n")
		}
		pem.WriteString("-----END PRIVATE KEY-----\n")
		v := pem.Bytes()
		clock := &fakeClock{}
		m := New(NewSet([]Secret{{Name: "KEY", Value: v}}, 0), Options{AfterFunc: clock.AfterFunc})
		var out bytes.Buffer
		w := m.Writer(&out)
		k := 30 + r.IntN(len(v)-60)
		w.Write(v[:k])
		clock.fire()
		w.Write(v[k:])
		w.Close()
		for i, l := range lines {
			if bytes.Contains(out.Bytes(), []byte(l)) {
				t.Fatalf("iter %d: line %d of the key survives", iter, i)
			}
		}
		// The rest of the line cut in two (from a random base64 alphabet: it
		// occurs nowhere else).
		rest := v[k:]
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			rest = rest[:i]
		}
		if len(rest) >= 8 && bytes.Contains(out.Bytes(), rest) {
			t.Fatalf("iter %d: the rest of the line cut by the pause is not masked", iter)
		}
	}
}

// TestWriterHoldsAtBufferBoundary: a Write of a block-buffered program's
// full buffer (a multiple of BlockSize) that ends in the beginning of a
// value arms no idle timer: the beginning waits for the next buffer, however
// late, and the value is masked whole.
func TestWriterHoldsAtBufferBoundary(t *testing.T) {
	t.Parallel()
	v := []byte("sk_live_4eC39HqLyjWDarjtT1zdp7dc")
	for _, size := range []int{1024, 4096, 8192} {
		clock := &fakeClock{}
		m := New(NewSet([]Secret{{Name: "K", Value: v}}, 0), Options{AfterFunc: clock.AfterFunc})
		var out bytes.Buffer
		w := m.Writer(&out)
		buf := append(bytes.Repeat([]byte("x"), size-10), v[:10]...)
		w.Write(buf)
		if n := clock.fire(); n != 0 {
			t.Fatalf("size %d: an idle timer was armed after a full buffer", size)
		}
		w.Write(append(append([]byte(nil), v[10:]...), '\n'))
		w.Close()
		want := string(bytes.Repeat([]byte("x"), size-10)) + "***\n"
		if out.String() != want {
			t.Fatalf("size %d: value not masked whole across the buffer boundary", size)
		}
	}
	// Any other size is interactive output: the idle timer runs.
	clock := &fakeClock{}
	m := New(NewSet([]Secret{{Name: "K", Value: v}}, 0), Options{AfterFunc: clock.AfterFunc})
	w := m.Writer(io.Discard)
	w.Write(append(bytes.Repeat([]byte("x"), 4000), v[:10]...))
	if n := clock.fire(); n != 1 {
		t.Fatalf("%d idle timers after a short write, want 1", n)
	}
}
