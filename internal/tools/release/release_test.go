//go:build release

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/keyward/keyward/internal/ociimage"
)

var testStamps = stamps{Version: "v1.2.3", Commit: "0123456789abcdef0123456789abcdef01234567", Date: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}

// moduleRoot is the repository's root, two levels up from this package.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// copySource copies the module's files (those git tracks, or would) into
// a new directory, so that a build there has other paths.
func copySource(t *testing.T, root string) string {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("skipped: cannot list the source files without git: %v", err)
	}
	dst := filepath.Join(t.TempDir(), "elsewhere", "keyward-src")
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, name)
		fi, err := os.Lstat(src)
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, or a symlink
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dst, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// envWith returns the environment with the given variables replaced.
func envWith(kv ...string) []string {
	env := os.Environ()
	for _, set := range kv {
		k, _, _ := strings.Cut(set, "=")
		out := env[:0:0]
		for _, e := range env {
			if !strings.HasPrefix(e, k+"=") {
				out = append(out, e)
			}
		}
		env = append(out, set)
	}
	return env
}

// TestReproducibleBuild builds the full release binary for this platform
// twice, the second time from a copy of the source at another path, with
// an empty build cache, other temporary directories, another time zone
// and a builder's CPU level, and requires identical bytes. One empty cache
// means compiling every dependency once (about a minute on two idle cores).
func TestReproducibleBuild(t *testing.T) {
	root := moduleRoot(t)
	target := runtime.GOOS + "/" + runtime.GOARCH
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	ctx := t.Context()
	if err := build(ctx, root, target, a, testStamps, "", envWith("TMPDIR="+t.TempDir())); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	env := envWith("GOCACHE="+t.TempDir(), "GOTMPDIR="+tmp, "TMPDIR="+tmp, "TZ=Pacific/Auckland", "GOAMD64=v3", "GOARM64=v8.2", "SOURCE_DATE_EPOCH=1")
	start := time.Now()
	if err := build(ctx, copySource(t, root), target, b, testStamps, "", env); err != nil {
		t.Fatal(err)
	}
	t.Logf("cold build of %s: %s", target, time.Since(start).Round(time.Second))
	ba, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ba, bb) {
		first := 0
		for first < min(len(ba), len(bb)) && ba[first] == bb[first] {
			first++
		}
		t.Fatalf("two builds of %s differ: %d and %d bytes, first difference at offset %d", target, len(ba), len(bb), first)
	}
	t.Logf("%s: %d bytes, identical", target, len(ba))
}

// TestRelease runs the release pipeline (with the providers left out, so
// that the binaries build quickly) for the two linux platforms twice, and
// checks every artifact: the same bytes both times, SHA256SUMS, the SBOMs
// and the image.
func TestRelease(t *testing.T) {
	root := moduleRoot(t)
	cfg := config{SrcDir: root, Targets: []string{"linux/amd64", "linux/arm64"}, Tags: "no_vault no_awssm no_gcpsm no_k8s",
		stamps: testStamps, Image: "example.test/keyward", Source: "https://example.test/keyward", Log: io.Discard}
	var dists [2]string
	for i := range dists {
		dists[i] = filepath.Join(t.TempDir(), "dist")
		c := cfg
		c.Dist = dists[i]
		if err := release(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	sums := readSums(t, dists[0])
	want := []string{imageArchive, "keyward-linux-amd64", "keyward-linux-amd64.cdx.json", "keyward-linux-arm64", "keyward-linux-arm64.cdx.json"}
	if got := keys(sums); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("SHA256SUMS lists %v, want %v", got, want)
	}
	for name, sum := range sums {
		got, err := fileSHA256(filepath.Join(dists[0], name))
		if err != nil {
			t.Fatal(err)
		}
		if got != sum {
			t.Errorf("SHA256SUMS says %s for %s, the file's is %s", sum, name, got)
		}
		other, err := fileSHA256(filepath.Join(dists[1], name))
		if err != nil {
			t.Fatal(err)
		}
		if other != got {
			t.Errorf("%s differs between two release runs", name)
		}
	}
	if a, b := readFile(t, filepath.Join(dists[0], "SHA256SUMS")), readFile(t, filepath.Join(dists[1], "SHA256SUMS")); a != b {
		t.Error("SHA256SUMS differs between two release runs")
	}
	if _, err := exec.LookPath("sha256sum"); err == nil {
		cmd := exec.Command("sha256sum", "--check", "--strict", "SHA256SUMS")
		cmd.Dir = dists[0]
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum --check SHA256SUMS: %v\n%s", err, out)
		}
	}
	for _, target := range cfg.Targets {
		checkSBOM(t, filepath.Join(dists[0], binaryName(target)+".cdx.json"), target)
	}
	if err := ociimage.Check(filepath.Join(dists[0], "oci"), "example.test/keyward:v1.2.3"); err != nil {
		t.Errorf("the release's image: %v", err)
	}
}

func checkSBOM(t *testing.T, path, target string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bom := new(cdx.BOM)
	if err := cdx.NewBOMDecoder(f, cdx.BOMFileFormatJSON).Decode(bom); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	goos, goarch, _ := strings.Cut(target, "/")
	c := bom.Metadata.Component
	switch {
	case bom.BOMFormat != "CycloneDX":
		t.Errorf("%s: bomFormat %q", path, bom.BOMFormat)
	case c == nil || c.Name != pkg || c.Version != testStamps.Version:
		t.Errorf("%s: main component %+v, want %s %s", path, c, pkg, testStamps.Version)
	case !strings.Contains(c.PackageURL, "goos="+goos) || !strings.Contains(c.PackageURL, "goarch="+goarch):
		t.Errorf("%s: main component purl %q is not for %s", path, c.PackageURL, target)
	case c.Licenses == nil || (*c.Licenses)[0].License.ID != "Apache-2.0":
		t.Errorf("%s: main component has no Apache-2.0 license", path)
	case bom.Metadata.Timestamp != testStamps.Date.Format(time.RFC3339):
		t.Errorf("%s: timestamp %q, want the commit date %s", path, bom.Metadata.Timestamp, testStamps.Date.Format(time.RFC3339))
	case bom.SerialNumber != "":
		t.Errorf("%s: a serial number (random on every run)", path)
	}
	deps := map[string]bool{}
	for _, comp := range *bom.Components {
		deps[comp.Name] = true
	}
	for _, want := range []string{"std", "github.com/spf13/cobra", "gopkg.in/yaml.v3"} {
		if !deps[want] {
			t.Errorf("%s: no component %s", path, want)
		}
	}
}

func readSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(readFile(t, filepath.Join(dir, "SHA256SUMS"))))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 {
			t.Fatalf("SHA256SUMS line %q is not HEX  NAME", sc.Text())
		}
		sums[name] = sum
	}
	return sums
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
