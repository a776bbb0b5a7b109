package file_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/file"
)

func TestWrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := file.New(dir, file.Options{})
	ref := providers.Ref{Scheme: "file", Path: "rt"}
	path := filepath.Join(dir, "rt")
	if err := os.WriteFile(path, []byte("old-refresh-token"), 0o640); err != nil {
		t.Fatal(err)
	}
	sec, err := p.Fetch(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	read := func() string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	v, err := p.Write(t.Context(), ref, []byte("new-refresh-token"), sec.Version)
	if err != nil {
		t.Fatal(err)
	}
	if read() != "new-refresh-token" || v != providers.ContentVersion([]byte("new-refresh-token")) {
		t.Fatalf("after the write: version %s", v)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want the file's 0640 kept", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d entries in the directory: a temporary file was left", len(ents))
	}
	// Retried with the old version: the file already holds the value.
	if v2, err := p.Write(t.Context(), ref, []byte("new-refresh-token"), sec.Version); err != nil || v2 != v {
		t.Fatalf("idempotent retry: %v %v", v2, err)
	}
	// The old version again, another value: a conflict, nothing written.
	if _, err := p.Write(t.Context(), ref, []byte("third"), sec.Version); !errors.Is(err, providers.ErrConflict) || read() != "new-refresh-token" {
		t.Fatalf("stale version: err %v", err)
	}

	cases := []struct {
		name string
		ref  providers.Ref
		prep func(t *testing.T)
		want error
	}{
		{"field", providers.Ref{Scheme: "file", Path: "c.json", Field: "rt"}, func(t *testing.T) {
			_ = os.WriteFile(filepath.Join(dir, "c.json"), []byte(`{"rt":"x"}`), 0o600)
		}, errors.ErrUnsupported},
		{"symlink", providers.Ref{Scheme: "file", Path: "link"}, func(t *testing.T) {
			_ = os.Symlink(path, filepath.Join(dir, "link"))
		}, errors.ErrUnsupported},
		{"missing", providers.Ref{Scheme: "file", Path: "nope"}, func(*testing.T) {}, providers.ErrNotFound},
	}
	for _, c := range cases {
		c.prep(t)
		if _, err := p.Write(t.Context(), c.ref, []byte("secret-value-x"), "h:0"); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
	if read() != "new-refresh-token" {
		t.Fatal("a refused write changed the file (through the symlink?)")
	}
}
