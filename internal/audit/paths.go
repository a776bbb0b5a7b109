package audit

import (
	"regexp"
	"regexp/syntax"
	"strings"
)

// pathSet is an allowlist's paths, one regex joined as gitleaks joins
// them, matched as that regex matches: by its alternatives one by one,
// each only on a path that holds a string every match of it holds.
// gitleaks' global allowlist has some thirty paths, and every file's
// path is matched against them.
type pathSet struct {
	all  *regexp.Regexp
	alts []*regexp.Regexp
	// lits[i]: strings (lower case) one of which every match of alts[i]
	// holds; nil when none is known.
	lits [][]string
}

func newPathSet(expr string) (*pathSet, error) {
	all, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	ps := &pathSet{all: all}
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, err
	}
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	subs := []*syntax.Regexp{re}
	if re.Op == syntax.OpAlternate {
		subs = re.Sub
	}
	for _, sub := range subs {
		alt, err := regexp.Compile(sub.String())
		if err != nil {
			return nil, err
		}
		ps.alts = append(ps.alts, alt)
		ps.lits = append(ps.lits, requiredStrings(sub))
	}
	return ps, nil
}

// MatchString reports whether path matches the joined regex.
func (ps *pathSet) MatchString(path string) bool {
	if hasFoldToASCII(path) {
		return ps.all.MatchString(path)
	}
	lower := asciiLower(path)
	for i, alt := range ps.alts {
		if lits := ps.lits[i]; lits != nil && !containsAny(lower, lits) {
			continue
		}
		if alt.MatchString(path) {
			return true
		}
	}
	return false
}

// String is the joined regex.
func (ps *pathSet) String() string { return ps.all.String() }

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// requiredStrings returns strings (lower case), one of which every match
// of re holds in text without the runes of foldsToASCII (see
// bestStrings); nil when none has two bytes or more.
func requiredStrings(re *syntax.Regexp) []string {
	return bestStrings(flatten(re), 2)
}
