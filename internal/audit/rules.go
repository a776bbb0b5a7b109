package audit

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

//go:generate go run ./gen -o rules_gitleaks.go

// ruleSpec is a rule as data (rules_gitleaks.go); compile turns it into a
// rule. The fields are gitleaks' own.
type ruleSpec struct {
	ID, Description string
	// Regex finds candidates; Path, when set, restricts the rule to paths
	// it matches (a rule with a Path and no Regex reports the file itself).
	Regex, Path string
	// SecretGroup is the capture group that holds the secret; 0 means the
	// first non-empty group, or the whole match when there is none.
	SecretGroup int
	// Entropy is the Shannon entropy the secret must exceed; 0 means any.
	Entropy float64
	// Keywords (lower case): the rule runs only on text holding one.
	Keywords   []string
	Allowlists []allowSpec
}

// allowSpec is an allowlist as data: a finding is allowed when any check
// matches (all of them with And). Target is what Regexes look at: the
// secret (""), the whole "match" or the "line".
type allowSpec struct {
	And       bool
	Target    string
	Paths     []string
	Regexes   []string
	StopWords []string
}

type rule struct {
	id       string
	desc     string
	re, path *regexp.Regexp
	// win, for a rule whose every match holds one of its keywords near
	// its start, lets the rule run only around their occurrences; nil
	// for a rule that reads the whole chunk. See window.
	win         *window
	winOnce     sync.Once
	expr        string
	secretGroup int
	entropy     float64
	keywords    []string
	allow       []*allowlist
}

type allowlist struct {
	and              bool
	target           string
	paths            *pathSet
	regexes          *regexp.Regexp
	stopwords        *lazyKeywords
	hasPaths, hasRes bool
}

// ruleSet is the compiled rule set: immutable, safe for concurrent use.
type ruleSet struct {
	rules    []*rule
	global   []*allowlist
	keywords *keywordDFA
	words    []string         // the keywords, in the automaton's order
	byWord   map[string][]int // keyword -> indexes of the rules it enables
	enables  [][]int          // byWord by the keyword's index in words
	always   []int            // rules without keywords
	// windowed: every keyword is ASCII, so that detect may find them
	// in text whose ASCII letters alone are lowered.
	windowed bool
}

// defaultRules compiles gitleaks' rules and keyward's once, on first use: nothing of
// them costs anything in a keyward that does not audit.
var defaultRules = sync.OnceValues(func() (*ruleSet, error) {
	return compileRules(append(slices.Clip(gitleaksRules), keywardRules...), gitleaksAllowlists)
})

