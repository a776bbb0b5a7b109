package file_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/file"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestRegistered(t *testing.T) {
	t.Parallel()
	k, ok := providers.LookupKind("file")
	if !ok {
		t.Fatal("kind file is not registered")
	}
	if !slices.Equal(k.Params, []string{"format"}) {
		t.Errorf("Params = %v, want [format]", k.Params)
	}
	if _, err := k.New(providers.Instance{Name: "file", Kind: "file"}); err != nil {
		t.Errorf("New without options: %v", err)
	}
	_, err := k.New(providers.Instance{Name: "file", Kind: "file", Decode: func(any) error {
		return errors.New(`unknown key "root"`)
	}})
	if err == nil || !strings.Contains(err.Error(), "file provider options") {
		t.Errorf("New with an unknown option: got %v, want an error", err)
	}
}

const devYAML = `# keyward demo secrets
partner:
  client_id: partner-client
  client_secret: "s3cr3t"
db.password: dotted
port: 5432
`

// TestResolve exercises the provider through a providers.Set, as keyward
// uses it, with every reference spelling a file secret can have.
func TestResolve(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{
		"dev.yaml":       devYAML,
		"app.json":       `{"api": {"key": "k-123"}, "n": 1.50, "ok": true, "nothing": null}`,
		".env":           "export DB_PASSWORD='p@ss word'\nTOKEN=abc # comment\n",
		"cert.pem":       "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		"json.txt":       `{"a": "from-txt"}`,
		"sub/nested.env": "A=1\n",
	})
	abs := filepath.Join(dir, "dev.yaml")
	set := providers.NewSet(providers.Instance{BaseDir: dir}, nil)
	t.Cleanup(func() { _ = set.Close() })
	tests := []struct {
		ref  string
		want string
	}{
		{"file:dev.yaml#partner.client_id", "partner-client"},
		{"file:dev.yaml#partner.client_secret", "s3cr3t"},
		{"file:dev.yaml#db.password", "dotted"},
		{"file:dev.yaml#port", "5432"},
		{"file://" + abs + "#partner.client_id", "partner-client"},
		{"file:" + abs + "#partner.client_id", "partner-client"},
		{"file:app.json#api.key", "k-123"},
		{"file:app.json#n", "1.50"},
		{"file:app.json#ok", "true"},
		{"file:app.json#nothing", ""},
		{"file:app.json#api", `{"key":"k-123"}`},
		{"file:.env#DB_PASSWORD", "p@ss word"},
		{"file:.env#TOKEN", "abc"},
		{"file:sub/nested.env#A", "1"},
		{"file:cert.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
		{"file:json.txt#a", "from-txt"},
		{"file:json.txt?format=json#a", "from-txt"},
		{"file:app.json?format=raw", `{"api": {"key": "k-123"}, "n": 1.50, "ok": true, "nothing": null}`},
		{"file:dev.yaml", devYAML},
	}
	refs := map[string]providers.Ref{}
	for i, tt := range tests {
		r, err := providers.Parse(tt.ref)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.ref, err)
		}
		refs[string(rune('A'+i))] = r
	}
	got, err := set.Resolve(t.Context(), refs)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	for i, tt := range tests {
		if g := got[string(rune('A'+i))].Value.Reveal(); g != tt.want {
			t.Errorf("%s = %q, want %q", tt.ref, g, tt.want)
		}
	}
}

