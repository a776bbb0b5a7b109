package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// TestImageLinuxOnly gives the image step the binaries of a default
// release, darwin ones included: the image has the linux platforms only,
// and without both linux binaries there is no image at all.
func TestImageLinuxOnly(t *testing.T) {
	s := stamps{Version: "v1.2.3", Commit: "0123456789abcdef0123456789abcdef01234567", Date: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	bins := map[string][]byte{}
	for _, target := range defaultTargets {
		bins[target] = []byte("binary for " + target)
	}
	c := config{Dist: t.TempDir(), stamps: s, Image: "example.test/keyward", Log: io.Discard}
	if err := image(c, bins); err != nil {
		t.Fatalf("image of a release with darwin binaries: %v", err)
	}
	idx, err := layout.ImageIndexFromPath(filepath.Join(c.Dist, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) != 1 {
		t.Fatalf("layout index: %v, %d manifests, want the release's index", err, len(m.Manifests))
	}
	img, err := idx.ImageIndex(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := img.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range im.Manifests {
		got = append(got, d.Platform.String())
	}
	if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(got, want) {
		t.Errorf("image platforms %v, want %v", got, want)
	}

	c.Dist = t.TempDir()
	delete(bins, "linux/arm64")
	if err := image(c, bins); err != nil {
		t.Fatalf("image without linux/arm64: %v", err)
	}
	if ents, _ := os.ReadDir(c.Dist); len(ents) != 0 {
		t.Errorf("image without linux/arm64 wrote %d files, want none", len(ents))
	}
}