func compileRules(specs []ruleSpec, global []allowSpec) (*ruleSet, error) {
	// The rules are compiled in parallel: start-up is most of the time
	// an audit of a small tree takes.
	rules := make([]*rule, len(specs))
	errs := make([]error, len(specs))
	var (
		wg   sync.WaitGroup
		next atomic.Int64
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(specs); i = int(next.Add(1) - 1) {
				rules[i], errs[i] = compileRule(specs[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	rs := &ruleSet{rules: rules, byWord: map[string][]int{}, windowed: true}
	var words []string
	for i, r := range rules {
		if len(r.keywords) == 0 {
			rs.always = append(rs.always, i)
		}
		for _, k := range r.keywords {
			rs.windowed = rs.windowed && isASCII(k)
			if _, ok := rs.byWord[k]; !ok {
				words = append(words, k)
			}
			rs.byWord[k] = append(rs.byWord[k], i)
		}
	}
	var err error
	if rs.global, err = compileAllow(global); err != nil {
		return nil, fmt.Errorf("global allowlist: %w", err)
	}
	if rs.keywords = newKeywordDFA(words); rs.keywords == nil {
		return nil, fmt.Errorf("%d keywords: too many", len(words))
	}
	rs.words = words
	for _, w := range words {
		rs.enables = append(rs.enables, rs.byWord[w])
	}
	return rs, nil
}

func compileRule(s ruleSpec) (*rule, error) {
	r := &rule{id: s.ID, desc: s.Description, secretGroup: s.SecretGroup, entropy: s.Entropy}
	var err error
	if s.Regex != "" {
		if r.re, err = regexp.Compile(s.Regex); err != nil {
			return nil, fmt.Errorf("rule %s: %w", s.ID, err)
		}
	}
	if s.Path != "" {
		if r.path, err = regexp.Compile(s.Path); err != nil {
			return nil, fmt.Errorf("rule %s: path: %w", s.ID, err)
		}
	}
	if r.allow, err = compileAllow(s.Allowlists); err != nil {
		return nil, fmt.Errorf("rule %s: %w", s.ID, err)
	}
	for _, k := range s.Keywords {
		r.keywords = append(r.keywords, strings.ToLower(k))
	}
	r.expr = s.Regex
	return r, nil
}

// window returns the rule's window, worked out on first use (a rule
// whose keywords a tree never holds costs nothing more); nil for a rule
// that reads the whole chunk.
func (r *rule) window() *window {
	r.winOnce.Do(func() {
		if r.re == nil || len(r.keywords) == 0 {
			return
		}
		if r.win = newWindow(r.expr, r.keywords); r.win == nil {
			r.win = ownWindow(r.expr)
		}
		if r.win == nil {
			r.win = runWindow(r.expr)
		}
	})
	return r.win
}

func compileAllow(specs []allowSpec) ([]*allowlist, error) {
	var out []*allowlist
	for _, s := range specs {
		a := &allowlist{and: s.And, target: s.Target, hasPaths: len(s.Paths) > 0, hasRes: len(s.Regexes) > 0}
		var err error
		// Joined as gitleaks joins them: one alternation, flags and all.
		if a.hasPaths {
			if a.paths, err = newPathSet("(?:" + strings.Join(s.Paths, "|") + ")"); err != nil {
				return nil, fmt.Errorf("allowlist paths: %w", err)
			}
		}
		if a.hasRes {
			if a.regexes, err = regexp.Compile("(?:" + strings.Join(s.Regexes, "|") + ")"); err != nil {
				return nil, fmt.Errorf("allowlist regexes: %w", err)
			}
		}
		if len(s.StopWords) > 0 {
			words := make([]string, len(s.StopWords))
			for i, w := range s.StopWords {
				words[i] = strings.ToLower(w)
			}
			if a.stopwords = newLazyKeywords(words); a.stopwords == nil {
				return nil, fmt.Errorf("allowlist: %d stopwords: too many", len(words))
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// pathAllowed is gitleaks' check of a path against allowlists before any
// content is read: an OR allowlist allows the path when its paths match;
// an AND one only when it has nothing but paths and they match.
func pathAllowed(path string, lists []*allowlist) bool {
	for _, a := range lists {
		match := a.hasPaths && a.paths.MatchString(path)
		if a.and {
			if a.hasRes || a.stopwords != nil {
				continue // decided per finding
			}
			if a.hasPaths && match {
				return true
			}
			continue
		}
		if match {
			return true
		}
	}
	return false
}

// findingAllowed is gitleaks' check of one finding against allowlists.
func findingAllowed(path, secret, match, line string, lists []*allowlist) bool {
	for _, a := range lists {
		target := secret
		switch a.target {
		case "match":
			target = match
		case "line":
			target = line
		}
		regexOK := a.hasRes && target != "" && a.regexes.MatchString(target)
		stopOK := a.stopwords != nil && secret != "" && a.stopwords.get().holds(strings.ToLower(secret))
		if a.and {
			ok := true
			if a.hasPaths {
				ok = ok && path != "" && a.paths.MatchString(path)
			}
			if a.hasRes {
				ok = ok && regexOK
			}
			if a.stopwords != nil {
				ok = ok && stopOK
			}
			if ok {
				return true
			}
			continue
		}
		if regexOK || stopOK {
			return true
		}
	}
	return false
}

// ruleHit is one finding of a rule in a chunk of text. Secret and Match
// stay inside this package: only their last characters are ever shown.
type ruleHit struct {
	rule   *rule
	line   int // 1-based, in the file
	offset int // byte offset of the match in the chunk
	length int
	secret string
	match  string
}

// detect runs the rules over chunk, a piece of the file path (forward
// slashes) whose first line is the file's line startLine, as gitleaks'
// detector does with a fragment at decode depth 0. A rule whose every
// match holds one of its keywords runs only around their occurrences
// (see window); the others over the whole chunk when it holds one of
// their keywords, as in gitleaks.
func (rs *ruleSet) detect(path, chunk string, startLine int) []ruleHit {
	return rs.detectIn(path, chunk, startLine, rs.windowed && !hasFoldToASCII(chunk))
}

// detectIn is detect, windowed or running every rule over the whole
// chunk; both find the same.
func (rs *ruleSet) detectIn(path, chunk string, startLine int, windowed bool) []ruleHit {
	if pathAllowed(path, rs.global) {
		return nil
	}
	enabled := make([]bool, len(rs.rules))
	for _, i := range rs.always {
		enabled[i] = true
	}
	// Keywords are found as gitleaks finds them, in the lower-cased
	// chunk; where windowed, the chunk holds no rune that lower-cases to
	// ASCII, so the keyword automaton, which takes ASCII letters of
	// either case for the same, finds the same keywords in the chunk
	// itself, at their positions.
	var (
		text  = chunk
		near  [][]span // per windowed rule: its keywords' occurrences
		lower string   // the chunk, ASCII letters lowered, once needed
	)
	if windowed {
		near = make([][]span, len(rs.rules))
	} else {
		text = strings.ToLower(chunk)
	}
	rs.keywords.walk(text, func(pos int, word int32) {
		n := len(rs.words[word])
		for _, i := range rs.enables[word] {
			enabled[i] = true
			if windowed {
				near[i] = append(near[i], span{pos, pos + n, rs.words[word]})
			}
		}
	})
	var (
		hits     []ruleHit
		newlines []int
	)
	for i, r := range rs.rules {
		if !enabled[i] || pathAllowed(path, r.allow) {
			continue
		}
		if r.path != nil {
			if !r.path.MatchString(path) {
				continue
			}
			if r.re == nil {
				hits = append(hits, ruleHit{rule: r, line: 0, match: "file detected: " + path})
				continue
			}
		}
		if r.re == nil {
			continue
		}
		var (
			matches [][]int
			w       *window
		)
		if windowed {
			w = r.window()
		}
		switch {
		case w != nil && w.own != nil:
			if lower == "" {
				lower = asciiLower(chunk)
			}
			matches = w.findAll(chunk, w.occurrences(lower), r.re)
		case w != nil:
			matches = w.findAll(chunk, near[i], r.re)
		default:
			matches = r.re.FindAllStringIndex(chunk, -1)
		}
		if len(matches) == 0 {
			continue
		}
		if newlines == nil {
			newlines = newlineIndex(chunk)
		}
		for _, mi := range matches {
			secret := strings.Trim(chunk[mi[0]:mi[1]], "\n")
			mi[1] = mi[0] + len(secret)
			loc := location(newlines, chunk, mi)
			if mi[1] > loc.endLineIndex {
				loc.endLineIndex = mi[1]
			}
			match := secret
			if groups := r.re.FindStringSubmatch(secret); len(groups) >= 2 {
				if r.secretGroup > 0 {
					if len(groups) <= r.secretGroup {
						continue
					}
					secret = groups[r.secretGroup]
				} else {
					for _, g := range groups[1:] {
						if g != "" {
							secret = g
							break
						}
					}
				}
			}
			if r.entropy != 0 && shannonEntropy(secret) <= r.entropy {
				continue
			}
			line := chunk[loc.startLineIndex:loc.endLineIndex]
			if findingAllowed(path, secret, match, line, rs.global) || findingAllowed(path, secret, match, line, r.allow) {
				continue
			}
			hits = append(hits, ruleHit{rule: r, line: startLine + loc.startLine, offset: mi[0], length: mi[1] - mi[0], secret: secret, match: match})
		}
	}
	return preferSpecific(hits)
}

// preferSpecific drops a generic rule's finding when a specific rule found
// a secret containing it on the same line, as gitleaks does.
func preferSpecific(hits []ruleHit) []ruleHit {
	out := hits[:0:0]
	for _, h := range hits {
		keep := true
		if strings.Contains(strings.ToLower(h.rule.id), "generic") {
			for _, o := range hits {
				if o.line == h.line && o.rule != h.rule && strings.Contains(o.secret, h.secret) && !strings.Contains(strings.ToLower(o.rule.id), "generic") {
					keep = false
					break
				}
			}
		}
		if keep {
			out = append(out, h)
		}
	}
	return out
}

// span is a piece of text: a keyword's occurrence (word being the
// keyword), or an interval.
type span struct {
	start, end int
	word       string
}

// asciiLower lower-cases ASCII letters only, so that byte positions in
// its result are those of s (strings.ToLower may change lengths).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// newlineIndex returns where the newlines of s are.
func newlineIndex(s string) []int {
	var out []int
	for i := 0; i < len(s); {
		j := strings.IndexByte(s[i:], '\n')
		if j < 0 {
			break
		}
		out = append(out, i+j)
		i += j + 1
	}
	return out
}

type loc struct {
	startLine, endLine           int
	startLineIndex, endLineIndex int
}

// location is gitleaks' (detect/location.go): the 0-based line of a match
// and the bounds of the line text the "line" allowlist target sees. It
// gives what gitleaks' walk over every newline gives (locationWalk, kept
// in the tests), finding the lines by binary search.
func location(newlines []int, raw string, mi []int) loc {
	var l loc
	start, end := mi[0], mi[1]
	if len(newlines) == 0 {
		newlines = []int{len(raw)}
	}
	// The walk sets the start's line at the first newline after start,
	// and the end's at the first at or after end (when end > 0); of the
	// two, the later newline's assignment of the end wins.
	ns, _ := slices.BinarySearch(newlines, start+1)
	ne, _ := slices.BinarySearch(newlines, end)
	set := ns < len(newlines)
	if set {
		l.startLine, l.endLine = ns, ns
		l.startLineIndex, l.endLineIndex = 0, newlines[ns]
		if ns > 0 {
			l.startLineIndex = newlines[ns-1]
		}
	}
	if ne < len(newlines) && (ne > 0 || end > 0) && (!set || ne >= ns) {
		l.endLine, l.endLineIndex = ne, newlines[ne]
	}
	if !set {
		l.startLine, l.endLine = len(newlines), len(newlines)
		i := 0
		for end+i < len(raw) && raw[end+i] != '\n' && raw[end+i] != '\r' {
			i++
		}
		l.endLineIndex = end + i
	}
	return l
}

func shannonEntropy(s string) float64 {
	if s == "" {
		return 0
	}
	counts := map[rune]int{}
	for _, c := range s {
		counts[c]++
	}
	var e float64
	inv := 1 / float64(len(s))
	for _, n := range counts {
		f := float64(n) * inv
		e -= f * math.Log2(f)
	}
	return e
}
