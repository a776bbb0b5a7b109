package gcp

import "github.com/keyward/keyward/providers"

// ResolveTarget exposes parseTarget to the external tests: the project,
// secret and version ref names, with project defaulting to defaultProject.
func ResolveTarget(ref providers.Ref, defaultProject string) (project, secret, version string, err error) {
	t, err := parseTarget(ref)
	if err != nil {
		return "", "", "", err
	}
	if t.Project == "" {
		t.Project = defaultProject
	}
	return t.Project, t.Secret, t.Version, nil
}
