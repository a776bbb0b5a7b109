package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/keyward/keyward/providers"
)

// entry is one key of a dotenv, JSON or YAML file.
type entry struct {
	key   string
	from  string // the secret name it comes from
	value providers.Value
}

func buildRaw(name string, secrets map[string]providers.Resolved) ([]byte, error) {
	r, ok := secrets[name]
	if !ok {
		return nil, fmt.Errorf("secret %q not resolved", name)
	}
	return bytes.Clone(r.Value.Bytes()), nil
}

// collect returns the keys that names contribute, sorted: a name itself, or
// each field of a whole structured secret. It lists every unresolved name
// and refuses a key contributed twice.
func collect(names []string, secrets map[string]providers.Resolved) ([]entry, error) {
	var missing []string
	var out []entry
	for _, n := range names {
		r, ok := secrets[n]
		if !ok {
			missing = append(missing, fmt.Sprintf("%q", n))
			continue
		}
		if r.Fields == nil {
			out = append(out, entry{key: n, from: n, value: r.Value})
			continue
		}
		for k, v := range r.Fields {
			out = append(out, entry{key: k, from: n, value: v})
		}
	}
	if len(missing) == 1 {
		return nil, fmt.Errorf("secret %s not resolved", missing[0])
	}
	if len(missing) > 1 {
		return nil, fmt.Errorf("secrets %s not resolved", strings.Join(missing, ", "))
	}
	sort.Slice(out, func(a, b int) bool { return out[a].key < out[b].key })
	for i := 1; i < len(out); i++ {
		if out[i].key == out[i-1].key {
			return nil, fmt.Errorf("key %q comes from both secret %q and secret %q", out[i].key, out[i-1].from, out[i].from)
		}
	}
	return out, nil
}

// describe names where a key comes from, for errors.
func (e entry) describe() string {
	if e.key == e.from {
		return fmt.Sprintf("key %q", e.key)
	}
	return fmt.Sprintf("key %q (field of secret %q)", e.key, e.from)
}

// validEnvName reports whether s is a portable environment variable name,
// [A-Za-z_][A-Za-z0-9_]*.
func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// stringEntries returns the entries as a map of strings for the JSON and
// YAML encoders, refusing values that are not valid UTF-8 (both formats
// would silently alter them).
func stringEntries(names []string, secrets map[string]providers.Resolved) (map[string]string, error) {
	entries, err := collect(names, secrets)
	if err != nil {
		return nil, err
	}
	var errs []string
	m := make(map[string]string, len(entries))
	for _, e := range entries {
		if !utf8.Valid(e.value.Bytes()) {
			errs = append(errs, e.describe()+": value is not valid UTF-8 (use format raw, or a template with base64)")
			continue
		}
		m[e.key] = e.value.Reveal()
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, ", "))
	}
	return m, nil
}

// buildJSON renders one object of string values, keys sorted, two-space
// indented, with a trailing newline. <, > and & are not escaped.
func buildJSON(names []string, secrets map[string]providers.Resolved) ([]byte, error) {
	m, err := stringEntries(names, secrets)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, errors.New("encoding json failed") // cannot happen for strings; never echo
	}
	return b.Bytes(), nil
}

// buildYAML renders one mapping of string values, keys sorted, that YAML
// 1.2 and YAML 1.1 readers (yaml.v3, PyYAML, ...) both read back as the
// same strings: only plain words are left unquoted (not the ones that
// resolve to something else, such as "true", "null" or YAML 1.1's "yes"),
// multi-line values are literal blocks, and everything
// else ("1e3", "0x10", "=", "- x", ...) is double-quoted.
func buildYAML(names []string, secrets map[string]providers.Resolved) ([]byte, error) {
	m, err := stringEntries(names, secrets)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	doc := &yaml.Node{Kind: yaml.MappingNode}
	for _, k := range keys {
		doc.Content = append(doc.Content, yamlString(k), yamlString(m[k]))
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, errors.New("encoding yaml failed") // never echo: yaml errors may quote input
	}
	if err := enc.Close(); err != nil {
		return nil, errors.New("encoding yaml failed")
	}
	return b.Bytes(), nil
}

// yamlString is a !!str scalar node in the style described at buildYAML.
func yamlString(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	switch {
	case strings.Contains(s, "\n"):
		n.Style = yaml.LiteralStyle // the emitter falls back to double quotes when a block cannot hold s
	case !yamlPlainWord(s):
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

// yamlPlainWord reports whether s is [A-Za-z_/][A-Za-z0-9_./-]* and not a
// word that YAML 1.1 or 1.2 reads as a boolean or null.
func yamlPlainWord(s string) bool {
	switch strings.ToLower(s) {
	case "", "y", "n", "yes", "no", "on", "off", "true", "false", "null":
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c == '_', c == '/':
		case i > 0 && (c >= '0' && c <= '9' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}
