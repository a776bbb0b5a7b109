package ociimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const testName = "example.test/keyward:v1.2.3"

var testOpts = Options{Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Version: "v1.2.3", Revision: "0123456789abcdef0123456789abcdef01234567", Source: "https://example.test/keyward"}

var (
	binsOnce sync.Once
	bins     map[string][]byte
	binsErr  error
)

// staticBinaries builds testdata/hello, statically, for each of Platforms.
func staticBinaries(t *testing.T) map[string][]byte {
	t.Helper()
	binsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ociimage-")
		if err != nil {
			binsErr = err
			return
		}
		defer os.RemoveAll(dir)
		bins = map[string][]byte{}
		for _, p := range Platforms {
			out := filepath.Join(dir, p.Architecture)
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./testdata/hello")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
			if o, err := cmd.CombinedOutput(); err != nil {
				binsErr = errors.New("go build testdata/hello for " + p.String() + ": " + err.Error() + "\n" + string(o))
				return
			}
			if bins[p.String()], err = os.ReadFile(out); err != nil {
				binsErr = err
				return
			}
		}
	})
	if binsErr != nil {
		t.Fatal(binsErr)
	}
	return bins
}

func writeLayout(t *testing.T, b map[string][]byte) string {
	t.Helper()
	idx, err := Index(b, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "oci")
	if err := WriteLayout(dir, idx, testName); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLayoutIsValid(t *testing.T) {
	t.Parallel()
	dir := writeLayout(t, staticBinaries(t))
	if err := Check(dir, testName); err != nil {
		t.Fatalf("Check of the layout WriteLayout wrote: %v", err)
	}
	if err := Check(dir, "example.test/other:v1"); err == nil || !strings.Contains(err.Error(), "annotation") {
		t.Errorf("Check with another name = %v, want an error about the name annotation", err)
	}
}

// TestArchive checks the archive is a layout (Check passes on what it
// unpacks to) and the same bytes every time.
func TestArchive(t *testing.T) {
	t.Parallel()
	b := staticBinaries(t)
	var archives [2][]byte
	for i := range archives {
		var buf bytes.Buffer
		if err := WriteArchive(&buf, writeLayout(t, b), testOpts.Created); err != nil {
			t.Fatal(err)
		}
		archives[i] = buf.Bytes()
	}
	if !bytes.Equal(archives[0], archives[1]) {
		t.Fatal("two archives of the same inputs differ")
	}
	idx, err := Index(b, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "images", "keyward.tar")
	if err := WriteImageArchive(path, idx, testName, testOpts.Created); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, archives[0]) {
		t.Errorf("WriteImageArchive wrote other bytes than WriteLayout and WriteArchive (%v)", err)
	}
	dir := t.TempDir()
	tr := tar.NewReader(bytes.NewReader(archives[0]))
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !h.ModTime.Equal(testOpts.Created) || h.Uid != 0 || h.Uname != "" {
			t.Errorf("%s: mtime %v, uid %d, uname %q; want %v, 0 and none", h.Name, h.ModTime, h.Uid, h.Uname, testOpts.Created)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"oci-layout", "index.json", "blobs/sha256/"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("archive has no %s (entries: %v)", want, names)
		}
	}
	if err := Check(dir, testName); err != nil {
		t.Errorf("Check of the unpacked archive: %v", err)
	}
}

func TestImageIsReproducible(t *testing.T) {
	t.Parallel()
	b := staticBinaries(t)
	var digests [2]string
	for i := range digests {
		idx, err := Index(b, testOpts)
		if err != nil {
			t.Fatal(err)
		}
		d, err := idx.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests[i] = d.String()
	}
	if digests[0] != digests[1] {
		t.Errorf("two indexes of the same inputs: %s and %s", digests[0], digests[1])
	}
	// Index reuses the base layer of one creation time: build it afresh.
	var bases [2]string
	for i := range bases {
		l, err := newBaseLayer(testOpts.Created)
		if err != nil {
			t.Fatal(err)
		}
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		bases[i] = d.String()
	}
	if bases[0] != bases[1] {
		t.Errorf("two base layers of the same time: %s and %s", bases[0], bases[1])
	}
	later := testOpts
	later.Created = later.Created.Add(time.Second)
	idx, err := Index(b, later)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := idx.Digest(); d.String() == digests[0] {
		t.Error("the index digest does not change with Created: the date is not in the image")
	}
}

// TestCheckFindsBrokenImages makes images that are wrong in one way each
// and checks that Check says so.
func TestCheckFindsBrokenImages(t *testing.T) {
	t.Parallel()
	good := staticBinaries(t)
	tests := []struct {
		name    string
		amd64   func() []byte
		wantErr string
	}{
		{"not an executable", func() []byte { return []byte("#!/bin/sh\necho hi\n") }, "not an ELF executable"},
		{"binary of another architecture", func() []byte { return good["linux/arm64"] }, "ELF machine is EM_AARCH64"},
		{"dynamically linked", func() []byte {
			if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
				t.Skip("skipped: needs a dynamically linked linux/amd64 executable from the host")
			}
			b, err := os.ReadFile("/bin/sh")
			if err != nil {
				t.Skipf("skipped: no /bin/sh to use as a dynamically linked executable: %v", err)
			}
			return b
		}, "dynamically linked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := map[string][]byte{"linux/amd64": tt.amd64(), "linux/arm64": good["linux/arm64"]}
			err := Check(writeLayout(t, b), testName)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Check = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
	// An index for one platform is an image (a test's), not a release.
	one, err := Index(map[string][]byte{"linux/amd64": good["linux/amd64"]}, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "oci")
	if err := WriteLayout(dir, one, testName); err != nil {
		t.Fatal(err)
	}
	if err := Check(dir, testName); err == nil || !strings.Contains(err.Error(), "platforms [linux/amd64], want [linux/amd64 linux/arm64]") {
		t.Errorf("Check of a one-platform index = %v, want an error naming the missing platform", err)
	}
	for _, b := range []map[string][]byte{nil, {"linux/s390x": good["linux/amd64"]}} {
		if _, err := Index(b, testOpts); err == nil {
			t.Errorf("Index(%v) succeeded", slices.Collect(maps.Keys(b)))
		}
	}
}
