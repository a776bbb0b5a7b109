package config

import (
	"testing"
	"time"
)

// Tests of the on_change keys the rotation engine uses: a file's own
// on_change, and the timeout and splay modifiers.

func TestOnChangePerFileAndModifiers(t *testing.T) {
	t.Parallel()
	src := `version: 1
secrets: {A: vault://a#b, B: vault://a#c}
on_change: {restart: true, timeout: 20s, splay: 5s}
files:
  - path: /run/a
    secret: A
    on_change: {signal: SIGUSR1}
  - path: /run/b
    secret: B
    on_change: {command: [/bin/reload, b], timeout: 3s}
  - path: /run/c
    secret: B
    on_change: none
  - path: /run/d
    secret: A
`
	c, err := Parse([]byte(src), "keyward.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if oc := c.OnChange; !oc.Restart || oc.Timeout != 20*time.Second || oc.Splay != 5*time.Second || oc.Line != 3 {
		t.Errorf("top-level on_change = %+v", oc)
	}
	if oc := c.Files[0].OnChange; oc == nil || oc.Signal != "USR1" {
		t.Errorf("files[0].on_change = %+v, want signal normalised to USR1", oc)
	}
	if oc := c.Files[1].OnChange; oc == nil || len(oc.Command) != 2 || oc.Timeout != 3*time.Second {
		t.Errorf("files[1].on_change = %+v", oc)
	}
	if oc := c.Files[2].OnChange; oc == nil || !oc.None {
		t.Errorf("files[2].on_change = %+v", oc)
	}
	if c.Files[3].OnChange != nil {
		t.Errorf("files[3].on_change = %+v, want nil (inherits the top level)", c.Files[3].OnChange)
	}
}

func TestOnChangeProblems(t *testing.T) {
	t.Parallel()
	const file = "version: 1\nsecrets: {A: vault://a#b}\nfiles:\n  - path: /x\n    secret: A\n"
	tests := []struct {
		name  string
		src   string
		wants []want
	}{
		{"file two actions", file + "    on_change: {signal: HUP, none: true}\n", []want{{6, "files[0].on_change: set exactly one of"}}},
		{"file bad signal", file + "    on_change: {signal: KILL}\n", []want{{6, `files[0].on_change.signal: unknown signal "KILL"`}}},
		{"file unknown key", file + "    on_change: {reload: true}\n", []want{{6, `files[0].on_change: unknown key "reload"`}}},
		{"file scalar", file + "    on_change: restart\n", []want{{6, "files[0].on_change: must be none or one of"}}},
		{"timeout with signal", "version: 1\non_change: {signal: HUP, timeout: 5s}\n", []want{{2, "on_change.timeout: timeout applies to restart or command only"}}},
		{"negative timeout", "version: 1\non_change: {restart: true, timeout: -5s}\n", []want{{2, "on_change.timeout: must not be negative"}}},
		{"bad timeout", "version: 1\non_change: {command: [x], timeout: 5}\n", []want{{2, "on_change.timeout: must be a duration string"}}},
		{"splay with command", "version: 1\non_change: {command: [x], splay: 5s}\n", []want{{2, "on_change.splay: splay applies to restart only"}}},
		{"negative splay", file + "    on_change: {restart: true, splay: -1s}\n", []want{{6, "files[0].on_change.splay: must not be negative"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.src), "keyward.yaml")
			if err == nil {
				t.Fatal("no error")
			}
			checkProblems(t, err, tt.wants)
		})
	}
}

// TestOnChangeSchemaAgrees checks the new keys against the JSON Schema in
// both directions.
func TestOnChangeSchemaAgrees(t *testing.T) {
	t.Parallel()
	sch := compileSchema(t)
	const base = "version: 1\nsecrets: {A: vault://a#b}\n"
	const file = base + "files:\n  - path: /a\n    secret: A\n"
	good := map[string]string{
		"restart with timeout and splay": base + "on_change: {restart: true, timeout: 30s, splay: 10s}\n",
		"command with timeout":           base + "on_change: {command: [/bin/reload], timeout: 2s}\n",
		"file signal":                    file + "    on_change: {signal: USR1}\n",
		"file none":                      file + "    on_change: none\n",
		"file restart":                   file + "    on_change: {restart: true, timeout: 1m}\n",
	}
	bad := map[string]string{
		"file two actions":    file + "    on_change: {signal: HUP, restart: true}\n",
		"file unknown key":    file + "    on_change: {reload: true}\n",
		"timeout with signal": base + "on_change: {signal: HUP, timeout: 5s}\n",
		"splay with command":  base + "on_change: {command: [x], splay: 5s}\n",
		"timeout alone":       base + "on_change: {timeout: 5s}\n",
		"bad timeout":         base + "on_change: {restart: true, timeout: soon}\n",
	}
	for name, src := range good {
		t.Run("good/"+name, func(t *testing.T) {
			t.Parallel()
			if err := validateSchema(t, sch, []byte(src)); err != nil {
				t.Errorf("schema rejects it: %v", err)
			}
			if _, err := Parse([]byte(src), "keyward.yaml"); err != nil {
				t.Errorf("Parse rejects it: %v", err)
			}
		})
	}
	for name, src := range bad {
		t.Run("bad/"+name, func(t *testing.T) {
			t.Parallel()
			if err := validateSchema(t, sch, []byte(src)); err == nil {
				t.Errorf("schema accepts it")
			}
			if _, err := Parse([]byte(src), "keyward.yaml"); err == nil {
				t.Errorf("Parse accepts it")
			}
		})
	}
}

func TestWatchDebounce(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte("version: 1\nwatch: {debounce: 250ms}\n"), "keyward.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Watch.Debounce != 250*time.Millisecond || c.Watch.Interval != DefaultWatchInterval {
		t.Fatalf("watch = %+v", c.Watch)
	}
	for src, w := range map[string]want{
		"version: 1\nwatch: {debounce: -1s}\n": {2, "watch.debounce: must be between 0 and 1m"},
		"version: 1\nwatch: {debounce: 2m}\n":  {2, "watch.debounce: must be between 0 and 1m"},
		"version: 1\nwatch: {debounce: 5}\n":   {2, "watch.debounce: must be a duration string"},
	} {
		_, err := Parse([]byte(src), "keyward.yaml")
		if err == nil {
			t.Fatalf("%q accepted", src)
		}
		checkProblems(t, err, []want{w})
	}
	sch := compileSchema(t)
	if err := validateSchema(t, sch, []byte("version: 1\nwatch: {interval: 1m, debounce: 100ms}\n")); err != nil {
		t.Fatalf("schema rejects watch.debounce: %v", err)
	}
	if err := validateSchema(t, sch, []byte("version: 1\nwatch: {debounce: soon}\n")); err == nil {
		t.Fatal("schema accepts a malformed debounce")
	}
}
