// Package ociimage builds keyward's container image without Docker and
// without a registry: a scratch image with the static binary, CA
// certificates and a non-root user, for linux/amd64 and linux/arm64,
// written as an OCI image layout and as a tar of that layout that
// `ctr images import` and `docker load` accept. The release build
// (`make release`) and the end-to-end tests on a real kubelet use it, so
// the image the tests run is the image users get.
//
// The output depends only on its inputs: file times and the image's
// creation time are Options.Created (the commit's date), and nothing is
// read from the host.
package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// Paths and identity inside the image.
const (
	// BinaryPath is where the keyward binary is, the image's entrypoint
	// (as in the Dockerfile).
	BinaryPath = "/usr/local/bin/keyward"
	// CACertsPath is the CA bundle Go's crypto/x509 reads on Linux.
	CACertsPath = "/etc/ssl/certs/ca-certificates.crt"
	// UID and GID are the non-root user the image runs as (distroless's
	// "nonroot").
	UID, GID = 65532, 65532
	// User is the image config's USER.
	User = "65532:65532"
)

// Options describe the image beyond its binaries.
type Options struct {
	// Created is the image's creation time and the time of every file
	// in it; use the commit's date for reproducible images.
	Created time.Time
	// Version and Revision are the release version and the commit,
	// recorded as OCI labels and annotations.
	Version, Revision string
	// Source is the project's URL (org.opencontainers.image.source).
	Source string
}

// Platforms are the platforms Index builds, in order.
var Platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// Image returns the image for one platform from the static keyward
// binary built for it.
func Image(binary []byte, p v1.Platform, o Options) (v1.Image, error) {
	base, err := baseLayer(o.Created)
	if err != nil {
		return nil, err
	}
	app, err := layer(o.Created, []entry{
		dir("usr", 0o755), dir("usr/local", 0o755), dir("usr/local/bin", 0o755),
		file(strings.TrimPrefix(BinaryPath, "/"), 0o755, binary),
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1),
		mutate.Addendum{Layer: base, History: v1.History{Created: v1.Time{Time: o.Created}, CreatedBy: "keyward ociimage: /etc/passwd, /etc/group, CA certificates", Comment: "base"}},
		mutate.Addendum{Layer: app, History: v1.History{Created: v1.Time{Time: o.Created}, CreatedBy: "keyward ociimage: " + BinaryPath}},
	)
	if err != nil {
		return nil, fmt.Errorf("image for %s: %w", p, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS, cf.Variant = p.Architecture, p.OS, p.Variant
	cf.Created = v1.Time{Time: o.Created}
	cf.Config = v1.Config{
		User:       User,
		Entrypoint: []string{BinaryPath},
		Cmd:        []string{"--help"},
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
		WorkingDir: "/",
		Labels:     o.annotations(),
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return mutate.ConfigMediaType(img, types.OCIConfigJSON), nil
}

// annotations are the OCI labels of each image and the annotations of
// the index.
func (o Options) annotations() map[string]string {
	a := map[string]string{
		"org.opencontainers.image.title":       "keyward",
		"org.opencontainers.image.description": "Inject secrets into a workload as env vars or files",
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.created":     o.Created.UTC().Format(time.RFC3339),
	}
	for k, v := range map[string]string{"version": o.Version, "revision": o.Revision, "source": o.Source, "url": o.Source} {
		if v != "" {
			a["org.opencontainers.image."+k] = v
		}
	}
	return a
}

// Index returns the image index of keyward for the platforms binaries
// has, a map from a platform of Platforms (by its String, "linux/amd64")
// to the static binary for it. A release has every platform; a test that
// runs the image on this machine may build it for its own only.
func Index(binaries map[string][]byte, o Options) (v1.ImageIndex, error) {
	for p := range binaries {
		if !slices.ContainsFunc(Platforms, func(q v1.Platform) bool { return q.String() == p }) {
			return nil, fmt.Errorf("image index: %s is not one of the image's platforms %v", p, Platforms)
		}
	}
	if len(binaries) == 0 {
		return nil, errors.New("image index: no binary")
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range Platforms {
		bin, ok := binaries[p.String()]
		if !ok {
			continue
		}
		img, err := Image(bin, p, o)
		if err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	return mutate.Annotations(idx, o.annotations()).(v1.ImageIndex), nil
}

// WriteLayout writes idx as an OCI image layout in dir (which must not
// exist or be empty), tagged name ("keyward:v1.2.3"): the
// layout's index.json points at idx with the annotations
// org.opencontainers.image.ref.name and io.containerd.image.name that
// ctr and other tools read the image's name from.
func WriteLayout(dir string, idx v1.ImageIndex, name string) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("oci layout %s: %w", dir, err)
	}
	anns := map[string]string{"org.opencontainers.image.ref.name": name, "io.containerd.image.name": name}
	if err := p.AppendIndex(idx, layout.WithAnnotations(anns)); err != nil {
		return fmt.Errorf("oci layout %s: %w", dir, err)
	}
	return nil
}

// WriteImageArchive writes idx, named name, as the OCI archive at path
// (through a layout in a temporary directory): what `ctr images import`
// takes.
func WriteImageArchive(path string, idx v1.ImageIndex, name string, mtime time.Time) error {
	tmp, err := os.MkdirTemp("", "keyward-oci-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "oci")
	if err := WriteLayout(dir, idx, name); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteArchive(f, dir, mtime); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WriteArchive writes the OCI layout in dir to w as a tar with sorted
// entries, fixed owners and the time mtime: the archive `ctr images import`
// and `docker load` read.
func WriteArchive(w io.Writer, dir string, mtime time.Time) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("oci archive of %s: %w", dir, err)
	}
	slices.Sort(paths)
	tw := tar.NewWriter(w)
	for _, p := range paths {
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime.Truncate(time.Second), Mode: 0o644, Typeflag: tar.TypeReg, Size: fi.Size()}
		switch {
		case fi.IsDir():
			hdr.Name += "/"
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o755, 0
		case !fi.Mode().IsRegular():
			return fmt.Errorf("oci archive: %s is not a regular file", p)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("oci archive: %s: %w", p, err)
			}
		}
	}
	return tw.Close()
}

// CACerts returns the CA bundle the image carries, PEM: the Mozilla root
// store as golang.org/x/crypto/x509roots/fallback ships it, so the image
// depends on a pinned module and not on the build host. Roots that the
// store trusts only with constraints (such as "not for certificates issued
// after a date") are left out, since a PEM file cannot carry them.
func CACerts() []byte {
	var b bytes.Buffer
	for c := range bundle.Roots() {
		if c.Constraint != nil {
			continue
		}
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate})
	}
	return b.Bytes()
}

