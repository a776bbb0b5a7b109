// Command release builds keyward's release artifacts into a directory
// (`make release` runs it into dist/):
//
//   - keyward-OS-ARCH: static binaries (CGO_ENABLED=0, -trimpath,
//     -buildvcs=false) for linux and darwin on amd64 and arm64 (or the
//     -targets asked for), stamped with the version, the commit and the
//     commit's date;
//   - keyward-OS-ARCH.cdx.json: a CycloneDX SBOM of each binary, made by
//     the pinned cyclonedx-gomod from the module list the binary embeds;
//   - keyward-image.oci.tar and oci/: the multi-arch OCI image of the two
//     linux binaries (see internal/ociimage), as a tar for
//     `ctr images import` and as a layout directory for skopeo or crane;
//   - SHA256SUMS of every file above (in `sha256sum -c` format).
//
// Every output is a function of the source tree and the stamps: the date
// is the commit's (SOURCE_DATE_EPOCH), nothing depends on the build host's
// paths, time, cache or CPU level, so two runs give identical bytes.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/keyward/keyward/internal/ociimage"
)

// pkg is keyward's module path; the stamps are its internal/version variables.
const pkg = "github.com/keyward/keyward"

// defaultTargets are the platforms a release has binaries for; the image
// has the linux ones (ociimage.Platforms).
var defaultTargets = []string{"darwin/amd64", "darwin/arm64", "linux/amd64", "linux/arm64"}

// stamps are the build's identity, set in internal/version.
type stamps struct {
	// Version is the release version ("v1.2.3").
	Version string
	// Commit is the full commit hash.
	Commit string
	// Date is the commit's date.
	Date time.Time
}

// ldflags returns the linker flags that strip the binary and stamp it.
func (s stamps) ldflags() string {
	v := pkg + "/internal/version."
	return fmt.Sprintf("-s -w -X %sVersion=%s -X %sCommit=%s -X %sDate=%s",
		v, s.Version, v, s.Commit, v, s.Date.UTC().Format(time.RFC3339))
}

// build compiles the keyward binary for target ("linux/arm64") from the
// module in srcDir into out. env is the environment of the go command (its
// GOCACHE, GOTMPDIR…); the variables that decide the output are set here.
func build(ctx context.Context, srcDir, target, out string, s stamps, tags string, env []string) error {
	goos, goarch, ok := strings.Cut(target, "/")
	if !ok {
		return fmt.Errorf("target %q: want OS/ARCH", target)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-tags", tags, "-ldflags", s.ldflags(), "-o", out, "./cmd/keyward")
	cmd.Dir = srcDir
	// The CPU levels are set so that a builder's GOAMD64=v3 cannot
	// change the release binary.
	cmd.Env = append(slices.Clip(env), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch, "GOAMD64=v1", "GOARM64=v8.0")
	if o, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build for %s: %w\n%s", target, err, o)
	}
	return nil
}

// writeSBOM writes the CycloneDX SBOM (JSON, spec 1.6) of the keyward binary
// bin, built for target, to out, with cyclonedx-gomod (the executable at tool) reading the
// modules the binary embeds, then sets what the tool cannot know: the
// timestamp (the commit's date, not now) and keyward's own license.
func writeSBOM(ctx context.Context, tool, target, bin, out string, s stamps) error {
	goos, goarch, _ := strings.Cut(target, "/")
	cmd := exec.CommandContext(ctx, tool, "bin", "-json", "-std", "-noserial", "-notimestamp", "-version", s.Version, "-output", "-", bin)
	// The tool takes the platform of its package URLs from the
	// environment, not from the binary.
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cyclonedx-gomod bin %s: %w\n%s", bin, err, stderr.Bytes())
	}
	bom := new(cdx.BOM)
	if err := cdx.NewBOMDecoder(&stdout, cdx.BOMFileFormatJSON).Decode(bom); err != nil {
		return fmt.Errorf("sbom of %s: %w", bin, err)
	}
	if bom.Metadata == nil || bom.Metadata.Component == nil {
		return fmt.Errorf("sbom of %s: no main component", bin)
	}
	bom.Metadata.Timestamp = s.Date.UTC().Format(time.RFC3339)
	// The tool is named with its version; the hashes of its executable
	// would depend on the machine that compiled it.
	if t := bom.Metadata.Tools; t != nil {
		for i := range deref(t.Tools) {
			(*t.Tools)[i].Hashes = nil
		}
		for i := range deref(t.Components) {
			(*t.Components)[i].Hashes = nil
		}
	}
	bom.Metadata.Component.Licenses = &cdx.Licenses{{License: &cdx.License{ID: "Apache-2.0"}}}
	var b bytes.Buffer
	enc := cdx.NewBOMEncoder(&b, cdx.BOMFileFormatJSON)
	enc.SetPretty(true).SetEscapeHTML(false)
	if err := enc.EncodeVersion(bom, bom.SpecVersion); err != nil {
		return fmt.Errorf("sbom of %s: %w", bin, err)
	}
	return os.WriteFile(out, b.Bytes(), 0o644)
}

func deref[T any](p *[]T) []T {
	if p == nil {
		return nil
	}
	return *p
}

