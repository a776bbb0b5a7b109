package render

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/keyward/keyward/providers"
)

// scrubbed reports whether an inherited variable is one of keyward's own
// credentials or settings, which the child does not get by default.
func scrubbed(name string) bool {
	return name == "VAULT_TOKEN" || strings.HasPrefix(name, "KEYWARD_")
}

// Env builds a child's environment: parent (os.Environ form) with each var
// in replaced set to its secret value, then added vars appended/overriding,
// minus scrubbed names (VAULT_TOKEN and every KEYWARD_* var) unless listed in
// keep. The output is deterministic for the same input.
//
// In detail: parent's order is kept; a name found twice keeps its first
// position and its last value; an entry without '=' is dropped. A name in replaced or added takes that value
// in place (added wins over replaced); names of replaced and added that are
// not in parent are appended, sorted. Scrubbing applies to what is inherited
// from parent (replaced in place included); a name in added is always
// passed on, since the config asked for it. keep holds exact names. Parent
// entries are passed through unchecked, but every name in replaced and added
// must match [A-Za-z_][A-Za-z0-9_]* and no value may contain a NUL byte (the
// kernel would truncate it). Such errors are listed together, each naming the
// variable, never the value: "env DB_PASSWORD: value contains a NUL byte".
func Env(parent []string, replaced, added map[string]providers.Value, keep []string) ([]string, error) {
	var errs []string
	check := func(m map[string]providers.Value) {
		for _, name := range sortedKeys(m) {
			switch {
			case !validEnvName(name):
				errs = append(errs, fmt.Sprintf("env %q: not a valid environment variable name", name))
			case bytes.IndexByte(m[name].Bytes(), 0) >= 0:
				errs = append(errs, fmt.Sprintf("env %s: value contains a NUL byte", name))
			}
		}
	}
	check(replaced)
	check(added)
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "; "))
	}

	kept := make(map[string]bool, len(keep))
	for _, k := range keep {
		kept[k] = true
	}
	var names []string          // output order
	vals := map[string]string{} // name -> value
	for _, kv := range parent {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			continue // not NAME=value: nothing a child can use
		}
		if scrubbed(name) && !kept[name] && !hasKey(added, name) {
			continue
		}
		if _, seen := vals[name]; !seen {
			names = append(names, name)
		}
		vals[name] = val
	}
	for _, m := range []map[string]providers.Value{replaced, added} {
		var extra []string
		for _, name := range sortedKeys(m) {
			if _, seen := vals[name]; !seen {
				if scrubbed(name) && !kept[name] && !hasKey(added, name) {
					continue
				}
				extra = append(extra, name)
			}
			vals[name] = m[name].Reveal()
		}
		names = append(names, extra...)
	}
	out := make([]string, len(names))
	for i, name := range names {
		out[i] = name + "=" + vals[name]
	}
	return out, nil
}

func hasKey(m map[string]providers.Value, k string) bool {
	_, ok := m[k]
	return ok
}

func sortedKeys(m map[string]providers.Value) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
