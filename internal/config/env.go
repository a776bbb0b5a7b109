package config

import (
	"errors"
	"sort"
	"strings"

	"github.com/keyward/keyward/providers"
)

// EnvSource is the Error.Path of the errors FromEnv returns.
const EnvSource = "environment"

// FromEnv finds the references in an environment (zero-config mode):
// every variable whose whole value is a reference with a scheme for which
// known returns true becomes a secret of the same name. Values that do not
// look like a reference with a known scheme are left alone. known nil
// means the builtin provider kinds (providers.KnownKind). For duplicate
// variables the last one wins, as in os/exec.
//
// A variable that looks like a reference with a known scheme but does not
// parse is an error; the error is an *Error with Path EnvSource that lists
// every such variable with the position of the problem, and never the
// variable's value, which may be a real secret.
func FromEnv(environ []string, known func(scheme string) bool) (map[string]providers.Ref, error) {
	if known == nil {
		known = providers.KnownKind
	}
	vals := map[string]string{}
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			continue
		}
		vals[name] = val
	}
	refs := map[string]providers.Ref{}
	var probs problems
	for _, name := range sortedKeys(vals) {
		val := vals[name]
		scheme := providers.SchemeOf(val)
		if scheme == "" || !known(scheme) {
			continue
		}
		ref, err := providers.Parse(val)
		if err != nil {
			var pe *providers.ParseError
			if errors.As(err, &pe) {
				pe.Hide = true
				pe.Ref = ""
				probs.add(0, name, "%v", pe)
			} else {
				probs.add(0, name, "invalid reference")
			}
			continue
		}
		refs[name] = ref
	}
	if err := probs.err(EnvSource); err != nil {
		return nil, err
	}
	return refs, nil
}

// EnvNames returns the names of the variables FromEnv found, sorted: the
// variables whose values the caller replaces by the resolved secrets.
func EnvNames(refs map[string]providers.Ref) []string {
	names := make([]string, 0, len(refs))
	for name := range refs {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