// writeSums writes SHA256SUMS in dir: one "HEX  NAME" line for each
// regular file directly in dir, sorted by name.
func writeSums(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, e := range ents {
		if !e.Type().IsRegular() || e.Name() == "SHA256SUMS" {
			continue
		}
		sum, err := fileSHA256(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, e.Name())
	}
	return os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(b.String()), 0o644)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// binaryName is the release file name of the binary for target.
func binaryName(target string) string { return "keyward-" + strings.ReplaceAll(target, "/", "-") }

// imageArchive is the file name of the image's OCI archive.
const imageArchive = "keyward-image.oci.tar"

// config is one release run.
type config struct {
	SrcDir, Dist string
	Targets      []string
	Tags         string
	stamps       stamps
	// Image is the image's name without a tag; the tag is the version.
	Image string
	// Source is the project's URL, for the image's labels.
	Source string
	// Log receives one line per step.
	Log io.Writer
}

// release builds every artifact into c.Dist, which it empties first.
func release(ctx context.Context, c config) error {
	if err := os.RemoveAll(c.Dist); err != nil {
		return err
	}
	if err := os.MkdirAll(c.Dist, 0o755); err != nil {
		return err
	}
	tool, err := sbomTool(ctx, c.SrcDir)
	if err != nil {
		return err
	}
	bins := map[string][]byte{}
	for _, t := range c.Targets {
		start := time.Now()
		out := filepath.Join(c.Dist, binaryName(t))
		if err := build(ctx, c.SrcDir, t, out, c.stamps, c.Tags, os.Environ()); err != nil {
			return err
		}
		if err := writeSBOM(ctx, tool, t, out, out+".cdx.json", c.stamps); err != nil {
			return err
		}
		b, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		bins[t] = b
		fmt.Fprintf(c.Log, "%-24s %6.1f MiB  %s\n", binaryName(t), float64(len(b))/(1<<20), time.Since(start).Round(100*time.Millisecond))
	}
	if err := image(c, bins); err != nil {
		return err
	}
	return writeSums(c.Dist)
}

// image writes the OCI layout (dist/oci) and its archive from the binaries
// of bins for the image's platforms (linux; the others have no image), when
// bins has all of them; with fewer it writes nothing.
func image(c config, bins map[string][]byte) error {
	linux := map[string][]byte{}
	for _, p := range ociimage.Platforms {
		b, ok := bins[p.String()]
		if !ok {
			return nil
		}
		linux[p.String()] = b
	}
	start := time.Now()
	idx, err := ociimage.Index(linux, ociimage.Options{Created: c.stamps.Date, Version: c.stamps.Version, Revision: c.stamps.Commit, Source: c.Source})
	if err != nil {
		return err
	}
	dir := filepath.Join(c.Dist, "oci")
	if err := ociimage.WriteLayout(dir, idx, c.Image+":"+c.stamps.Version); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(c.Dist, imageArchive))
	if err != nil {
		return err
	}
	if err := ociimage.WriteArchive(f, dir, c.stamps.Date); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Log, "%-24s %s:%s@%s  %s\n", imageArchive, c.Image, c.stamps.Version, d, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// sbomTool builds cyclonedx-gomod (pinned by go.mod's tool directive) for
// the host and returns its path: `go tool` would build it for GOOS/GOARCH.
func sbomTool(ctx context.Context, srcDir string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "tool", "-n", "cyclonedx-gomod")
	cmd.Dir = srcDir
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "GOOS=") || strings.HasPrefix(kv, "GOARCH=")
	})
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go tool -n cyclonedx-gomod: %w\n%s", err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out)), nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	c := config{SrcDir: ".", Log: stdout}
	var targets, date string
	fs.StringVar(&c.Dist, "dist", "dist", "output directory (emptied first)")
	fs.StringVar(&targets, "targets", strings.Join(defaultTargets, ","), "comma-separated OS/ARCH list")
	fs.StringVar(&c.Tags, "tags", "", "build tags (no_vault, no_awssm, no_gcpsm, no_k8s leave providers out)")
	fs.StringVar(&c.stamps.Version, "version", "", "release version (required)")
	fs.StringVar(&c.stamps.Commit, "commit", "", "commit hash (required)")
	fs.StringVar(&date, "date", "", "commit date, RFC 3339 (required; the SOURCE_DATE_EPOCH of the build)")
	fs.StringVar(&c.Image, "image", "keyward", "image name, tagged with the version (the chart's and the webhook's default repository)")
	fs.StringVar(&c.Source, "source", "https://github.com/keyward/keyward", "project URL for the image's labels")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.stamps.Version == "" || c.stamps.Commit == "" || date == "" {
		return errors.New("-version, -commit and -date are required (make release sets them from git)")
	}
	t, err := time.Parse(time.RFC3339, date)
	if err != nil {
		return fmt.Errorf("-date: %w", err)
	}
	c.stamps.Date = t
	c.Targets = strings.Split(targets, ",")
	sort.Strings(c.Targets)
	start := time.Now()
	if err := release(ctx, c); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "release %s (%s) in %s: %s\n", c.stamps.Version, c.stamps.Commit, time.Since(start).Round(time.Second), c.Dist)
	return nil
}
