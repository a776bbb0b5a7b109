package child

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExec runs Exec in a helper process, which it replaces.
func TestExec(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "kwtestcmd"), []byte("#!/bin/sh\nexit 9\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "kwnoexec"), []byte("#!/bin/sh\nexit 9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(os.Getenv("PATH"), bin) {
		t.Fatal("test PATH already holds the temp dir")
	}
	tests := []struct {
		name       string
		args       []string
		env        []string
		wantCode   int
		wantStderr string
	}{
		{"exit code", []string{"/bin/sh", "-c", "exit 7"}, nil, 7, ""},
		{"environment", []string{"/bin/sh", "-c", `[ "$KW_X" = "a b" ] && exit 8`}, []string{"KW_X=a b"}, 8, ""},
		{"PATH from env", []string{"kwtestcmd"}, []string{"KEYWARD_CHILD_TEST_PATH=" + bin}, 9, ""},
		{"not found", []string{"keyward-no-such-command"}, nil, 127, `exec "keyward-no-such-command": executable file not found in $PATH` + "\n"},
		{"not executable", []string{"kwnoexec"}, []string{"KEYWARD_CHILD_TEST_PATH=" + bin}, 126, `exec "kwnoexec": permission denied` + "\n"},
		{"bad interpreter", []string{filepath.Join(bin, "kwbadinterp")}, nil, 127, `exec "` + filepath.Join(bin, "kwbadinterp") + `": no such file or directory` + "\n"},
	}
	if err := os.WriteFile(filepath.Join(bin, "kwbadinterp"), []byte("#!/nonexistent/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := helperCommand("exec", tt.args...)
			cmd.Env = append(cmd.Env, tt.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode || stderr.String() != tt.wantStderr {
				t.Errorf("exit %d, stderr %q; want %d, %q", code, stderr.String(), tt.wantCode, tt.wantStderr)
			}
		})
	}
}
