package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testenv"
)

// TestCSIProviderBadKubeCA: a --kube-ca-file that is not a CA bundle (a
// directory, a bundle holding a private key) is a bad flag: exit 2 with
// one line naming the file and what is wrong, before any socket is
// created, never a byte of its content.
func TestCSIProviderBadKubeCA(t *testing.T) {
	ca, err := testenv.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue("127.0.0.1", true)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	withKey := filepath.Join(dir, "with-key.pem")
	if err := os.WriteFile(withKey, append(append([]byte{}, certPEM...), keyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, file, want string }{
		{"directory", dir, "is a directory"},
		{"private key", withKey, "PEM block 2 is a PRIVATE KEY"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sockets := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binPath, "csi-provider", "--socket-dir", sockets,
				"--kube-api-server", "https://127.0.0.1:1", "--kube-ca-file", c.file)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("keyward csi-provider served with a --kube-ca-file that is not a CA bundle (stopped after 20s)")
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitUsage {
				t.Fatalf("exit %v, want %d; stderr %q", err, exitUsage, stderr.String())
			}
			msg := stderr.String()
			if strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "--kube-ca-file") || !strings.Contains(msg, c.file) || !strings.Contains(msg, c.want) {
				t.Errorf("stderr %q: want one line naming --kube-ca-file %s and saying %q", msg, c.file, c.want)
			}
			if strings.Contains(msg, "MIG") {
				t.Error("leaked value of the bundle's private key in the error")
			}
			if entries, _ := os.ReadDir(sockets); len(entries) > 0 {
				t.Errorf("%d files left in the socket directory", len(entries))
			}
		})
	}
}
