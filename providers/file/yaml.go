package file

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxYAMLNodes bounds the nodes visited while converting one YAML file,
// aliases counted each time they are followed ("billion laughs").
const maxYAMLNodes = 1 << 20

// decodeYAML parses b as one YAML document whose top level is a mapping.
// An empty document is an empty mapping. Nested mappings become
// map[string]any whatever their keys; scalars keep their source text
// (so "pin: 0123" stays "0123"), except null (nil), booleans (bool),
// numbers that are valid JSON numbers (json.Number, same text) and
// !!binary (decoded bytes). Errors are *syntaxError without content.
func decodeYAML(b []byte) (map[string]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return map[string]any{}, nil
		}
		return nil, yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlError(err)
		}
		return nil, &syntaxError{Line: extra.Line, Column: extra.Column, Reason: "more than one YAML document"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return map[string]any{}, nil
		}
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return map[string]any{}, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, &syntaxError{Line: root.Line, Column: root.Column, Reason: fmt.Sprintf("top-level value is %s, not a mapping (use ?format=raw to read the file whole)", yamlKind(root))}
	}
	c := yamlConverter{budget: maxYAMLNodes}
	v, err := c.convert(root, 0)
	if err != nil {
		return nil, err
	}
	return v.(map[string]any), nil
}

type yamlConverter struct {
	budget int
}

// maxYAMLDepth bounds nesting (and so recursion) during conversion.
const maxYAMLDepth = 1000

func (c *yamlConverter) convert(n *yaml.Node, depth int) (any, error) {
	c.budget--
	if c.budget < 0 {
		return nil, &syntaxError{Line: n.Line, Column: n.Column, Reason: "document too large after expanding aliases"}
	}
	if depth > maxYAMLDepth {
		return nil, &syntaxError{Line: n.Line, Column: n.Column, Reason: "document nested too deeply"}
	}
	switch n.Kind {
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, &syntaxError{Line: n.Line, Column: n.Column, Reason: "unknown alias"}
		}
		return c.convert(n.Alias, depth+1)
	case yaml.ScalarNode:
		return scalar(n)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, e := range n.Content {
			v, err := c.convert(e, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		return c.mapping(n, depth)
	}
	return nil, &syntaxError{Line: n.Line, Column: n.Column, Reason: "unexpected YAML node"}
}

// mapping converts a mapping node. Keys become strings; "<<" merge keys
// bring in the keys of the mapping(s) they name unless given explicitly.
func (c *yamlConverter) mapping(n *yaml.Node, depth int) (map[string]any, error) {
	out := make(map[string]any, len(n.Content)/2)
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.Kind == yaml.ScalarNode && kn.ShortTag() == "!!merge" {
			merges = append(merges, vn)
			continue
		}
		key, err := c.key(kn, depth)
		if err != nil {
			return nil, err
		}
		if _, dup := out[key]; dup {
			return nil, &syntaxError{Line: kn.Line, Column: kn.Column, Reason: "duplicate mapping key"}
		}
		v, err := c.convert(vn, depth+1)
		if err != nil {
			return nil, err
		}
		out[key] = v
	}
	for _, mn := range merges {
		var srcs []*yaml.Node
		target := resolveAlias(mn)
		switch target.Kind {
		case yaml.MappingNode:
			srcs = []*yaml.Node{target}
		case yaml.SequenceNode:
			for _, e := range target.Content {
				srcs = append(srcs, resolveAlias(e))
			}
		default:
			srcs = []*yaml.Node{target}
		}
		for _, src := range srcs {
			if src.Kind != yaml.MappingNode {
				return nil, &syntaxError{Line: mn.Line, Column: mn.Column, Reason: "merge (<<) needs a mapping or a sequence of mappings"}
			}
			v, err := c.convert(src, depth+1)
			if err != nil {
				return nil, err
			}
			for k, e := range v.(map[string]any) {
				if _, set := out[k]; !set {
					out[k] = e
				}
			}
		}
	}
	return out, nil
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < maxYAMLDepth; i++ {
		n = n.Alias
	}
	return n
}

// key turns a mapping key into a string: a scalar's text, or the JSON
// encoding of a complex key.
func (c *yamlConverter) key(n *yaml.Node, depth int) (string, error) {
	n = resolveAlias(n)
	if n.Kind == yaml.ScalarNode {
		return n.Value, nil
	}
	v, err := c.convert(n, depth+1)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", &syntaxError{Line: n.Line, Column: n.Column, Reason: "unsupported mapping key"}
	}
	return string(b), nil
}

// jsonNumber matches the JSON number grammar.
var jsonNumber = regexp.MustCompile(`^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$`)

func scalar(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		if b, err := strconv.ParseBool(strings.ToLower(n.Value)); err == nil {
			return b, nil
		}
		return n.Value, nil
	case "!!int", "!!float":
		if jsonNumber.MatchString(n.Value) {
			return json.Number(n.Value), nil
		}
		return n.Value, nil
	case "!!binary":
		clean := strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
				return -1
			}
			return r
		}, n.Value)
		b, err := base64.StdEncoding.DecodeString(clean)
		if err != nil {
			return nil, &syntaxError{Line: n.Line, Column: n.Column, Reason: "!!binary value is not valid base64"}
		}
		return b, nil
	}
	return n.Value, nil
}

func yamlKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a sequence"
	case yaml.ScalarNode:
		return "a scalar"
	case yaml.AliasNode:
		return "an alias"
	}
	return "not a mapping"
}

var (
	yamlLine = regexp.MustCompile(`^yaml: line ([0-9]+): (.*)$`)
	// yamlSafeReason matches the fixed problem texts of yaml.v3's scanner
	// and parser: lower-case words, with at most single punctuation
	// characters quoted. Anything else (anchor names) is replaced.
	yamlSafeReason = regexp.MustCompile(`^[a-z][a-z0-9 ,]*(?:'[^a-zA-Z0-9\s']'[a-z0-9 ,]*)*$`)
)

// yamlError rewrites a yaml.v3 error to a line and a content-free reason.
func yamlError(err error) error {
	msg := err.Error()
	line := 0
	reason := strings.TrimPrefix(msg, "yaml: ")
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		reason = m[2]
	}
	if !yamlSafeReason.MatchString(reason) {
		reason = "invalid YAML"
	}
	if line == 0 {
		line = 1
	}
	return &syntaxError{Line: line, Reason: reason}
}
