//go:build integration

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/zip"
)

// TestActionFromSource runs action.yml with from: source: it builds the
// pinned version with go install from a module proxy, here a directory
// serving this repository's HEAD as v0.1.0 (GOPROXY=file://, no network),
// and the binary reports that version, which Go's build information carries
// for a go install build.
func TestActionFromSource(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "TZ=UTC")
		out, err := cmd.Output()
		if err != nil {
			t.Skipf("skipped: needs the git repository (git %v: %v)", args, err)
		}
		return string(out)
	}
	const version = "v0.1.0"
	commitTime := strings.TrimSpace(git("log", "-1", "--format=%cd", "--date=format-local:%Y-%m-%dT%H:%M:%SZ"))
	proxy := t.TempDir()
	dir := filepath.Join(proxy, "github.com", "keyward", "keyward", "@v")
	must(t, os.MkdirAll(dir, 0o755))
	// The committed tree (git archive), as the module proxy would serve it.
	src := t.TempDir()
	archive := exec.Command("sh", "-c", `git archive HEAD | tar -x -C "$0"`, src)
	archive.Dir = root
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive HEAD: %v\n%s", err, out)
	}
	var zb bytes.Buffer
	if err := zip.CreateFromDir(&zb, module.Version{Path: "github.com/keyward/keyward", Version: version}, src); err != nil {
		t.Fatalf("module zip of HEAD: %v", err)
	}
	info, _ := json.Marshal(map[string]string{"Version": version, "Time": commitTime})
	for name, data := range map[string][]byte{
		"list": []byte(version + "\n"), version + ".info": info,
		version + ".mod": []byte(git("show", "HEAD:go.mod")), version + ".zip": zb.Bytes(),
	} {
		must(t, os.WriteFile(filepath.Join(dir, name), data, 0o644))
	}

	r := newActionRunner(t)
	r.extraEnv = []string{"GOPROXY=file://" + filepath.ToSlash(proxy), "GOSUMDB=off"}
	start := time.Now()
	res := r.runAction(root, version, map[string]string{"from": "source", "run": "false"})
	if res.err != nil {
		t.Fatalf("action with from: source: %v\n%s", res.err, res.log)
	}
	t.Logf("go install in the action: %s", time.Since(start).Round(time.Second))
	if res.outputs["version"] != version {
		t.Errorf("output version = %q, want %s (from the build information)", res.outputs["version"], version)
	}
	next := r.run("a later step", "keyward version -o json", nil)
	if next.err != nil {
		t.Fatalf("keyward on PATH: %v\n%s", next.err, next.stderr)
	}
	var in struct{ Version, Commit, Date string }
	if err := json.Unmarshal([]byte(next.stdout), &in); err != nil || in.Version != version {
		t.Errorf("keyward version -o json of the go install build: %q (%v), want version %s", next.stdout, err, version)
	}
}