// baseLayers memoizes baseLayer by creation time: every platform's image,
// and every image of one release, has the same one.
var baseLayers sync.Map // int64 (Unix seconds) -> v1.Layer

// baseLayer holds what every platform's image shares: the non-root user
// and group, a home and /tmp, and the CA bundle.
func baseLayer(created time.Time) (v1.Layer, error) {
	key := created.Unix()
	if l, ok := baseLayers.Load(key); ok {
		return l.(v1.Layer), nil
	}
	l, err := newBaseLayer(created)
	if err != nil {
		return nil, err
	}
	l2, _ := baseLayers.LoadOrStore(key, l)
	return l2.(v1.Layer), nil
}

func newBaseLayer(created time.Time) (v1.Layer, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, GID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", GID)
	home := dir("home/nonroot", 0o700)
	home.uid, home.gid = UID, GID
	return layer(created, []entry{
		dir("etc", 0o755),
		file("etc/group", 0o644, []byte(group)),
		file("etc/passwd", 0o644, []byte(passwd)),
		dir("etc/ssl", 0o755), dir("etc/ssl/certs", 0o755),
		file(strings.TrimPrefix(CACertsPath, "/"), 0o644, CACerts()),
		dir("home", 0o755), home,
		dir("tmp", 0o1777),
	})
}

// entry is one file or directory of a layer.
type entry struct {
	name     string
	mode     int64
	dir      bool
	content  []byte
	uid, gid int
}

func dir(name string, mode int64) entry { return entry{name: name, mode: mode, dir: true} }

func file(name string, mode int64, content []byte) entry {
	return entry{name: name, mode: mode, content: content}
}

// layer returns a gzip-compressed OCI layer of entries (in the order
// given, parents first) with every time set to created.
func layer(created time.Time, entries []entry) (v1.Layer, error) {
	var buf bytes.Buffer
	// Level 9 would take 3.5 times as long for 1% less.
	zw, err := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: created.Truncate(time.Second)}
		if e.dir {
			hdr.Typeflag, hdr.Name = tar.TypeDir, e.name+"/"
		} else {
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(e.content))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.content); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	gz := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gz)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
