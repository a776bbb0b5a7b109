package ociimage

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// Check reads the OCI layout in dir and reports the first way it differs
// from what WriteLayout writes: one index named name, of an image for each
// of Platforms, whose digests and sizes hold (go-containerregistry's
// validate), whose configs have the platform, User, entrypoint BinaryPath
// and the license label, and whose file system holds an executable,
// statically linked ELF binary for the platform at BinaryPath, the
// non-root user in /etc/passwd and /etc/group, and a CA bundle that parses.
func Check(dir, name string) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		return fmt.Errorf("oci layout %s: %w", dir, err)
	}
	root, err := p.ImageIndex()
	if err != nil {
		return fmt.Errorf("oci layout %s: %w", dir, err)
	}
	rm, err := root.IndexManifest()
	if err != nil {
		return err
	}
	if len(rm.Manifests) != 1 {
		return fmt.Errorf("index.json lists %d manifests, want 1 (the multi-arch index)", len(rm.Manifests))
	}
	d := rm.Manifests[0]
	if d.MediaType != types.OCIImageIndex {
		return fmt.Errorf("index.json points at a %s, want an OCI image index", d.MediaType)
	}
	for _, k := range []string{"org.opencontainers.image.ref.name", "io.containerd.image.name"} {
		if d.Annotations[k] != name {
			return fmt.Errorf("index.json: annotation %s is %q, want %q", k, d.Annotations[k], name)
		}
	}
	idx, err := root.ImageIndex(d.Digest)
	if err != nil {
		return err
	}
	if err := validate.Index(idx); err != nil {
		return fmt.Errorf("image index: %w", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	var got []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			return fmt.Errorf("manifest %s has no platform", m.Digest)
		}
		got = append(got, m.Platform.String())
		img, err := idx.Image(m.Digest)
		if err != nil {
			return err
		}
		if err := checkImage(img, *m.Platform); err != nil {
			return fmt.Errorf("image for %s: %w", m.Platform, err)
		}
	}
	var want []string
	for _, p := range Platforms {
		want = append(want, p.String())
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("image index has platforms %v, want %v", got, want)
	}
	return nil
}

// elfMachine is the ELF machine of each architecture an image is for.
var elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

func checkImage(img v1.Image, p v1.Platform) error {
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	switch {
	case cf.OS != p.OS || cf.Architecture != p.Architecture:
		return fmt.Errorf("config is for %s/%s", cf.OS, cf.Architecture)
	case cf.Config.User != User:
		return fmt.Errorf("config user is %q, want %q", cf.Config.User, User)
	case !slices.Equal(cf.Config.Entrypoint, []string{BinaryPath}):
		return fmt.Errorf("entrypoint is %q, want [%s]", cf.Config.Entrypoint, BinaryPath)
	case cf.Config.Labels["org.opencontainers.image.licenses"] != "Apache-2.0":
		return fmt.Errorf("label org.opencontainers.image.licenses is %q", cf.Config.Labels["org.opencontainers.image.licenses"])
	}
	files := map[string][]byte{}
	modes := map[string]*tar.Header{}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("file system: %w", err)
		}
		name := "/" + strings.TrimPrefix(strings.TrimSuffix(h.Name, "/"), "/")
		modes[name] = h
		if h.Typeflag == tar.TypeReg {
			if files[name], err = io.ReadAll(tr); err != nil {
				return fmt.Errorf("file system: %s: %w", name, err)
			}
		}
	}
	bin, ok := files[BinaryPath]
	switch {
	case !ok:
		return fmt.Errorf("%s is missing or not a regular file", BinaryPath)
	case modes[BinaryPath].Mode&0o111 == 0:
		return fmt.Errorf("%s is not executable (mode %o)", BinaryPath, modes[BinaryPath].Mode)
	}
	if err := checkStatic(bin, elfMachine[p.Architecture]); err != nil {
		return fmt.Errorf("%s: %w", BinaryPath, err)
	}
	user := fmt.Sprintf(":%d:%d:", UID, GID)
	if !bytes.Contains(files["/etc/passwd"], []byte(user)) {
		return fmt.Errorf("/etc/passwd has no user %d:%d", UID, GID)
	}
	if !bytes.Contains(files["/etc/group"], []byte(fmt.Sprintf(":%d:", GID))) {
		return fmt.Errorf("/etc/group has no group %d", GID)
	}
	if pool := x509.NewCertPool(); !pool.AppendCertsFromPEM(files[CACertsPath]) {
		return fmt.Errorf("%s holds no certificate", CACertsPath)
	}
	return nil
}

// checkStatic reports whether b is an ELF executable for machine that
// needs no dynamic loader and no shared library.
func checkStatic(b []byte, machine elf.Machine) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	defer f.Close()
	if f.Machine != machine {
		return fmt.Errorf("ELF machine is %s, want %s", f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			return errors.New("dynamically linked (has a program interpreter or a dynamic section)")
		}
	}
	return nil
}
