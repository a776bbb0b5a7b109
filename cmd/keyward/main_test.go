package main

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/testenv"
)

// binPath is the keyward binary built once for every test in this package,
// with the release build's flags (CGO_ENABLED=0 -trimpath).
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keyward-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if binPath, err = testenv.BuildKeyward(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one run of the binary.
type result struct {
	code           int
	stdout, stderr string
}

// keyward runs the built binary with args in dir and environment env (the
// test's own environment is not inherited, so nothing leaks in).
func keyward(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running keyward %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// TestBinaryIsStatic checks that the release build flags give a static
// executable: no ELF interpreter and no dynamic section.
func TestBinaryIsStatic(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("ELF check only on linux")
	}
	f, err := elf.Open(binPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("binary has program header %v: not static", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("binary imports shared libraries %v", libs)
	}
}

func TestHelpShowsExamples(t *testing.T) {
	t.Parallel()
	for _, c := range []string{"", "exec", "render", "check", "get", "version"} {
		args := []string{"--help"}
		if c != "" {
			args = []string{c, "--help"}
		}
		r := keyward(t, t.TempDir(), nil, args...)
		if r.code != 0 {
			t.Errorf("keyward %v: exit %d: %s", args, r.code, r.stderr)
		}
		if !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "keyward ") {
			t.Errorf("keyward %v: help has no example:\n%s", args, r.stdout)
		}
	}
}

// TestReadmeQuickstart runs the README's first quickstart command as written,
// with `go run ./cmd/keyward` standing for the built binary.
func TestReadmeQuickstart(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme := testenv.ReadFile(t, filepath.Join(root, "README.md"))
	var line string
	for _, l := range strings.Split(readme, "\n") {
		if strings.HasPrefix(l, "go run ./cmd/keyward ") {
			line = l
			break
		}
	}
	if line == "" {
		t.Fatal("README has no quickstart line starting with 'go run ./cmd/keyward'")
	}
	if !strings.Contains(readme, "\nmake test\n") {
		t.Fatal("README does not give `make test` as the test command")
	}
	cmdline := strings.Replace(line, "go run ./cmd/keyward", binPath, 1)
	out := filepath.Join(root, "examples", "local", "out")
	t.Cleanup(func() { os.RemoveAll(out) })
	r := keyward(t, root, nil, "version") // sanity: binary runs from the repo root
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	cmd := exec.Command("sh", "-c", cmdline)
	cmd.Dir = root
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("quickstart %q failed: %v\n%s", line, err, b)
	}
	entries, err := os.ReadDir(out)
	if err != nil || len(entries) == 0 {
		t.Fatalf("quickstart rendered no files into %s: %v", out, err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v: readable by group or others", e.Name(), info.Mode().Perm())
		}
	}
}
