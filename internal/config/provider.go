package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Provider is a provider instance declared under providers:. Its name is
// the reference scheme that selects it; its options (every key beside
// kind) are specific to the kind and are decoded by the provider itself
// through Decode.
type Provider struct {
	// Name is the instance name, which is also the scheme of its references.
	Name string
	// Kind is the provider kind ("vault", "awssm", "gcpsm", "k8s", "file").
	Kind string
	// Line is the line of the instance's name in the config file.
	Line int

	file string     // config path, for errors
	opts *yaml.Node // mapping of the options beside kind; nil when declared in code
}

// Decode decodes the instance's options (all keys beside kind) into the
// struct into points to, using the yaml struct tags of its fields. It is
// strict: a key that matches no field, at any depth, is an error, as is a
// value of the wrong type. Errors are *Error with the line of each problem
// and never carry a value. Decode does nothing for a Provider that was not
// read from a file. It is safe for concurrent use; it can serve as
// providers.Instance.Decode.
func (p Provider) Decode(into any) error {
	if p.opts == nil {
		return nil
	}
	rv := reflect.ValueOf(into)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("config: Decode of provider %s options needs a non-nil pointer, got %T", p.Name, into)
	}
	d := newDecoder()
	path := "providers." + p.Name
	d.lines[path] = p.Line
	d.checkKnown(p.opts, rv.Type().Elem(), path)
	if err := d.err(p.file); err != nil {
		return err
	}
	if err := p.opts.Decode(into); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			d.add(p.Line, path, "%s", scrubYAML(err.Error()))
			return d.err(p.file)
		}
		for _, m := range te.Errors {
			line, msg := splitYAMLLine(m)
			d.add(line, d.pathAt(line, path), "%s", scrubYAML(msg))
		}
		return d.err(p.file)
	}
	return nil
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// checkKnown reports the keys of n that the type t has no field for, at
// every depth. Type mismatches are left to yaml's Decode.
func (d *decoder) checkKnown(n *yaml.Node, t reflect.Type, path string) {
	n = deref(n)
	if n == nil || isNull(n) {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return
		}
		fields := map[string]reflect.Type{}
		var inline reflect.Type
		structFields(t, fields, &inline)
		known := make([]string, 0, len(fields))
		for k := range fields {
			known = append(known, k)
		}
		sort.Strings(known)
		ps, _ := d.mapping(n, path)
		for _, p := range ps {
			kp := join(path, p.key)
			ft, ok := fields[p.key]
			if !ok && inline != nil {
				ft, ok = inline.Elem(), true
			}
			if !ok {
				msg := fmt.Sprintf("unknown key %q", p.key)
				if s := suggest(p.key, known); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				d.add(p.keyNode.Line, path, "%s", msg)
				continue
			}
			d.lines[kp] = p.keyNode.Line
			d.checkKnown(p.val, ft, kp)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		ps, _ := d.mapping(n, path)
		for _, p := range ps {
			kp := join(path, p.key)
			d.lines[kp] = p.keyNode.Line
			d.checkKnown(p.val, t.Elem(), kp)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, item := range n.Content {
			ip := index(path, i)
			d.lines[ip] = deref(item).Line
			d.checkKnown(item, t.Elem(), ip)
		}
	}
}

// structFields maps the YAML key of every field of t to its type, as
// yaml.v3 does: the tag's name or else the lower-cased field name, inline
// structs flattened, an inline map taking every other key.
func structFields(t reflect.Type, out map[string]reflect.Type, inline *reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch ft.Kind() {
			case reflect.Struct:
				structFields(ft, out, inline)
			case reflect.Map:
				*inline = ft
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
}

// pathAt returns the deepest recorded key path on line, or def.
func (d *decoder) pathAt(line int, def string) string {
	best := def
	for p, l := range d.lines {
		if l == line && (len(p) > len(best) || len(p) == len(best) && p < best) {
			best = p
		}
	}
	return best
}

var yamlLineRe = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// splitYAMLLine splits "line N: msg" (as yaml.v3 formats its errors) into
// N and msg.
func splitYAMLLine(s string) (int, string) {
	m := yamlLineRe.FindStringSubmatch(s)
	if m == nil {
		return 0, strings.TrimPrefix(s, "yaml: ")
	}
	n, _ := strconv.Atoi(m[1])
	return n, m[2]
}

var backquoted = regexp.MustCompile("`[^`]*` ")

// scrubYAML removes the value that yaml.v3 quotes in its type errors
// ("cannot unmarshal !!str `VALUE` into int").
func scrubYAML(s string) string {
	return backquoted.ReplaceAllString(s, "")
}
