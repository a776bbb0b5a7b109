package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/keyward/keyward/providers"
)

var _ providers.Writer = (*Provider)(nil)

// Write replaces the whole file ref names with value (keyward writes back
// a rotated refresh token with it), provided its content is still the
// version from (its providers.ContentVersion, as Fetch reported it); when
// it already holds value it returns at once. The replacement is atomic: a
// temporary file in the same directory, created exclusively with the
// file's mode (and owner, when keyward may set it), written, synced and
// renamed over the file, then the directory synced; a reader sees the old
// content or the new, and a crash leaves one of them.
//
// Only a whole regular file is written: a #field of a structured file, a
// symlink (keyward writes nothing through a symlink) or a missing file
// wraps errors.ErrUnsupported or providers.ErrNotFound. A change between
// the check of the version and the rename by another process on this host
// is not detected: keyward assumes it is the file's only writer.
func (p *Provider) Write(ctx context.Context, ref providers.Ref, value []byte, from string) (string, error) {
	path := p.Path(ref)
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := CheckRef(ref); err != nil {
		return "", err
	}
	if ref.Field != "" {
		return "", fmt.Errorf("write %s: keyward writes whole files only, not the field %q of one (reference the file itself): %w", path, ref.Field, errors.ErrUnsupported)
	}
	fi, err := os.Lstat(path)
	switch {
	case err != nil:
		return "", p.readError(path, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return "", fmt.Errorf("write %s: it is a symlink, and keyward writes nothing through one: %w", path, errors.ErrUnsupported)
	case !fi.Mode().IsRegular():
		return "", fmt.Errorf("write %s: %w", path, ErrNotRegular)
	}
	cur, err := p.readFile(ctx, path)
	if err != nil {
		return "", p.readError(path, err)
	}
	if v := providers.ContentVersion(cur); v != from {
		if bytes.Equal(cur, value) {
			return v, nil
		}
		return "", fmt.Errorf("write %s: %w", path, providers.ErrConflict)
	}
	if err := replaceFile(path, value, fi); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return providers.ContentVersion(value), nil
}

// replaceFile atomically replaces path (described by fi) with data.
func replaceFile(path string, data []byte, fi fs.FileInfo) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".keyward-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(fi.Mode().Perm()); err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && (int(st.Uid) != os.Geteuid() || int(st.Gid) != os.Getegid()) {
		// Keep the owner when keyward may (as root); otherwise the file
		// becomes keyward's, with the same mode.
		_ = f.Chown(int(st.Uid), int(st.Gid))
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil // renamed; the directory's sync is best effort
	}
	defer d.Close()
	_ = d.Sync()
	return nil
}
