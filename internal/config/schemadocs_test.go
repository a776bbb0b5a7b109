package config

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const configDocPath = "../../docs/configuration.md"

// schemaKeys returns every key docs/config.schema.json knows, as the
// paths docs/configuration.md writes them: "watch.interval",
// "files[].mode", "tokens.NAME.file", and for the options of one provider
// kind "providers.NAME.address (vault)". A shared definition ($ref) is
// listed under the shallowest key that uses it (on_change's keys under
// on_change, not again under files[].on_change).
func schemaKeys(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	defs, _ := root["$defs"].(map[string]any)
	expanded := map[string]bool{}
	// resolve follows a local $ref once; it returns nil for a definition
	// already expanded elsewhere.
	resolve := func(n map[string]any) map[string]any {
		ref, ok := n["$ref"].(string)
		if !ok {
			return n
		}
		name := strings.TrimPrefix(ref, "#/$defs/")
		if expanded[name] {
			return nil
		}
		expanded[name] = true
		d, _ := defs[name].(map[string]any)
		return d
	}
	type item struct {
		node       map[string]any
		path, kind string
	}
	var keys []string
	queue := []item{{node: root}}
	add := func(path, kind string, child any) {
		k := path
		if kind != "" {
			k += " (" + kind + ")"
		}
		keys = append(keys, k)
		if c, ok := child.(map[string]any); ok {
			queue = append(queue, item{c, path, kind})
		}
	}
	join := func(path, key string) string {
		if path == "" {
			return key
		}
		return path + "." + key
	}
	for len(queue) > 0 { // breadth first: shallow keys expand shared definitions
		it := queue[0]
		queue = queue[1:]
		n := resolve(it.node)
		if n == nil {
			continue
		}
		var alternatives []map[string]any
		for _, alt := range asSlice(n["oneOf"]) {
			if m, ok := alt.(map[string]any); ok {
				alternatives = append(alternatives, resolve(m))
			}
		}
		for _, n := range append([]map[string]any{n}, alternatives...) {
			if n == nil {
				continue
			}
			props, _ := n["properties"].(map[string]any)
			for _, k := range sortedKeys(props) {
				add(join(it.path, k), it.kind, props[k])
			}
			if ap, ok := n["additionalProperties"].(map[string]any); ok {
				queue = append(queue, item{ap, join(it.path, "NAME"), it.kind})
			}
			if items, ok := n["items"].(map[string]any); ok {
				queue = append(queue, item{items, it.path + "[]", it.kind})
			}
			// Options of one provider kind: if kind == K then properties.
			for _, a := range asSlice(n["allOf"]) {
				cond, _ := a.(map[string]any)
				ifp, _ := cond["if"].(map[string]any)
				ifProps, _ := ifp["properties"].(map[string]any)
				kindSchema, _ := ifProps["kind"].(map[string]any)
				kind, ok := kindSchema["const"].(string)
				if !ok {
					continue
				}
				then, _ := cond["then"].(map[string]any)
				props, _ := then["properties"].(map[string]any)
				for _, k := range sortedKeys(props) {
					add(join(it.path, k), kind, props[k])
				}
			}
		}
	}
	return keys
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// docKeys returns the keys docs/configuration.md documents: the first
// cell of each table row that is one backticked key path. Rows of a
// provider kind's options (under a heading naming `kind: K`) are
// qualified with the kind, as schemaKeys does.
func docKeys(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(configDocPath)
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| `([a-z_]+(?:\\.NAME|\\[\\]|\\.[a-z_]+)*)` \\|")
	heading := regexp.MustCompile("^#+ .*`kind: ([a-z0-9]+)`")
	var keys []string
	kind := ""
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") {
			kind = ""
			if m := heading.FindStringSubmatch(line); m != nil {
				kind = m[1]
			}
			continue
		}
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		k := m[1]
		if kind != "" && strings.HasPrefix(k, "providers.NAME.") && k != "providers.NAME.kind" {
			k += " (" + kind + ")"
		}
		keys = append(keys, k)
	}
	return keys
}

// TestConfigDocsMatchSchema checks that docs/configuration.md documents
// every key of docs/config.schema.json, once, and nothing else, so the
// reference cannot drift from the schema (which TestSchemaAndLoaderAgree
// keeps in step with the loader).
func TestConfigDocsMatchSchema(t *testing.T) {
	t.Parallel()
	schema, doc := schemaKeys(t), docKeys(t)
	if len(schema) < 50 {
		t.Fatalf("found only %d keys in the schema: %v", len(schema), schema)
	}
	seen := map[string]bool{}
	for _, k := range doc {
		if seen[k] {
			t.Errorf("%s documents %s twice", configDocPath, k)
		}
		seen[k] = true
		if !slices.Contains(schema, k) {
			t.Errorf("%s documents %s, which %s does not have", configDocPath, k, schemaPath)
		}
	}
	for _, k := range schema {
		if !seen[k] {
			key, kind, _ := strings.Cut(k, " ")
			where := ""
			if kind != "" {
				where = " under the heading of `kind: " + strings.Trim(kind, "()") + "`"
			}
			t.Errorf("%s has %s, which %s does not document (add a table row starting with | `%s` |%s)", schemaPath, k, configDocPath, key, where)
		}
	}
}
