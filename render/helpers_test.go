package render

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/keyward/keyward/providers"
)

// resolved builds a secrets map of plain values.
func resolved(kv map[string]string) map[string]providers.Resolved {
	m := make(map[string]providers.Resolved, len(kv))
	for k, v := range kv {
		m[k] = providers.Resolved{Value: providers.StringValue(v)}
	}
	return m
}

// whole returns the Resolved of a whole structured secret.
func whole(fields map[string]string) providers.Resolved {
	r := providers.Resolved{Value: providers.StringValue("{}"), Fields: map[string]providers.Value{}}
	for k, v := range fields {
		r.Fields[k] = providers.StringValue(v)
	}
	return r
}

// assertNoLeak fails when the error's message contains any of the values.
func assertNoLeak(t *testing.T, err error, values ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, v := range values {
		if v != "" && strings.Contains(err.Error(), v) {
			t.Errorf("error %q contains a secret value %q", err, v)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeRaw(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func statT(t *testing.T, path string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

// tempNames lists what a write may leave in dir: keyward's temp files and
// snapshot directories, and anything else that looks like a temp file.
func tempNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if isTempName(e.Name()) || strings.Contains(e.Name(), ".tmp") || strings.HasPrefix(e.Name(), "..") {
			out = append(out, e.Name())
		}
	}
	return out
}

func rawFile(path, secret string) File {
	return File{Path: path, Format: FormatRaw, Secret: secret, UID: -1, GID: -1}
}