func TestFetchErrors(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{
		"bad.json":  `{"password": hunter2}`,
		"bad.yaml":  "password: \"hunter2\n",
		"list.yaml": "- hunter2\n",
		"bad.env":   "PASSWORD=\"hunter2\n",
		"raw.txt":   `{"password": hunter2}`,
		"cert.pem":  "hunter2",
		"sub/x":     "",
	})
	tests := []struct {
		ref      string
		sentinel error
		want     string // the whole message; {dir} stands for the directory
	}{
		{"file:bad.json", nil, "parse JSON file {dir}/bad.json: line 1, column 14: invalid character looking for beginning of value"},
		{"file:bad.yaml", nil, "parse YAML file {dir}/bad.yaml: line 2: found unexpected end of stream"},
		{"file:list.yaml", nil, "parse YAML file {dir}/list.yaml: line 1, column 1: top-level value is a sequence, not a mapping (use ?format=raw to read the file whole)"},
		{"file:bad.env", nil, "parse dotenv file {dir}/bad.env: line 1, column 10: unterminated double-quoted value"},
		{"file:raw.txt?format=json", nil, "parse JSON file {dir}/raw.txt: line 1, column 14: invalid character looking for beginning of value"},
		{"file:missing.json", providers.ErrNotFound, "read {dir}/missing.json: not found"},
		{"file:cert.pem/key", providers.ErrNotFound, "read {dir}/cert.pem/key: not found"},
		{"file:sub", nil, "read {dir}/sub: is a directory, not a file"},
		{"file:cert.pem#key", providers.ErrNotObject, "cannot select #key: secret is not an object with fields"},
	}
	p := file.New(dir, file.Options{})
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			t.Parallel()
			ref, err := providers.Parse(tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			sec, err := p.Fetch(t.Context(), ref.Whole())
			if err == nil && ref.Field != "" {
				_, err = sec.Field(ref.Field)
			}
			if err == nil {
				t.Fatal("no error")
			}
			if want := strings.ReplaceAll(tt.want, "{dir}", dir); err.Error() != want {
				t.Errorf("error = %q\n         want %q", err, want)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("error %v does not wrap %v", err, tt.sentinel)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error quotes file content: %q", err)
			}
		})
	}
}

func TestCheckRef(t *testing.T) {
	t.Parallel()
	set := providers.NewSet(providers.Instance{BaseDir: t.TempDir()}, nil)
	tests := []struct {
		ref      string
		sentinel error // nil: valid
	}{
		{"file:a.yaml#k", nil},
		{"file:a?format=json", nil},
		{"file:a?format=yaml", nil},
		{"file:a?format=dotenv", nil},
		{"file:a?format=raw", nil},
		{"file:a?format=toml", providers.ErrInvalidReference},
		{"file:a?version=2", providers.ErrInvalidReference},
		{"file:a%00b", providers.ErrInvalidReference},
	}
	for _, tt := range tests {
		ref, err := providers.Parse(tt.ref)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.ref, err)
		}
		err = set.CheckRef(ref)
		if tt.sentinel == nil && err != nil {
			t.Errorf("CheckRef(%s): %v", tt.ref, err)
		}
		if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
			t.Errorf("CheckRef(%s) = %v, want an error wrapping %v", tt.ref, err, tt.sentinel)
		}
	}
}

func TestVersionIsContentHash(t *testing.T) {
	t.Parallel()
	content := "\x00binary\xff"
	dir := writeFiles(t, map[string]string{"blob": content})
	sec, err := file.New(dir, file.Options{}).Fetch(t.Context(), providers.Ref{Scheme: "file", Path: "blob"})
	if err != nil {
		t.Fatal(err)
	}
	if want := providers.ContentVersion([]byte(content)); sec.Version != want {
		t.Errorf("Version = %q, want %q", sec.Version, want)
	}
	// Not a plain hash of the content: a logged version must not let anyone
	// test guesses of a low-entropy value offline.
	sum := sha256.Sum256([]byte(content))
	if strings.Contains(sec.Version, hex.EncodeToString(sum[:])[:12]) {
		t.Errorf("Version %q is the content's plain SHA-256", sec.Version)
	}
	if sec.Value.Reveal() != content || sec.Data != nil {
		t.Errorf("binary file: got %d bytes, Data %v", sec.Value.Len(), sec.Data != nil)
	}
}

