package gcp

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/keyward/keyward/providers"
)

// ParamVersion is the reference parameter that selects a version:
// "latest" (the default), a version number, or a version alias.
const ParamVersion = "version"

// DefaultVersion is the version a reference without one resolves to.
const DefaultVersion = "latest"

var (
	// A project ID (6-30 characters, optionally domain-scoped as
	// "example.com:proj") or a project number.
	projectRe = lazyRegexp(`^(([a-z0-9][a-z0-9.-]*:)?[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]+)$`)
	secretRe  = lazyRegexp(`^[A-Za-z0-9_-]{1,255}$`)
	// A version: latest, a number, or an alias (starts with a letter).
	versionRe = lazyRegexp(`^(latest|[1-9][0-9]{0,18}|[A-Za-z][A-Za-z0-9_-]{0,62})$`)
)

// lazyRegexp compiles expr on first use rather than at program start:
// counted repetitions compile to large programs, and keyward's start-up
// time is paid by every process it wraps.
func lazyRegexp(expr string) interface{ MatchString(string) bool } {
	return lazyRe(sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) }))
}

type lazyRe func() *regexp.Regexp

func (l lazyRe) MatchString(s string) bool { return l().MatchString(s) }

// target is the secret version a reference names.
type target struct {
	Project string // "" when the reference relies on the instance's default project
	Secret  string
	Version string
}

// Name is the version's resource name,
// projects/PROJECT/secrets/SECRET/versions/VERSION.
func (t target) Name() string {
	return "projects/" + t.Project + "/secrets/" + t.Secret + "/versions/" + t.Version
}

// parseTarget reads the provider-specific part of a reference. The path is
// one of
//
//	PROJECT/SECRET                              (gcpsm://, berglas sm://)
//	SECRET                                      (the instance's default project)
//	projects/PROJECT/secrets/SECRET             (resource name, secrets-init)
//	projects/PROJECT/secrets/SECRET/versions/V  (pinned by name)
//
// and ?version= (berglas's #VERSION arrives as that parameter) selects the
// version unless the name already has one. Errors wrap
// providers.ErrInvalidReference and never contain more than the path.
func parseTarget(ref providers.Ref) (target, error) {
	var t target
	parts := strings.Split(ref.Path, "/")
	pathVersion := ""
	switch {
	case parts[0] == "projects" && len(parts) >= 3:
		if len(parts) >= 3 && parts[2] == "locations" {
			return t, invalid("regional secrets (projects/P/locations/L/secrets/S) are not supported; use a global secret")
		}
		if !(len(parts) == 4 || len(parts) == 6) || parts[2] != "secrets" || len(parts) == 6 && parts[4] != "versions" {
			return t, invalid("path %q: expected projects/PROJECT/secrets/SECRET[/versions/VERSION]", ref.Path)
		}
		t.Project, t.Secret = parts[1], parts[3]
		if len(parts) == 6 {
			pathVersion = parts[5]
			if pathVersion == "" {
				return t, invalid("path %q: empty version", ref.Path)
			}
		}
	case len(parts) == 2:
		t.Project, t.Secret = parts[0], parts[1]
	case len(parts) == 1:
		t.Secret = parts[0]
	default:
		return t, invalid("path %q: expected PROJECT/SECRET or projects/PROJECT/secrets/SECRET[/versions/VERSION] (give a version with ?version=)", ref.Path)
	}
	if len(parts) != 1 && !projectRe.MatchString(t.Project) {
		return t, invalid("project %q is not a project ID (6-30 lower-case letters, digits, hyphens) or number", t.Project)
	}
	if !secretRe.MatchString(t.Secret) {
		return t, invalid("secret ID %q must be 1-255 letters, digits, '-' or '_'", t.Secret)
	}
	t.Version = DefaultVersion
	if v, ok := ref.Params[ParamVersion]; ok {
		if pathVersion != "" {
			return t, invalid("version given twice: in the name (%s) and as ?version=", pathVersion)
		}
		t.Version = v
	} else if pathVersion != "" {
		t.Version = pathVersion
	}
	if !versionRe.MatchString(t.Version) {
		return t, invalid("version %q is not latest, a version number or an alias", t.Version)
	}
	return t, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), providers.ErrInvalidReference)
}

// CheckRef validates a gcpsm reference without I/O: the path's shape, the
// project and secret IDs, and the version. A reference without a project
// passes; it is resolved against the instance's default project at Fetch.
// Errors wrap providers.ErrInvalidReference.
func CheckRef(ref providers.Ref) error {
	_, err := parseTarget(ref)
	return err
}
