//go:build linux

package kubenode

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/keyward/keyward/internal/testenv"
)

// File is a file or directory of an image made by WriteImage.
type File struct {
	// Path is its absolute path in the image.
	Path string
	// Mode is its permission bits.
	Mode int64
	// Dir makes it a directory (Data is ignored).
	Dir bool
	// Data is a file's content.
	Data []byte
	// UID and GID own it.
	UID, GID int
}

// WriteImage writes a one-layer image for linux on this machine's
// architecture holding files, with the config cfg, named ref (a full
// reference, such as keyward.test/app:1),
// as a docker-save archive at archive, for Node.ImportImage. Missing
// parent directories are added (0755, root).
func WriteImage(archive, ref string, files []File, cfg v1.Config) error {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("image name %q: %w", ref, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	seen := map[string]bool{}
	epoch := time.Unix(0, 0)
	var dirs func(p string) error
	dirs = func(p string) error {
		p = path.Dir(p)
		if p == "/" || seen[p] {
			return nil
		}
		if err := dirs(p); err != nil {
			return err
		}
		seen[p] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(p, "/") + "/", Mode: 0o755, ModTime: epoch})
	}
	for _, f := range files {
		if !path.IsAbs(f.Path) {
			return fmt.Errorf("image %s: path %q is not absolute", ref, f.Path)
		}
		if err := dirs(f.Path); err != nil {
			return err
		}
		hdr := &tar.Header{Name: strings.TrimPrefix(path.Clean(f.Path), "/"), Mode: f.Mode, Uid: f.UID, Gid: f.GID, ModTime: epoch}
		if f.Dir {
			seen[path.Clean(f.Path)] = true
			hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
		} else {
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(f.Data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.Data); err != nil && !f.Dir {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	if !slices.ContainsFunc(cfg.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		cfg.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin"}, cfg.Env...)
	}
	cf.Config = cfg
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(archive), 0o755); err != nil {
		return err
	}
	return tarball.WriteToFile(archive, tag, img)
}

// BuildStatic builds the Go main package pkg (a path relative to the
// repository root, such as ./cmd/keyward) as a static binary for linux
// on this machine's architecture at out.
func BuildStatic(pkg, out string) error {
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v: %s", pkg, err, b)
	}
	return nil
}

// buildPause builds the sandbox image PauseImage into dir/images.
func buildPause(dir string) error {
	bin := filepath.Join(dir, "bin", "pause")
	if err := BuildStatic("./test/servers/node/pause", bin); err != nil {
		return err
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	return WriteImage(filepath.Join(dir, "images", "pause.tar"), PauseImage,
		[]File{{Path: "/pause", Mode: 0o755, Data: b}}, v1.Config{Entrypoint: []string{"/pause"}})
}
