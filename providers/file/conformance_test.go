package file_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/file"
	"github.com/keyward/keyward/providers/providertest"
)

// layout is one way of storing objects in files for the conformance suite.
type layout struct {
	name     string
	ext      string // file name suffix for objects
	flat     bool
	absolute bool // references use absolute paths (file:///…)
	encode   func(t *testing.T, fields map[string]any) []byte
	// malformed returns content of this format that does not parse and
	// holds value where a parser would quote it.
	malformed func(value []byte) []byte
	// malformedField is the field asked of the malformed file, if any.
	malformedField string
}

var layouts = []layout{
	{
		name: "json", ext: ".json",
		encode: func(t *testing.T, fields map[string]any) []byte {
			b, err := json.MarshalIndent(fields, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		malformed: func(v []byte) []byte { return []byte(`{"password": ` + string(v) + `}`) },
	},
	{
		name: "json-absolute", ext: ".json", absolute: true,
		encode: func(t *testing.T, fields map[string]any) []byte {
			b, err := json.Marshal(fields)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		malformed: func(v []byte) []byte { return []byte("{\n  \"a\": \"b\",\n  " + string(v) + "\n}") },
	},
	{
		name: "yaml", ext: ".yaml",
		encode: func(t *testing.T, fields map[string]any) []byte {
			b, err := yaml.Marshal(fields)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		malformed: func(v []byte) []byte { return []byte("user: x\npassword: \"" + string(v) + "\n") },
	},
	{
		name: "yaml-mismatched-tag", ext: ".yml",
		encode: func(t *testing.T, fields map[string]any) []byte {
			b, err := yaml.Marshal(fields)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		// Top level is a scalar: yaml.v3 would quote it in a type error.
		malformed: func(v []byte) []byte { return []byte("!!int " + string(v) + "\n") },
	},
	{
		name: "dotenv", ext: ".env", flat: true,
		encode: func(t *testing.T, fields map[string]any) []byte {
			return dotenv(t, fields)
		},
		malformed: func(v []byte) []byte { return []byte("A=1\nPASSWORD=\"" + string(v) + "\n") },
	},
	{
		name: "sniffed-json", ext: "",
		encode: func(t *testing.T, fields map[string]any) []byte {
			b, err := json.Marshal(fields)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		// Not JSON, dotenv or YAML: sniffed as raw, so #password fails.
		malformed:      func(v []byte) []byte { return []byte(`{"password": "` + string(v)) },
		malformedField: "password",
	},
	{
		name: "sniffed-yaml", ext: "",
		encode: func(t *testing.T, fields map[string]any) []byte {
			b, err := yaml.Marshal(fields)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
	},
	{
		name: "sniffed-dotenv", ext: "", flat: true,
		encode: func(t *testing.T, fields map[string]any) []byte {
			return dotenv(t, fields)
		},
	},
}

// dotenv encodes flat string fields as KEY="value" lines.
func dotenv(t *testing.T, fields map[string]any) []byte {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString("# written by the conformance harness\n")
	for _, k := range keys {
		s, ok := fields[k].(string)
		if !ok {
			t.Fatalf("dotenv harness: field %q is not a string", k)
		}
		r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`", "\n", `\n`)
		fmt.Fprintf(&b, "export %s=\"%s\"\n", k, r.Replace(s))
	}
	return b.Bytes()
}

func harness(t *testing.T, l layout) providertest.Harness {
	dir := t.TempDir()
	ref := func(t *testing.T, file string) providers.Ref {
		if l.absolute {
			r, err := providers.Parse("file://" + filepath.Join(dir, file))
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		return providers.Ref{Scheme: "file", Path: file}
	}
	write := func(t *testing.T, file string, b []byte, mode os.FileMode) providers.Ref {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, file), b, mode); err != nil {
			t.Fatal(err)
		}
		return ref(t, file)
	}
	h := providertest.Harness{
		Kind:        "file",
		New:         func(*testing.T) providers.Provider { return file.New(dir, file.Options{}) },
		FlatObjects: l.flat,
		BinarySafe:  true,
		PutValue: func(t *testing.T, name string, value []byte) providers.Ref {
			return write(t, name+".bin", value, 0o600)
		},
		PutObject: func(t *testing.T, name string, fields map[string]any) providers.Ref {
			return write(t, name+l.ext, l.encode(t, fields), 0o600)
		},
		Delete: func(t *testing.T, name string) {
			if err := os.Remove(filepath.Join(dir, name+".bin")); err != nil {
				t.Fatal(err)
			}
		},
		Missing: func(t *testing.T, name string) providers.Ref {
			return ref(t, name+l.ext)
		},
		Denied: func(t *testing.T, name string, value []byte) providers.Ref {
			if os.Geteuid() == 0 {
				t.Skip("running as root, which file modes do not deny; TestPermissionDeniedAsNobody runs this suite as uid 65534")
			}
			return write(t, name+l.ext, value, 0o000)
		},
	}
	if l.malformed != nil {
		h.PutMalformed = func(t *testing.T, name string, value []byte) providers.Ref {
			r := write(t, name+l.ext, l.malformed(value), 0o600)
			r.Field = l.malformedField
			return r
		}
	}
	return h
}

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			providertest.Run(t, harness(t, l))
		})
	}
}

// TestPermissionDeniedAsNobody runs the conformance suite again as an
// unprivileged user, so that its PermissionDenied subtest meets a real
// EACCES even when the tests run as root (as they do in containers).
func TestPermissionDeniedAsNobody(t *testing.T) {
	if os.Getenv("KEYWARD_FILE_TEST_AS_NOBODY") != "" {
		t.Skip("already running as the unprivileged child")
	}
	if os.Geteuid() != 0 {
		t.Skip("not root: TestConformance's PermissionDenied subtest already meets a real denial")
	}
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary lives in a 0700 build directory: copy it where
	// the unprivileged user can execute it.
	dir, err := os.MkdirTemp("", "keyward-file-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "file.test")
	copyFile(t, exe, bin)

	cmd := exec.CommandContext(t.Context(), bin, "-test.run=^TestConformance$", "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KEYWARD_FILE_TEST_AS_NOBODY=1", "TMPDIR=/tmp")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if bytes.Contains(out, []byte("FAIL")) {
			t.Fatalf("conformance suite as uid 65534 failed: %v\n%s", err, out)
		}
		t.Skipf("cannot run a child as uid 65534 here (%v): no unprivileged user to be denied", err)
	}
	for _, l := range layouts {
		want := fmt.Sprintf("--- PASS: TestConformance/%s/PermissionDenied", l.name)
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("the unprivileged run did not pass %s:\n%s", want, out)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
