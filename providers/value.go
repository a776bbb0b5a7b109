package providers

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
)

// Redacted is what every printing path of a Value shows instead of the bytes.
const Redacted = "REDACTED"

// Value holds secret bytes. Every way Go has of printing or encoding a value
// (fmt verbs, slog, encoding/json, encoding.TextMarshaler) yields "REDACTED", so a
// Value that ends up in a log line, an error or a panic leaks nothing. Only
// Bytes and String-free accessors reveal the content, and only on purpose.
//
// A Value is immutable by convention: callers must not modify the slice that
// Bytes returns. The zero Value is empty.
type Value struct {
	// p points at an interface holding the []byte. fmt cannot call Format
	// on a Value that is an unexported field of another struct and prints
	// such a field by reflection: a []byte or *[]byte would show its
	// bytes there (as numbers, or in a %!s(*[]uint8=&[…]) bad-verb note),
	// a pointer to an interface only its address.
	p *any
	// Values are not comparable with ==; use Equal.
	_ [0]func()
}

// wrap returns a Value holding b itself (not a copy).
func wrap(b []byte) Value {
	if b == nil {
		return Value{}
	}
	var box any = b
	return Value{p: &box}
}

func (v Value) bytes() []byte {
	if v.p == nil {
		return nil
	}
	b, _ := (*v.p).([]byte)
	return b
}

// NewValue returns a Value holding a copy of b.
func NewValue(b []byte) Value {
	return wrap(append([]byte(nil), b...))
}

// StringValue returns a Value holding s.
func StringValue(s string) Value {
	return wrap([]byte(s))
}

// Bytes returns the secret bytes. The caller must not modify them.
func (v Value) Bytes() []byte { return v.bytes() }

// Reveal returns the secret as a string. Use it only where the value is
// deliberately handed on (a file, the child's environment, stdout of `get`).
func (v Value) Reveal() string { return string(v.bytes()) }

// Len is the length of the secret in bytes.
func (v Value) Len() int { return len(v.bytes()) }

// Equal reports whether v and o hold the same bytes.
func (v Value) Equal(o Value) bool { return string(v.bytes()) == string(o.bytes()) }

// Fingerprint identifies the content within this process: it is
// ContentVersion of the bytes, keyed by a random per-process key. Equal
// values give equal fingerprints in one process (for change detection and
// test messages); fingerprints of two processes cannot be compared, nor
// used to guess a value offline. To compare environments, use
// KeyedFingerprint with a key the operator holds.
func (v Value) Fingerprint() string { return ContentVersion(v.bytes()) }

// MinFingerprintKeyLen is the shortest key KeyedFingerprint accepts.
const MinFingerprintKeyLen = 16

// KeyedFingerprint is a short HMAC-SHA256 of the content under key
// ("hmac-sha256:" and the first 16 hex digits), so that environments whose
// operators share the key can compare values without revealing them, and
// nobody without the key can test guesses against a fingerprint (an
// unkeyed hash of a 4-digit PIN is reversed in a few thousand tries). It
// panics when key is shorter than MinFingerprintKeyLen.
func (v Value) KeyedFingerprint(key []byte) string {
	if len(key) < MinFingerprintKeyLen {
		panic("providers: fingerprint key too short")
	}
	m := hmac.New(sha256.New, key)
	m.Write(v.bytes())
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil)[:8])
}

// String implements fmt.Stringer and always returns "REDACTED".
func (v Value) String() string { return Redacted }

// GoString implements fmt.GoStringer and always returns "REDACTED".
func (v Value) GoString() string { return Redacted }

// Format implements fmt.Formatter so that every verb (%v %+v %s %q %x %d …)
// prints "REDACTED".
func (v Value) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = f.Write([]byte(`"` + Redacted + `"`))
		return
	}
	_, _ = f.Write([]byte(Redacted))
}

// LogValue implements slog.LogValuer.
func (v Value) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON implements json.Marshaler and encodes "REDACTED".
func (v Value) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler (YAML, XML, map keys) and
// encodes "REDACTED".
func (v Value) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// MarshalYAML implements yaml.Marshaler for gopkg.in/yaml.v3.
func (v Value) MarshalYAML() (any, error) { return Redacted, nil }

// versionKey keys ContentVersion; it is random per process.
var versionKey = func() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic("providers: no randomness for version keys")
	}
	return k
}()

// ContentVersion is a version string for stores that have none: a keyed
// hash of the content ("h:" and 12 hex digits). Equal content gives an equal
// version within one process, so changes are detected; the key is random per
// process, so the version (which is logged) cannot be used to guess a
// low-entropy value offline the way a plain hash could.
func ContentVersion(b []byte) string {
	m := hmac.New(sha256.New, versionKey)
	m.Write(b)
	return "h:" + hex.EncodeToString(m.Sum(nil)[:6])
}