// TestKubeletSymlinkSwap reads a key of a Secret mounted the way the
// kubelet mounts it (key → ..data/key, ..data → ..TIMESTAMP) and sees the
// new content after the ..data link is swapped.
func TestKubeletSymlinkSwap(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{
		"..2024_01_01/password": "old-password",
		"..2024_02_01/password": "new-password",
	})
	mustSymlink(t, "..2024_01_01", filepath.Join(dir, "..data"))
	mustSymlink(t, "..data/password", filepath.Join(dir, "password"))
	p := file.New(dir, file.Options{})
	ref := providers.Ref{Scheme: "file", Path: "password"}
	old, err := p.Fetch(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if old.Value.Reveal() != "old-password" {
		t.Fatalf("got %q", old.Value.Reveal())
	}
	// The kubelet's atomic swap: a new link renamed over ..data.
	mustSymlink(t, "..2024_02_01", filepath.Join(dir, "..data_tmp"))
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	cur, err := p.Fetch(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Value.Reveal() != "new-password" || cur.Version == old.Version {
		t.Errorf("after the swap: value %q, version %s (was %s)", cur.Value.Reveal(), cur.Version, old.Version)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestCancelledContextReadsNothing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := file.New(t.TempDir(), file.Options{}).Fetch(ctx, providers.Ref{Scheme: "file", Path: "missing"})
	if !errors.Is(err, context.Canceled) || errors.Is(err, providers.ErrNotFound) {
		t.Errorf("Fetch with a cancelled context = %v, want context.Canceled before any read", err)
	}
}

// TestRelativeToWorkingDirectory: with no BaseDir (no config file), a
// relative path is relative to the working directory.
func TestRelativeToWorkingDirectory(t *testing.T) {
	dir := writeFiles(t, map[string]string{"dev.env": "A=from-cwd\n"})
	t.Chdir(dir)
	sec, err := file.New("", file.Options{}).Fetch(t.Context(), providers.Ref{Scheme: "file", Path: "dev.env"})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := sec.Field("A"); err != nil || v.Reveal() != "from-cwd" {
		t.Errorf("Field(A) = %q, %v", v.Reveal(), err)
	}
}

func TestPath(t *testing.T) {
	t.Parallel()
	p := file.New("/etc/kw", file.Options{})
	for in, want := range map[string]string{
		"dev.yaml": "/etc/kw/dev.yaml", "../x": "/etc/x", "/abs/a.json": "/abs/a.json", "a/./b": "/etc/kw/a/b",
	} {
		if got := p.Path(providers.Ref{Scheme: "file", Path: in}); got != want {
			t.Errorf("Path(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLimits: by default only regular files of at most 1 MiB are read;
// the instance options lift either limit, and a lifted limit still holds.
func TestLimits(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{
		"big":   strings.Repeat("x", file.DefaultMaxSize+1),
		"exact": strings.Repeat("x", file.DefaultMaxSize),
	})
	ref := func(p string) providers.Ref { return providers.Ref{Scheme: "file", Path: p} }
	def := file.New(dir, file.Options{})
	if _, err := def.Fetch(t.Context(), ref("exact")); err != nil {
		t.Errorf("a file of exactly the default limit: %v", err)
	}
	_, err := def.Fetch(t.Context(), ref("big"))
	if !errors.Is(err, file.ErrTooLarge) || !strings.Contains(err.Error(), "max_size") {
		t.Errorf("a file over the default limit: %v", err)
	}
	_, err = def.Fetch(t.Context(), ref("/dev/zero"))
	if !errors.Is(err, file.ErrNotRegular) || !strings.Contains(err.Error(), "allow_non_regular") {
		t.Errorf("/dev/zero by default: %v", err)
	}

	lifted := file.New(dir, file.Options{MaxSize: 2 << 20, AllowNonRegular: true})
	if _, err := lifted.Fetch(t.Context(), ref("big")); err != nil {
		t.Errorf("big with max_size 2MiB: %v", err)
	}
	_, err = lifted.Fetch(t.Context(), ref("/dev/zero"))
	if !errors.Is(err, file.ErrTooLarge) || !strings.Contains(err.Error(), "2MiB") {
		t.Errorf("/dev/zero allowed: %v, want the 2MiB limit", err)
	}
}

// TestOptionsFromConfig: the instance options decode from YAML with sizes
// in bytes or with a unit, and a bad size is an error naming its line.
func TestOptionsFromConfig(t *testing.T) {
	t.Parallel()
	for src, want := range map[string]file.Options{
		"max_size: 4MiB": {MaxSize: 4 << 20},
		"max_size: 2048": {MaxSize: 2048},
		"{max_size: 64KiB, allow_non_regular: true}": {MaxSize: 64 << 10, AllowNonRegular: true},
	} {
		var got file.Options
		if err := yaml.Unmarshal([]byte(src), &got); err != nil || got != want {
			t.Errorf("%s: got %+v, %v; want %+v", src, got, err, want)
		}
	}
	for _, src := range []string{"max_size: lots", "max_size: 0", "max_size: -1", "max_size: [1]"} {
		var got file.Options
		err := yaml.Unmarshal([]byte(src), &got)
		if err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%s: got %+v, %v; want an error naming line 1", src, got, err)
		}
	}
	if s := file.Size(4 << 20).String(); s != "4MiB" {
		t.Errorf("Size.String = %q", s)
	}
}
