package providers_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/keyward/keyward/providers"
)

func TestSecretField(t *testing.T) {
	t.Parallel()
	data := map[string]any{
		"password": "p",
		"db.host":  "dotted-wins",
		"db": map[string]any{
			"host": "nested-host",
			"port": json.Number("5432"),
			"tls":  map[string]any{"ca.crt": "ca", "mode": "verify"},
		},
		"a.b": map[string]any{"c": "from-a.b"},
		"a":   map[string]any{"b": map[string]any{"c": "from-a", "d": "only-in-a"}},
		"n":   json.Number("1.50"),
		"f":   1.5,
		"big": 1e21,
		"i":   42,
		"i64": int64(-7),
		"u64": uint64(18446744073709551615),
		"t":   true,
		"no":  false,
		"nil": nil,
		"arr": []any{"x", json.Number("1"), true, nil},
		"obj": map[string]any{"k": "v", "v": providers.StringValue("inner"), "b": []byte("raw")},
		"bin": []byte{0, 0xff},
		"val": providers.StringValue("as-value"),
		"":    "empty-key",
	}
	sec := providers.Secret{Data: data}
	tests := []struct {
		field string
		want  string
	}{
		{"password", "p"},
		{"db.host", "dotted-wins"},
		{"db.port", "5432"},
		{"db.tls.ca.crt", "ca"},
		{"db.tls.mode", "verify"},
		{"a.b.c", "from-a.b"},
		{"a.b.d", "only-in-a"},
		{"n", "1.50"},
		{"f", "1.5"},
		{"big", "1000000000000000000000"},
		{"i", "42"},
		{"i64", "-7"},
		{"u64", "18446744073709551615"},
		{"t", "true"},
		{"no", "false"},
		{"nil", ""},
		{"arr", `["x",1,true,null]`},
		{"obj", `{"b":"raw","k":"v","v":"inner"}`},
		{"db.tls", `{"ca.crt":"ca","mode":"verify"}`},
		{"bin", "\x00\xff"},
		{"val", "as-value"},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			t.Parallel()
			got, err := sec.Field(tt.field)
			if err != nil {
				t.Fatalf("Field(%q): %v", tt.field, err)
			}
			if got.Reveal() != tt.want {
				t.Errorf("Field(%q) = %q, want %q", tt.field, got.Reveal(), tt.want)
			}
		})
	}
}

func TestSecretFieldErrors(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-value"
	obj := providers.Secret{Data: map[string]any{"password": secret, "db": map[string]any{"host": secret}, "s": secret}}
	raw := providers.Secret{Value: providers.StringValue(secret)}
	tests := []struct {
		name     string
		sec      providers.Secret
		field    string
		sentinel error
		want     string
	}{
		{"missing key", obj, "user", providers.ErrNotFound, `field "user" not found (keys: db, password, s)`},
		{"missing nested key", obj, "db.port", providers.ErrNotFound, `field "db.port" not found`},
		{"walk into a string", obj, "s.x", providers.ErrNotFound, `field "s.x" not found`},
		{"raw value", raw, "password", providers.ErrNotObject, "cannot select #password: secret is not an object with fields"},
		{"json array payload", providers.Secret{Value: providers.StringValue(`["` + secret + `"]`)}, "0", providers.ErrNotObject, "not an object"},
		{"json with trailing data", providers.Secret{Value: providers.StringValue(`{"a": "` + secret + `"} x`)}, "a", providers.ErrNotObject, "not an object"},
		{"broken json", providers.Secret{Value: providers.StringValue(`{"a": ` + secret)}, "a", providers.ErrNotObject, "not an object"},
		{"empty", providers.Secret{}, "a", providers.ErrNotObject, "not an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tt.sec.Field(tt.field)
			if !errors.Is(err, tt.sentinel) {
				t.Fatalf("Field(%q) = %v, want an error wrapping %v", tt.field, err, tt.sentinel)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error holds the value: %q", err)
			}
		})
	}
}

