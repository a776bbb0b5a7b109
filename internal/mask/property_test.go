package mask

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"testing"
)

// valueAlphabet is what random secret values are made of: printable ASCII
// without '*' (the replacement character), line breaks, and bytes that are
// not UTF-8.
var valueAlphabet = func() string {
	var b []byte
	for c := byte(' '); c < 0x7f; c++ {
		if c != '*' {
			b = append(b, c)
		}
	}
	return string(b) + "\n\r\n\x00\xfe\xff<<"
}()

// fillerAlphabet overlaps the values' alphabet, so that partial matches
// are frequent.
const fillerAlphabet = "abcdefghijklmnopqrstuvwxyzABC0123456789 =:/+-_.\n"

func randValue(r *rand.Rand) []byte {
	return randBytes(r, valueAlphabet, 6+r.IntN(43))
}

// encodings returns the ways the property test writes value into output.
func encodings(r *rand.Rand, v []byte) [][]byte {
	junk := func() []byte { return randBytes(r, valueAlphabet, r.IntN(7)) }
	blob := append(append(junk(), v...), junk()...)
	out := [][]byte{
		v,
		[]byte(base64.StdEncoding.EncodeToString(v)),
		[]byte(base64.RawStdEncoding.EncodeToString(v)),
		[]byte(base64.URLEncoding.EncodeToString(v)),
		[]byte(base64.RawURLEncoding.EncodeToString(v)),
		[]byte(base64.StdEncoding.EncodeToString(blob)),
		[]byte(base64.URLEncoding.EncodeToString(blob)),
		[]byte(hex.EncodeToString(v)),
		bytes.ToUpper([]byte(hex.EncodeToString(v))),
		[]byte(url.QueryEscape(string(v))),
		[]byte(url.PathEscape(string(v))),
	}
	return append(out, splitLines(v)...)
}

