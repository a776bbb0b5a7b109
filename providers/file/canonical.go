package file

import (
	"path/filepath"

	"github.com/keyward/keyward/providers"
)

var _ providers.Canonicalizer = (*Provider)(nil)

// Canonical returns ref with the clean absolute path of the file it
// names: file:dev.yaml and file:///etc/kw/dev.yaml are one file for an
// instance whose base directory is /etc/kw. Its options are kept. Two
// paths that reach one file through a symlink stay apart (telling needs
// I/O).
func (p *Provider) Canonical(ref providers.Ref) (providers.Ref, error) {
	path, err := filepath.Abs(p.Path(ref))
	if err != nil {
		return providers.Ref{}, err
	}
	out := ref
	out.Path, out.Raw = path, ""
	return out, nil
}
