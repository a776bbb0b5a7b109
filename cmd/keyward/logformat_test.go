package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/testenv"
)

// TestLogFormatJSONFinalError checks that with --log-format json (or
// KEYWARD_LOG_FORMAT=json) everything keyward writes to stderr is JSON,
// the error it stops with included: one record at level ERROR with the
// message and the exit code. It used to be a plain "keyward: …" line
// after the JSON log records.
func TestLogFormatJSONFinalError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	testenv.WriteFile(t, filepath.Join(dir, "dev.yaml"), "a: some-long-value\n")
	testenv.WriteFile(t, filepath.Join(dir, "bad.yaml"), "version: 1\nsecrets:\n  A: file:dev.yaml#a\nfilez: []\n")
	// A warning (a file readable by the group), then a failing reference.
	testenv.WriteFile(t, filepath.Join(dir, "warn.yaml"), "version: 1\nsecrets:\n  A: file:missing.yaml#a\nfiles:\n  - path: out/a\n    secret: A\n    mode: \"0640\"\n")
	tests := []struct {
		name string
		env  []string
		args []string
		code int
		want string // in the message
		warn bool   // a warning record comes first
	}{
		{"missing config", nil, []string{"--log-format", "json", "check", "-c", "nope.yaml"}, exitConfig, "nope.yaml", false},
		{"bad config, from the environment", []string{"KEYWARD_LOG_FORMAT=json"}, []string{"check", "-c", "bad.yaml"}, exitConfig, `unknown key "filez"`, false},
		{"flag after the command", nil, []string{"render", "--once", "--log-format=json", "-c", "warn.yaml"}, exitRuntime, "missing.yaml", true},
		{"unknown flag", nil, []string{"--log-format", "json", "check", "--bogus"}, exitUsage, "--bogus", false},
		{"unknown command", nil, []string{"--log-format", "json", "nosuch"}, exitUsage, "nosuch", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := keyward(t, dir, tt.env, tt.args...)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d: %s", r.code, tt.code, r.stderr)
			}
			if strings.Contains(r.stderr, "some-long-value") {
				t.Errorf("leaked value of A")
			}
			var records []map[string]any
			for _, line := range strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n") {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("stderr line is not JSON (%v): %q", err, line)
				}
				records = append(records, rec)
			}
			last := records[len(records)-1]
			if last["level"] != "ERROR" || last["exit_code"] != float64(tt.code) {
				t.Errorf("last record %v: want level ERROR and exit_code %d", last, tt.code)
			}
			if msg, _ := last["msg"].(string); !strings.Contains(msg, tt.want) {
				t.Errorf("error message %q does not name %q", msg, tt.want)
			}
			if tt.warn && (len(records) < 2 || records[0]["level"] != "WARN") {
				t.Errorf("no warning record before the error: %v", records)
			}
		})
	}

	// The text format keeps its one plain line.
	r := keyward(t, dir, nil, "check", "-c", "nope.yaml")
	if r.code != exitConfig || !strings.HasPrefix(r.stderr, "keyward: ") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("text format: exit %d, stderr %q", r.code, r.stderr)
	}
}
