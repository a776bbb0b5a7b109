package providers_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"text/template"

	"gopkg.in/yaml.v3"

	"github.com/keyward/keyward/providers"
)

const secretText = "hunter2-Sup3rS3cret"

// leaks reports whether out shows the secret, in clear, hex or as the
// decimal bytes fmt prints for a []byte.
func leaks(out string) bool {
	if strings.Contains(out, secretText) || strings.Contains(out, "hunter2") {
		return true
	}
	if strings.Contains(strings.ToLower(out), fmt.Sprintf("%x", secretText)[:12]) {
		return true
	}
	return strings.Contains(out, fmt.Sprint([]byte(secretText)[:4])[1:12]) ||
		strings.Contains(out, "0x68, 0x75")
}

type exported struct {
	Name  string
	Value providers.Value
}

type unexported struct {
	name  string
	value providers.Value
}

type nested struct {
	Inner  exported
	Any    any
	List   []providers.Value
	Map    map[string]providers.Value
	Ptr    *providers.Value
	hidden unexported
}

func TestValueRedactedByFmt(t *testing.T) {
	t.Parallel()
	v := providers.StringValue(secretText)
	sec := providers.Secret{Value: v, Data: map[string]any{"password": secretText, "n": map[string]any{"x": secretText}}, Version: "sha256:0123456789ab"}
	subjects := map[string]any{
		"value":      v,
		"pointer":    &v,
		"exported":   exported{"db", v},
		"unexported": unexported{"db", v},
		"nested":     nested{Inner: exported{"a", v}, Any: v, List: []providers.Value{v}, Map: map[string]providers.Value{"k": v}, Ptr: &v, hidden: unexported{"b", v}},
		"slice":      []providers.Value{v, v},
		"map":        map[string]providers.Value{"k": v},
		"secret":     sec,
		"secret ptr": &sec,
		"in struct":  struct{ S providers.Secret }{sec},
		// Not covered: a Secret in an unexported field. fmt cannot call
		// its methods there and Data is an exported map of strings.
	}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%-8v", "%T %v"}
	for name, subj := range subjects {
		for _, verb := range verbs {
			out := fmt.Sprintf(verb, subj)
			if leaks(out) {
				t.Errorf("%s with %s leaks: %s", name, verb, out)
			}
		}
		for _, out := range []string{fmt.Sprint(subj), fmt.Sprintln(subj), fmt.Sprint("x", subj)} {
			if leaks(out) {
				t.Errorf("%s with Sprint leaks: %s", name, out)
			}
		}
	}
	if got := fmt.Sprintf("%v|%s|%q|%x|%d|%#v", v, v, v, v, v, v); got != `REDACTED|REDACTED|"REDACTED"|REDACTED|REDACTED|REDACTED` {
		t.Errorf("Value verbs = %s", got)
	}
	if got := fmt.Sprint(sec); got != "Secret(REDACTED, version sha256:0123456789ab)" {
		t.Errorf("Secret = %s", got)
	}
}

func TestValueRedactedByErrors(t *testing.T) {
	t.Parallel()
	v := providers.StringValue(secretText)
	errs := []error{
		fmt.Errorf("fetching: %v", v),
		fmt.Errorf("fetching: %s", v),
		fmt.Errorf("fetching: %q", v),
		fmt.Errorf("fetching: %+v", exported{"x", v}),
		fmt.Errorf("wrapped: %w", fmt.Errorf("inner %v", v)),
		fmt.Errorf("secret: %v", providers.Secret{Value: v, Data: map[string]any{"k": secretText}}),
		errors.New(fmt.Sprint(v)),
	}
	for _, err := range errs {
		if leaks(err.Error()) {
			t.Errorf("error leaks: %s", err)
		}
	}
}

