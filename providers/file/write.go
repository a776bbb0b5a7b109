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
	"github.com/keyward/keyward/render"
)

var _ providers.Writer = (*Provider)(nil)

// Write replaces the whole file ref names with value (keyward writes back
// a rotated refresh token with it), provided its content is still the
// version from (its providers.ContentVersion, as Fetch reported it); when
// it already holds value it returns at once. The replacement is
// render.WriteFile's, the one atomic writer keyward has: the file keeps its
// mode, owner and group (an owner keyward may not give is an error, not a
// silent change), nothing is written through a symlinked parent directory,
// and a temp file left by a killed write carries keyward's temp name, which
// the next write into the directory sweeps.
//
// Only a whole regular file is written: a #field of a structured file, a
// symlink (keyward writes nothing through a symlink) or a missing file
// wraps errors.ErrUnsupported or providers.ErrNotFound. A change between
// the check of the version and the rename by another process on this host
// is not detected: keyward assumes it is the file's only writer.
func (p *Provider) Write(ctx context.Context, ref providers.Ref, value []byte, from string) (string, error) {
	path, err := filepath.Abs(p.Path(ref))
	if err != nil {
		return "", fmt.Errorf("write %s: %w", p.Path(ref), err)
	}
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
	if _, err := render.WriteFile(path, value, keepOwnerMode(fi)); err != nil {
		return "", err // "write PATH: reason" already
	}
	return providers.ContentVersion(value), nil
}

// keepOwnerMode returns the render options that give the new file the mode
// of the one it replaces (described by fi) and its owner and group where
// they differ from the ones keyward's files get anyway.
func keepOwnerMode(fi fs.FileInfo) render.Options {
	o := render.Options{Mode: fi.Mode().Perm(), UID: -1, GID: -1}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if int(st.Uid) != os.Geteuid() {
			o.UID = int(st.Uid)
		}
		if int(st.Gid) != os.Getegid() {
			o.GID = int(st.Gid)
		}
	}
	return o
}
