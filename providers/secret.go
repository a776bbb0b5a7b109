package providers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
)

// Secret is what a provider's Fetch returns: one whole secret of the store.
//
// Value is the payload as the store holds it (a raw file, an AWS
// SecretString or SecretBinary, a GCP payload). Data is the structured form
// where the store has one natively (Vault KV data, a Kubernetes Secret's
// keys, a parsed JSON/YAML/dotenv file); when Data is nil and a field is
// asked for, Value is parsed as a JSON object.
//
// Data values may be string, []byte, Value, bool, json.Number, float64,
// int, nil, []any or map[string]any (nested).
//
// fmt, slog, encoding/json and yaml.v3 print a Secret as REDACTED (with its
// Version), but fmt cannot call those methods on a Secret held in an
// unexported struct field, and would print Data's strings there.
type Secret struct {
	Value   Value
	Data    map[string]any
	Version string
	// Lease is set for secrets that expire (dynamic secrets); nil otherwise.
	Lease *Lease
}

// String implements fmt.Stringer without revealing Value or Data:
// "Secret(REDACTED, version V)".
func (s Secret) String() string {
	if s.Version == "" {
		return "Secret(" + Redacted + ")"
	}
	return "Secret(" + Redacted + ", version " + s.Version + ")"
}

// GoString implements fmt.GoStringer like String.
func (s Secret) GoString() string { return s.String() }

// Format implements fmt.Formatter so that every verb prints String: Data
// holds plain strings that fmt would otherwise print.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = fmt.Fprintf(f, "%q", s.String())
		return
	}
	_, _ = f.Write([]byte(s.String()))
}

// LogValue implements slog.LogValuer: the version, never the content.
func (s Secret) LogValue() slog.Value {
	return slog.GroupValue(slog.String("value", Redacted), slog.String("version", s.Version))
}

// MarshalJSON implements json.Marshaler: Value and Data are "REDACTED".
func (s Secret) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"value": Redacted, "data": Redacted, "version": s.Version})
}

// MarshalYAML implements yaml.Marshaler for gopkg.in/yaml.v3 like MarshalJSON.
func (s Secret) MarshalYAML() (any, error) {
	return map[string]string{"value": Redacted, "data": Redacted, "version": s.Version}, nil
}

// ErrNotObject is returned when a #field is asked of a secret that is not a
// JSON/YAML object. (An a.b field whose a is not an object wraps
// ErrNotFound: "a.b" might have been meant as one key.)
var ErrNotObject = errors.New("secret is not an object with fields")

// structured returns the secret's top-level object, parsing Value as JSON
// when the provider gave no Data. ok is false when it is not an object.
func (s Secret) structured() (map[string]any, bool) {
	if s.Data != nil {
		return s.Data, true
	}
	b := bytes.TrimSpace(s.Value.Bytes())
	if len(b) == 0 || b[0] != '{' {
		return nil, false
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || dec.More() {
		return nil, false
	}
	return m, true
}

// Field returns the value at field, a key of the secret's object. A key that
// contains dots matches as a whole first; otherwise "a.b" walks into nested
// objects. Errors wrap ErrNotFound (no such key) or ErrNotObject, name the
// field and list the available keys, never a value.
func (s Secret) Field(field string) (Value, error) {
	m, ok := s.structured()
	if !ok {
		return Value{}, fmt.Errorf("cannot select #%s: %w", field, ErrNotObject)
	}
	v, err := lookup(m, field, field)
	if err != nil {
		return Value{}, err
	}
	return toValue(v)
}

// Whole returns the secret's payload and, when it is an object of fields
// (Data, or a Value that is a JSON object, as Field reads it), each
// top-level field as its own Value (for rendering a whole Secret as a
// dotenv/json/yaml map). For a structured-only secret (Data set, Value
// empty), the payload is the JSON encoding of Data.
func (s Secret) Whole() (Value, map[string]Value, error) {
	m, ok := s.structured()
	if !ok {
		return s.Value, nil, nil
	}
	fields := make(map[string]Value, len(m))
	for k, v := range m {
		fv, err := toValue(v)
		if err != nil {
			return Value{}, nil, fmt.Errorf("field %q: %w", k, err)
		}
		fields[k] = fv
	}
	if s.Value.Len() > 0 {
		return s.Value, fields, nil
	}
	b, err := json.Marshal(plain(m))
	if err != nil {
		return Value{}, nil, errors.New("cannot encode secret as JSON")
	}
	return wrap(b), fields, nil
}

func lookup(m map[string]any, field, full string) (any, error) {
	if v, ok := m[field]; ok {
		return v, nil
	}
	// Longest prefix first: "a.b.c" tries "a.b" then "a".
	for i := strings.LastIndexByte(field, '.'); i > 0; i = strings.LastIndexByte(field[:i], '.') {
		sub, ok := m[field[:i]]
		if !ok {
			continue
		}
		sm, ok := sub.(map[string]any)
		if !ok {
			continue
		}
		if v, err := lookup(sm, field[i+1:], full); err == nil {
			return v, nil
		}
	}
	return nil, fmt.Errorf("field %q %w (keys: %s)", full, ErrNotFound, keyList(m))
}

func keyList(m map[string]any) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	const limit = 20
	more := ""
	if len(keys) > limit {
		more = fmt.Sprintf(", and %d more", len(keys)-limit)
		keys = keys[:limit]
	}
	return strings.Join(keys, ", ") + more
}

// toValue turns one field of a structured secret into bytes: strings and
// byte slices as they are, numbers and booleans in their JSON spelling,
// objects and arrays as JSON, null as empty.
func toValue(v any) (Value, error) {
	switch x := v.(type) {
	case nil:
		return Value{}, nil
	case string:
		return wrap([]byte(x)), nil
	case []byte:
		return wrap(x), nil
	case Value:
		return x, nil
	case json.Number:
		return wrap([]byte(x.String())), nil
	case bool:
		return wrap([]byte(strconv.FormatBool(x))), nil
	case int:
		return wrap([]byte(strconv.Itoa(x))), nil
	case int64:
		return wrap([]byte(strconv.FormatInt(x, 10))), nil
	case uint64:
		return wrap([]byte(strconv.FormatUint(x, 10))), nil
	case float64:
		return wrap([]byte(strconv.FormatFloat(x, 'f', -1, 64))), nil
	default:
		b, err := json.Marshal(plain(x))
		if err != nil {
			return Value{}, fmt.Errorf("cannot encode field of type %T", v)
		}
		return wrap(b), nil
	}
}

// plain replaces Values inside nested data with their strings so that
// json.Marshal encodes content rather than "REDACTED". Only used to render.
func plain(v any) any {
	switch x := v.(type) {
	case Value:
		return string(x.bytes())
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = plain(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plain(e)
		}
		return out
	case []byte:
		return string(x)
	default:
		return v
	}
}