// writeChunked writes text to w in random pieces and closes w.
func writeChunked(t testing.TB, r *rand.Rand, w *Writer, text []byte) {
	t.Helper()
	for len(text) > 0 {
		n := 1 + r.IntN(min(len(text), 1+r.IntN(64)))
		if _, err := w.Write(text[:n]); err != nil {
			t.Fatal(err)
		}
		text = text[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// survivor returns a description of a form of a secret in set that occurs
// in out, or "".
func survivor(set *Set, out []byte) string {
	msg := ""
	set.Matcher().Find(out, func(p, s, _ int) bool {
		msg = fmt.Sprintf("a %s form of %s survives at offset %d", set.Kind(p), set.Owner(p), s)
		return false
	})
	return msg
}

// TestMaskProperty: for random values, random output mixing them (raw,
// encoded, inside encoded blobs, line by line, and truncated) with filler,
// and random write sizes, no form of any value survives the mask (the idle
// timer never fires: the test's clock is fake); and output without a
// secret passes through byte for byte.
func TestMaskProperty(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 11))
	iters := 2000
	if testing.Short() {
		iters = 200
	}
	for iter := range iters {
		var secrets []Secret
		for i := range 1 + r.IntN(6) {
			secrets = append(secrets, Secret{Name: fmt.Sprintf("S%d", i), Value: randValue(r)})
		}
		set := NewSet(secrets, 0)
		clock := &fakeClock{}
		m := New(set, Options{AfterFunc: clock.AfterFunc})

		var text []byte
		for range 1 + r.IntN(12) {
			text = append(text, randBytes(r, fillerAlphabet, r.IntN(40))...)
			v := secrets[r.IntN(len(secrets))].Value
			enc := encodings(r, v)
			e := enc[r.IntN(len(enc))]
			if len(e) > 0 && r.IntN(5) == 0 {
				e = e[:r.IntN(len(e))] // a truncated form is not a form
			}
			text = append(text, e...)
		}
		var out bytes.Buffer
		writeChunked(t, r, m.Writer(&out), text)
		if msg := survivor(set, out.Bytes()); msg != "" {
			t.Fatalf("iter %d: %s", iter, msg)
		}
		for _, s := range secrets {
			if bytes.Contains(out.Bytes(), s.Value) {
				t.Fatalf("iter %d: the value of %s survives", iter, s.Name)
			}
		}

		// Secret-free output is untouched, whatever the write sizes.
		clean := randBytes(r, fillerAlphabet, r.IntN(2000))
		if survivor(set, clean) != "" {
			continue // the filler happens to contain a form
		}
		out.Reset()
		writeChunked(t, r, m.Writer(&out), clean)
		if !bytes.Equal(out.Bytes(), clean) {
			t.Fatalf("iter %d: secret-free output changed (%d bytes in, %d out)", iter, len(clean), out.Len())
		}
	}
}

// FuzzMask checks the property for fuzzer-chosen values, surrounding text
// and write sizes.
func FuzzMask(f *testing.F) {
	f.Add([]byte("hunter2-db-password"), []byte("log line\npassword="), []byte("\n"), uint64(1))
	f.Add([]byte("line-one\nline-two\r\n"), []byte("x"), []byte("y"), uint64(2))
	f.Add([]byte("a<<b::add-mask::c"), []byte(""), []byte("%"), uint64(3))
	f.Fuzz(func(t *testing.T, value, before, after []byte, seed uint64) {
		if len(value) < DefaultMinLength || bytes.Contains(value, []byte("*")) ||
			bytes.Contains(before, []byte("*")) || bytes.Contains(after, []byte("*")) {
			return
		}
		r := rand.New(rand.NewPCG(seed, seed>>1))
		set := NewSet([]Secret{{Name: "V", Value: value}}, 0)
		m := New(set, Options{AfterFunc: (&fakeClock{}).AfterFunc})
		var text []byte
		for _, e := range encodings(r, value) {
			text = append(append(append(text, before...), e...), after...)
		}
		var out bytes.Buffer
		writeChunked(t, r, m.Writer(&out), text)
		if msg := survivor(set, out.Bytes()); msg != "" {
			t.Fatal(msg)
		}
		clean := append(append([]byte(nil), before...), after...)
		if survivor(set, clean) == "" {
			out.Reset()
			writeChunked(t, r, m.Writer(&out), clean)
			if !bytes.Equal(out.Bytes(), clean) {
				t.Fatalf("secret-free output changed")
			}
		}
	})
}

// benchText is log-like output without secrets.
func benchText(size int) []byte {
	r := rand.New(rand.NewPCG(3, 4))
	words := []string{"GET", "/api/v1/items", "200", "in", "12ms", "user=42", "INFO", "worker", "started", "job", "id=7f3a9c", "DEBUG", "cache", "hit", "ok"}
	var b bytes.Buffer
	for b.Len() < size {
		b.WriteString(words[r.IntN(len(words))])
		if r.IntN(8) == 0 {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:size]
}

// benchSecrets returns n random API-key-like secrets.
func benchSecrets(n int) []Secret {
	r := rand.New(rand.NewPCG(5, 6))
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	out := make([]Secret, n)
	for i := range out {
		out[i] = Secret{Name: fmt.Sprintf("S%d", i), Value: randBytes(r, alnum, 20+r.IntN(30))}
	}
	return out
}

func BenchmarkWriter(b *testing.B) {
	text := benchText(4 << 20)
	hostile := func(n int) []Secret {
		var out []Secret
		for i, v := range hostileValues(rand.New(rand.NewPCG(9, 9)), n) {
			out = append(out, Secret{Name: fmt.Sprintf("H%d", i), Value: v})
		}
		return out
	}
	// The same text with one of the secrets in it every 512 bytes on
	// average: the cost of replacing them.
	planted := func(secrets []Secret) []byte {
		r := rand.New(rand.NewPCG(7, 8))
		out := make([]byte, 0, len(text)+len(text)/16)
		for p := text; len(p) > 0; {
			k := min(len(p), r.IntN(1024))
			out = append(append(out, p[:k]...), secrets[r.IntN(len(secrets))].Value...)
			p = p[k:]
		}
		return out
	}
	for _, c := range []struct {
		name    string
		secrets []Secret
		plant   bool
	}{
		{"secrets=10", benchSecrets(10), false},
		{"secrets=500", benchSecrets(500), false},
		// Values full of characters that encoders escape: each has dozens
		// of forms (JSON, percent, string, HTML escaping).
		{"hostile=500", hostile(500), false},
		{"secrets=10/occurring", benchSecrets(10), true},
	} {
		b.Run(c.name, func(b *testing.B) {
			m := New(NewSet(c.secrets, 0), Options{})
			w := m.Writer(io.Discard)
			text := text
			if c.plant {
				text = planted(c.secrets)
			}
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			for range b.N {
				for p := text; len(p) > 0; {
					k := min(len(p), 32<<10)
					if _, err := w.Write(p[:k]); err != nil {
						b.Fatal(err)
					}
					p = p[k:]
				}
			}
			w.Close()
		})
	}
}

func BenchmarkNewSet(b *testing.B) {
	secrets := benchSecrets(500)
	for range b.N {
		NewSet(secrets, 0)
	}
}

// TestMaskPropertyWithPauses is TestMaskProperty with the idle timer firing
// at random points between writes (a program pausing in the middle of a
// value): beginnings of values come out, but no value or form of a value
// ever comes out whole.
func TestMaskPropertyWithPauses(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(17, 19))
	iters := 2000
	if testing.Short() {
		iters = 200
	}
	for iter := range iters {
		var secrets []Secret
		for i := range 1 + r.IntN(4) {
			secrets = append(secrets, Secret{Name: fmt.Sprintf("S%d", i), Value: randValue(r)})
		}
		set := NewSet(secrets, 0)
		clock := &fakeClock{}
		m := New(set, Options{AfterFunc: clock.AfterFunc})
		var text []byte
		for range 1 + r.IntN(8) {
			text = append(text, randBytes(r, fillerAlphabet, r.IntN(40))...)
			enc := encodings(r, secrets[r.IntN(len(secrets))].Value)
			text = append(text, enc[r.IntN(len(enc))]...)
		}
		var out bytes.Buffer
		w := m.Writer(&out)
		for p := text; len(p) > 0; {
			n := 1 + r.IntN(min(len(p), 1+r.IntN(64)))
			if _, err := w.Write(p[:n]); err != nil {
				t.Fatal(err)
			}
			p = p[n:]
			if r.IntN(3) == 0 {
				clock.fire()
			}
		}
		w.Close()
		if msg := survivor(set, out.Bytes()); msg != "" {
			t.Fatalf("iter %d: %s", iter, msg)
		}
	}
}
