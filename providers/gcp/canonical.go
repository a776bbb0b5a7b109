package gcp

import "github.com/keyward/keyward/providers"

var _ providers.Canonicalizer = (*Provider)(nil)

// Canonical returns ref as PROJECT/SECRET, with the instance's project
// filled in, and ?version=V unless the version is latest: gcpsm://SECRET,
// gcpsm://P/SECRET, gcpsm://projects/P/secrets/SECRET and
// sm://P/SECRET are one secret for an instance whose project is P, and
// projects/P/secrets/S/versions/3 is P/S?version=3. A project named by
// its number and by its ID stay apart (telling them equal needs a call).
// Errors are those of Fetch for a reference it cannot serve, without I/O.
func (p *Provider) Canonical(ref providers.Ref) (providers.Ref, error) {
	t, err := p.target(ref)
	if err != nil {
		return providers.Ref{}, err
	}
	out := providers.Ref{Scheme: ref.Scheme, Path: t.Project + "/" + t.Secret}
	if t.Version != DefaultVersion {
		out.Params = map[string]string{ParamVersion: t.Version}
	}
	return out, nil
}