func TestSecretFieldKeyList(t *testing.T) {
	t.Parallel()
	data := map[string]any{}
	for i := range 25 {
		data[string(rune('a'+i))] = "v"
	}
	_, err := providers.Secret{Data: data}.Field("zz")
	if err == nil || !strings.Contains(err.Error(), "and 5 more") {
		t.Errorf("long key list not truncated: %v", err)
	}
	_, err = providers.Secret{Data: map[string]any{}}.Field("x")
	if err == nil || !strings.Contains(err.Error(), "keys: none") {
		t.Errorf("empty object: %v", err)
	}
}

// TestSecretFieldJSONPayload: a provider that gives no Data (an AWS
// SecretString, a GCP payload) has its Value parsed as a JSON object.
func TestSecretFieldJSONPayload(t *testing.T) {
	t.Parallel()
	sec := providers.Secret{Value: providers.StringValue(" \n{\"api\": {\"key\": \"k\"}, \"n\": 10.0, \"a.b\": \"dotted\"}\n")}
	for field, want := range map[string]string{"api.key": "k", "n": "10.0", "a.b": "dotted", "api": `{"key":"k"}`} {
		got, err := sec.Field(field)
		if err != nil || got.Reveal() != want {
			t.Errorf("Field(%q) = %q, %v; want %q", field, got.Reveal(), err, want)
		}
	}
}

func TestSecretWhole(t *testing.T) {
	t.Parallel()
	t.Run("raw", func(t *testing.T) {
		t.Parallel()
		v, fields, err := providers.Secret{Value: providers.StringValue("raw")}.Whole()
		if err != nil || v.Reveal() != "raw" || fields != nil {
			t.Errorf("Whole = %q, %v, %v", v.Reveal(), fields, err)
		}
	})
	t.Run("json payload", func(t *testing.T) {
		t.Parallel()
		payload := `{"user": "u", "n": 1.0, "o": {"k": "v"}}`
		v, fields, err := providers.Secret{Value: providers.StringValue(payload)}.Whole()
		if err != nil || v.Reveal() != payload || len(fields) != 3 || fields["user"].Reveal() != "u" || fields["n"].Reveal() != "1.0" || fields["o"].Reveal() != `{"k":"v"}` {
			t.Errorf("Whole = %q, %v, %v", v.Reveal(), fields, err)
		}
	})
	t.Run("value and data", func(t *testing.T) {
		t.Parallel()
		sec := providers.Secret{Value: providers.StringValue("A=1\nB=x\n"), Data: map[string]any{"A": "1", "B": "x"}}
		v, fields, err := sec.Whole()
		if err != nil || v.Reveal() != "A=1\nB=x\n" || len(fields) != 2 || fields["B"].Reveal() != "x" {
			t.Errorf("Whole = %q, %v, %v", v.Reveal(), fields, err)
		}
	})
	t.Run("data only", func(t *testing.T) {
		t.Parallel()
		sec := providers.Secret{Data: map[string]any{"user": "u", "pass": providers.StringValue("p"), "n": json.Number("3"), "nested": map[string]any{"x": []byte("y")}}}
		v, fields, err := sec.Whole()
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"n":3,"nested":{"x":"y"},"pass":"p","user":"u"}`; v.Reveal() != want {
			t.Errorf("payload = %s, want %s", v.Reveal(), want)
		}
		if fields["pass"].Reveal() != "p" || fields["nested"].Reveal() != `{"x":"y"}` || fields["n"].Reveal() != "3" {
			t.Errorf("fields wrong")
		}
	})
	t.Run("unencodable field", func(t *testing.T) {
		t.Parallel()
		_, _, err := providers.Secret{Data: map[string]any{"ch": make(chan int)}}.Whole()
		if err == nil || !strings.Contains(err.Error(), `field "ch"`) {
			t.Errorf("Whole with a channel field: %v", err)
		}
	})
}
