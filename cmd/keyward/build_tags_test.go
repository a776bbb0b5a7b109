package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/testenv"
)

// TestProvidersNotInBuild builds keyward with every optional provider left
// out (as make build TAGS="no_vault no_awssm no_gcpsm no_k8s" does) and
// checks that a reference to each one is refused saying it is not in this
// build and which tag did it, as a usage error of get and a configuration
// error of check, while file: still works and the SDKs are not linked.
func TestProvidersNotInBuild(t *testing.T) {
	t.Parallel()
	bin := buildKeyward(t, "-tags", minimalTags)
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, sdk := range []string{"github.com/hashicorp/vault/api", "github.com/aws/aws-sdk-go-v2", "cloud.google.com/go/secretmanager", "k8s.io/client-go"} {
		if strings.Contains(string(out), "dep\t"+sdk) {
			t.Errorf("the minimal build links %s", sdk)
		}
	}
	dir := t.TempDir()
	run := func(args ...string) result {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		var r result
		var so, se strings.Builder
		cmd.Stdout, cmd.Stderr = &so, &se
		if err := cmd.Run(); err != nil {
			ee, ok := err.(*exec.ExitError)
			if !ok {
				t.Fatal(err)
			}
			r.code = ee.ExitCode()
		}
		r.stdout, r.stderr = so.String(), se.String()
		return r
	}
	for ref, tag := range map[string]string{
		"vault://secret/app#password": "no_vault",
		"awssm://prod/db#password":    "no_awssm",
		"gcpsm://proj-123/db":         "no_gcpsm",
		"k8s://ns/app#password":       "no_k8s",
	} {
		r := run("get", ref)
		want := "is not in this build (keyward was built with -tags " + tag + ")"
		if r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("get %s: exit %d, stderr %q; want exit 2 and %q", ref, r.code, r.stderr, want)
		}
	}
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), "version: 1\nproviders:\n  vault-eu: {kind: vault, address: \"https://vault.eu:8200\"}\nsecrets:\n  A: vault-eu://secret/app#k\n  B: file:b.txt\n")
	testenv.WriteFile(t, filepath.Join(dir, "b.txt"), "file-value")
	r := run("check", "-c", "keyward.yaml", "--offline")
	if r.code != exitConfig || !strings.Contains(r.stderr, "provider vault-eu (kind vault) is not in this build (keyward was built with -tags no_vault)") {
		t.Errorf("check of a config using vault: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := run("get", "file:b.txt"); r.code != 0 || r.stdout != "file-value" {
		t.Errorf("get file:b.txt in the minimal build: exit %d, %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
