package config

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// decoder walks a yaml.Node tree, collecting problems with line numbers
// instead of stopping at the first, and remembering the line of every key
// path for the checks of Validate.
type decoder struct {
	problems
	lines  map[string]int  // key path -> line
	broken map[string]bool // key paths whose value could not be decoded
}

func newDecoder() *decoder {
	return &decoder{lines: map[string]int{}, broken: map[string]bool{}}
}

// fail reports a problem with the value at path and marks the path broken,
// so that Validate does not report it a second time.
func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.broken[path] = true
	d.add(n.Line, path, format, args...)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// deref follows alias nodes to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// pair is one key: value entry of a mapping.
type pair struct {
	key     string
	keyNode *yaml.Node
	val     *yaml.Node
}

// mapping returns the entries of a mapping node, with merge keys ("<<")
// expanded and duplicate or non-scalar keys reported. It reports a problem
// and returns false when n is not a mapping.
func (d *decoder) mapping(n *yaml.Node, path string) ([]pair, bool) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		what := "a mapping"
		if path == "" {
			what = "a mapping of keys (version, secrets, …)"
		}
		d.fail(n, path, "must be %s", what)
		return nil, false
	}
	var out []pair
	seen := map[string]int{}
	var merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, d.mergeSources(v, path)...)
			continue
		}
		k = deref(k)
		if k.Kind != yaml.ScalarNode {
			d.add(k.Line, path, "mapping keys must be plain names")
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.add(k.Line, path, "duplicate key %q (first at line %d)", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, pair{key: k.Value, keyNode: k, val: v})
	}
	// Explicit keys override merged ones; among merged sources the first wins.
	for _, p := range merged {
		if _, dup := seen[p.key]; dup {
			continue
		}
		seen[p.key] = p.keyNode.Line
		out = append(out, p)
	}
	return out, true
}

func (d *decoder) mergeSources(v *yaml.Node, path string) []pair {
	v = deref(v)
	var srcs []*yaml.Node
	switch v.Kind {
	case yaml.MappingNode:
		srcs = []*yaml.Node{v}
	case yaml.SequenceNode:
		srcs = v.Content
	default:
		d.add(v.Line, path, "merge key \"<<\" must refer to a mapping")
		return nil
	}
	var out []pair
	for _, s := range srcs {
		s = deref(s)
		if s.Kind != yaml.MappingNode {
			d.add(s.Line, path, "merge key \"<<\" must refer to a mapping")
			continue
		}
		ps, _ := d.mapping(s, path)
		out = append(out, ps...)
	}
	return out
}

// object decodes a mapping with a fixed set of keys: it returns the value
// node of each key present and reports every unknown key (by name only,
// never its value), suggesting the closest known key.
func (d *decoder) object(n *yaml.Node, path string, known ...string) (map[string]*yaml.Node, bool) {
	ps, ok := d.mapping(n, path)
	if !ok {
		return nil, false
	}
	out := make(map[string]*yaml.Node, len(ps))
	for _, p := range ps {
		if !slices.Contains(known, p.key) {
			msg := fmt.Sprintf("unknown key %q", p.key)
			if s := suggest(p.key, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.add(p.keyNode.Line, path, "%s", msg)
			// Checks of the whole entry (a missing key, one action of
			// several) would likely be about the misspelt key.
			d.broken[path] = true
			continue
		}
		d.lines[join(path, p.key)] = p.keyNode.Line
		out[p.key] = p.val
	}
	return out, true
}

// suggest returns the known key closest to key when it is close enough to
// be a likely typo.
func suggest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if dist := editDistance(strings.ToLower(key), k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent
// bytes each count one. It ranks
// suggestions for misspelt keys and schemes.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// scalar returns the scalar n (aliases followed) and whether its tag is one
// of tags.
func scalar(n *yaml.Node, tags ...string) (*yaml.Node, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode {
		return n, false
	}
	return n, slices.Contains(tags, n.ShortTag())
}

func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	s, ok := scalar(n, "!!str")
	if !ok {
		d.fail(n, path, "must be a string")
		return "", false
	}
	return s.Value, true
}

func (d *decoder) boolean(n *yaml.Node, path string) (bool, bool) {
	s, ok := scalar(n, "!!bool")
	if !ok {
		d.fail(n, path, "must be true or false")
		return false, false
	}
	var b bool
	if err := s.Decode(&b); err != nil {
		d.fail(n, path, "must be true or false")
		return false, false
	}
	return b, true
}

func (d *decoder) integer(n *yaml.Node, path string) (int, bool) {
	s, ok := scalar(n, "!!int")
	if !ok {
		d.fail(n, path, "must be an integer")
		return 0, false
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(s.Value, "_", ""), 0, 64)
	if err != nil || v > math.MaxInt32 || v < math.MinInt32 {
		d.fail(n, path, "must be an integer")
		return 0, false
	}
	return int(v), true
}

func (d *decoder) number(n *yaml.Node, path string) (float64, bool) {
	s, ok := scalar(n, "!!int", "!!float")
	if !ok {
		d.fail(n, path, "must be a number")
		return 0, false
	}
	var f float64
	if err := s.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		d.fail(n, path, "must be a number")
		return 0, false
	}
	return f, true
}

// duration decodes a Go duration string such as "30s" or "5m".
func (d *decoder) duration(n *yaml.Node, path string) (time.Duration, bool) {
	s, ok := scalar(n, "!!str")
	if !ok {
		d.fail(n, path, "must be a duration string such as \"30s\" or \"5m\"")
		return 0, false
	}
	v, err := time.ParseDuration(s.Value)
	if err != nil {
		d.fail(n, path, "invalid duration %q (want a Go duration such as \"30s\", \"5m\" or \"1h30m\")", s.Value)
		return 0, false
	}
	return v, true
}

// strList decodes a sequence of strings; a lone string is not accepted.
func (d *decoder) strList(n *yaml.Node, path string) ([]string, bool) {
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "must be a list of strings")
		return nil, false
	}
	out := make([]string, 0, len(n.Content))
	ok := true
	for i, item := range n.Content {
		p := index(path, i)
		d.lines[p] = deref(item).Line
		s, good := d.str(item, p)
		if !good {
			ok = false
			continue
		}
		out = append(out, s)
	}
	return out, ok
}

// strMap decodes a mapping of strings to strings.
func (d *decoder) strMap(n *yaml.Node, path string) (map[string]string, bool) {
	ps, ok := d.mapping(n, path)
	if !ok {
		return nil, false
	}
	out := make(map[string]string, len(ps))
	for _, p := range ps {
		kp := join(path, p.key)
		d.lines[kp] = p.keyNode.Line
		if s, good := d.str(p.val, kp); good {
			out[p.key] = s
		} else {
			ok = false
		}
	}
	return out, ok
}