func TestValueRedactedBySlog(t *testing.T) {
	t.Parallel()
	v := providers.StringValue(secretText)
	sec := providers.Secret{Value: v, Data: map[string]any{"k": secretText}, Version: "sha256:0123456789ab"}
	for _, h := range []struct {
		name string
		new  func(*bytes.Buffer) slog.Handler
	}{
		{"text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
		{"json", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
	} {
		var buf bytes.Buffer
		log := slog.New(h.new(&buf))
		log.Info("fetched", "value", v, "ptr", &v, "struct", exported{"db", v}, "hidden", unexported{"db", v},
			"secret", sec, "values", []providers.Value{v}, slog.Group("g", "v", v), slog.Any("any", v))
		log.With("value", v).Warn("with")
		log.Error("failed", "err", fmt.Errorf("x: %v", v))
		out := buf.String()
		if leaks(out) {
			t.Errorf("%s handler leaks: %s", h.name, out)
		}
		if !strings.Contains(out, providers.Redacted) {
			t.Errorf("%s handler output lacks %s: %s", h.name, providers.Redacted, out)
		}
		if !strings.Contains(out, "sha256:0123456789ab") {
			t.Errorf("%s handler dropped the secret's version: %s", h.name, out)
		}
	}
}

func TestValueRedactedByEncoders(t *testing.T) {
	t.Parallel()
	v := providers.StringValue(secretText)
	sec := providers.Secret{Value: v, Data: map[string]any{"k": secretText}, Version: "sha256:0123456789ab"}
	type doc struct {
		Value  providers.Value            `json:"value" yaml:"value"`
		Ptr    *providers.Value           `json:"ptr" yaml:"ptr"`
		Map    map[string]providers.Value `json:"map" yaml:"map"`
		Secret providers.Secret           `json:"secret" yaml:"secret"`
	}
	d := doc{Value: v, Ptr: &v, Map: map[string]providers.Value{"k": v}, Secret: sec}

	j, err := json.Marshal(d)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	if leaks(string(j)) || !strings.Contains(string(j), `"value":"REDACTED"`) {
		t.Errorf("json.Marshal = %s", j)
	}
	y, err := yaml.Marshal(d)
	if err != nil {
		t.Fatalf("yaml.Marshal: %v", err)
	}
	if leaks(string(y)) || !strings.Contains(string(y), "value: REDACTED") {
		t.Errorf("yaml.Marshal = %s", y)
	}
	var tb bytes.Buffer
	tmpl := template.Must(template.New("t").Parse("{{.}} {{.Value}} {{printf \"%x\" .Value}}"))
	if err := tmpl.Execute(&tb, d); err != nil {
		t.Fatal(err)
	}
	if leaks(tb.String()) {
		t.Errorf("text/template = %s", tb.String())
	}
}

func TestValueRedactedByPanic(t *testing.T) {
	t.Parallel()
	for _, subj := range []any{providers.StringValue(secretText), providers.Secret{Value: providers.StringValue(secretText)}} {
		msg := func() (msg string) {
			defer func() { msg = fmt.Sprint(recover()) }()
			panic(subj)
		}()
		if leaks(msg) || !strings.Contains(msg, providers.Redacted) {
			t.Errorf("recovered panic = %q", msg)
		}
	}
}

// TestValueRedactedByUncaughtPanic checks what the runtime itself prints
// for panic(value) that nobody recovers, in a child process.
func TestValueRedactedByUncaughtPanic(t *testing.T) {
	if os.Getenv("KEYWARD_TEST_PANIC") == "1" {
		panic(providers.StringValue(secretText))
	}
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), exe, "-test.run=^TestValueRedactedByUncaughtPanic$")
	cmd.Env = append(os.Environ(), "KEYWARD_TEST_PANIC=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("child did not panic: %s", out)
	}
	if leaks(string(out)) || !strings.Contains(string(out), "panic: REDACTED") {
		t.Errorf("uncaught panic output:\n%s", out)
	}
}

func TestValueAccessors(t *testing.T) {
	t.Parallel()
	b := []byte{0, 1, 0xff}
	v := providers.NewValue(b)
	b[0] = 9
	if v.Bytes()[0] != 0 {
		t.Error("NewValue does not copy")
	}
	if v.Len() != 3 || v.Reveal() != "\x00\x01\xff" {
		t.Errorf("Len/Reveal = %d %q", v.Len(), v.Reveal())
	}
	if !v.Equal(providers.NewValue([]byte{0, 1, 0xff})) || v.Equal(providers.StringValue("x")) {
		t.Error("Equal")
	}
	var zero providers.Value
	if zero.Len() != 0 || zero.Bytes() != nil || zero.Reveal() != "" || !zero.Equal(providers.StringValue("")) {
		t.Error("zero Value is not empty")
	}
}

// TestFingerprints checks that no fingerprint is a function of the value
// alone: the per-process one is keyed by a random key, the keyed one by the
// operator's, so a short value cannot be found by hashing guesses.
func TestFingerprints(t *testing.T) {
	t.Parallel()
	pin := providers.StringValue("4711")
	unkeyed := sha256.Sum256([]byte("4711"))
	for _, fp := range []string{pin.Fingerprint(), pin.KeyedFingerprint([]byte("0123456789abcdef"))} {
		if strings.Contains(fp, hex.EncodeToString(unkeyed[:4])) {
			t.Errorf("fingerprint %s is the value's unkeyed SHA-256", fp)
		}
	}
	if pin.Fingerprint() != providers.StringValue("4711").Fingerprint() || pin.Fingerprint() == providers.StringValue("4712").Fingerprint() {
		t.Error("Fingerprint does not identify the content within the process")
	}
	k1, k2 := []byte("0123456789abcdef"), []byte("0123456789abcdeF")
	m := hmac.New(sha256.New, k1)
	m.Write([]byte("4711"))
	if want := "hmac-sha256:" + hex.EncodeToString(m.Sum(nil)[:8]); pin.KeyedFingerprint(k1) != want {
		t.Errorf("KeyedFingerprint = %s, want %s", pin.KeyedFingerprint(k1), want)
	}
	if pin.KeyedFingerprint(k1) == pin.KeyedFingerprint(k2) {
		t.Error("KeyedFingerprint does not depend on the key")
	}
	defer func() {
		if recover() == nil {
			t.Error("KeyedFingerprint accepted a short key")
		}
	}()
	pin.KeyedFingerprint([]byte("short"))
}
