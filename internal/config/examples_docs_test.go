package config

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// schemaLine is how every example config starts, so that an editor's YAML
// language server validates and completes it.
const schemaLine = "# yaml-language-server: $schema="

// TestExamplesDeclareSchema checks that every example config starts with
// the yaml-language-server line and that its relative path leads to
// docs/config.schema.json.
func TestExamplesDeclareSchema(t *testing.T) {
	t.Parallel()
	want, err := filepath.Abs(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range exampleConfigs(t) {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(string(src), "\n")
		ref, ok := strings.CutPrefix(first, schemaLine)
		if !ok {
			t.Errorf("%s: the first line is not %q followed by the schema's path", path, schemaLine)
			continue
		}
		got, err := filepath.Abs(filepath.Join(filepath.Dir(path), ref))
		if err != nil || got != want {
			t.Errorf("%s: $schema=%s leads to %s, not to docs/config.schema.json", path, ref, got)
		}
	}
}

// yamlBlocks returns the ```yaml blocks of a Markdown file with the line
// each starts on.
func yamlBlocks(t *testing.T, path string) (blocks []string, lines []int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	var cur *strings.Builder
	start, n, indent := 0, 0, ""
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && trimmed == "```yaml":
			// A block in a list item is indented like its fence.
			cur, start, indent = &strings.Builder{}, n+1, line[:len(line)-len(strings.TrimLeft(line, " "))]
		case cur != nil && trimmed == "```":
			blocks, lines = append(blocks, cur.String()), append(lines, start)
			cur = nil
		case cur != nil:
			cur.WriteString(strings.TrimPrefix(line, indent) + "\n")
		}
	}
	return blocks, lines
}

// TestDocsConfigSnippetsValidate checks every YAML block of README.md and
// docs/ whose top-level keys are all keys of a keyward config: the schema
// accepts it (with version: 1 added to a fragment), and one that is a
// whole config (it has version:) loads. Other YAML (Kubernetes manifests,
// workflows) is left alone.
func TestDocsConfigSnippetsValidate(t *testing.T) {
	t.Parallel()
	sch := compileSchema(t)
	top := map[string]bool{}
	for _, k := range schemaKeys(t) {
		if !strings.ContainsAny(k, ".[ ") {
			top[k] = true
		}
	}
	files := []string{"../../README.md"}
	err := filepath.WalkDir("../../docs", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, path := range files {
		blocks, lines := yamlBlocks(t, path)
		for i, src := range blocks {
			var m map[string]any
			if yaml.Unmarshal([]byte(src), &m) != nil || len(m) == 0 {
				continue
			}
			isConfig := true
			for k := range m {
				isConfig = isConfig && top[k]
			}
			if !isConfig {
				continue
			}
			checked++
			whole := m["version"] != nil
			if !whole {
				src = "version: 1\n" + src
			}
			if err := validateSchema(t, sch, []byte(src)); err != nil {
				t.Errorf("%s:%d: the schema rejects this config: %v", path, lines[i], err)
			}
			if whole {
				if _, err := Parse([]byte(src), "keyward.yaml"); err != nil {
					t.Errorf("%s:%d: %v", path, lines[i], err)
				}
			}
		}
	}
	if checked < 10 {
		t.Errorf("checked only %d config snippets in README.md and docs/", checked)
	}
}
