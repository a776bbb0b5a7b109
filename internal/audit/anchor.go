package audit

import (
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Limits of the regex analysis below: the largest set of strings worked
// out, the longest of them, and the furthest before the end of its
// keyword that a windowed rule's match may start.
const (
	maxStrings = 256
	maxStrLen  = 64
	maxLead    = 4 << 10
)

// window is what a rule's regex says about where its matches lie, for a
// rule whose every match holds one of its keywords: such a rule is run
// only around the keywords' occurrences, with the same results as over
// the whole text (see ruleSet.windowed).
type window struct {
	// lead bounds how far before the end of the keyword it holds a match
	// starts, in bytes.
	lead int
	// lines bounds how many newlines a match holds; -1 for no bound.
	lines int
	// skip is the rule's regex after a lazy skip of at most skipRunes
	// runes from the start of the text, its match in group 1: the
	// leftmost match that starts within skipRunes of a position. skipCtx
	// first passes over one rune, the one before that position, so that
	// \b, \B and ^ see what they see in the whole text. Both are
	// compiled from expr, the rule's regex, on first use: most rules
	// never need them.
	skipRunes     int
	skip, skipCtx lazyRegexp
	expr          string
	// context: the regex looks at the rune before a match (\b, \B, ^).
	context bool
	// check, when set, is a quick test that a keyword's occurrence can
	// be in a match, run from the keyword's end: a lazy skip of at most
	// the length of the regex's parts that hold the keyword, then the
	// parts after them, loosened (see loosen).
	check *regexp.Regexp
	// autos, when set, stand in for check: one automaton for each
	// alternative of the regex, run from the keyword's end with starts
	// up to runs bytes after the keyword's start.
	autos []*glushkov
	runs  []int
	// ends[i], when set, gives for each keyword how far after its start
	// the run of parts holding it in alternative i ends: at least
	// [0] bytes, at most [1]; a keyword missing from it is in no such
	// run.
	ends []map[string][2]int
	// Before check, a quicker one: some byte of first must be within
	// reach bytes of the keyword's start (from its end on); reach < 0
	// when there is no such test.
	first *[256]bool
	reach int
	// before, when set, holds every byte the regex's parts before the
	// run of runLen bytes at most that holds a keyword may match.
	before *[256]bool
	runLen int
	// own, for a rule whose matches need not hold its keywords, are
	// strings (lower case) that every match holds, found in the regex
	// (see ownWindow): the rule runs around their occurrences instead.
	own []string
	// run, for such a rule, is instead a class of bytes (ASCII) of which
	// every match holds runMin or more in a row, at most lead bytes from
	// its start.
	run    *[256]bool
	runMin int
}

// newWindow analyses expr, a rule's regex, for its keywords (lower case).
// It returns nil when it cannot show that every match holds a keyword no
// further than maxLead bytes from the match's start: the rule then reads
// the whole text wherever one of its keywords is.
func newWindow(expr string, keywords []string) *window {
	// The tree as parsed, with counted repetitions as such (Simplify
	// would spell them out).
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	lead, ok := anchorEnd(re, []string{""}, 0, keywords)
	if !ok || lead < 0 || lead > maxLead || nullable(re) {
		return nil
	}
	w := &window{lead: lead, lines: maxNewlines(re), context: looksBack(re), skipRunes: max(lead, 1), expr: expr}
	w.addCheck(re, keywords)
	if pre, run, ok := beforeAnchor(flatten(re), keywords); ok {
		var set [256]bool
		if addBytes(&set, &syntax.Regexp{Op: syntax.OpConcat, Sub: pre}) {
			w.before, w.runLen = &set, run
		}
	}
	return w
}

// beforeAnchor returns, for a sequence of parts (groups opened) of which
// a run of consecutive ones holds a keyword in every match, the parts
// before that run and the run's longest match.
func beforeAnchor(parts []*syntax.Regexp, kws []string) ([]*syntax.Regexp, int, bool) {
	start := 0
	pre, preLen := []string{""}, 0
	for i, s := range parts {
		set, ok := product(pre, s)
		if !ok {
			pre, preLen, start = []string{""}, 0, i+1
			continue
		}
		preLen = addLen(preLen, longest(s))
		if allHold(set, kws) {
			return parts[:start], preLen, preLen >= 0 && preLen <= maxLead
		}
		pre = set
	}
	return nil, 0, false
}

// addBytes adds to set every byte a match of re may hold, and reports
// whether they are all ASCII (in text without the runes of
// foldsToASCII).
func addBytes(set *[256]bool, re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return true
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			rs := []rune{r}
			if re.Flags&syntax.FoldCase != 0 {
				for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
					rs = append(rs, f)
				}
			}
			for _, r := range rs {
				switch {
				case r < utf8.RuneSelf:
					set[r] = true
				case !foldsToASCIIRune(r):
					return false
				}
			}
		}
		return true
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				switch {
				case r < utf8.RuneSelf:
					set[r] = true
				case !foldsToASCIIRune(r):
					return false
				}
			}
		}
		return true
	case syntax.OpCapture, syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat, syntax.OpConcat, syntax.OpAlternate:
		for _, s := range re.Sub {
			if !addBytes(set, s) {
				return false
			}
		}
		return true
	}
	return false
}

// earliest returns where a match holding the keyword k may start at the
// earliest: w.lead bytes before its end, or, when the regex's parts
// before the run that holds the keyword match only bytes of w.before,
// after the last byte before the run that is not one of them.
func (w *window) earliest(text string, k span) int {
	lo := max(k.end-w.lead, 0)
	if w.before == nil {
		return lo
	}
	i := max(k.end-w.runLen, 0)
	for i > lo && w.before[text[i-1]] {
		i--
	}
	return i
}

// addCheck sets w.check, w.first and w.reach for re when it is, or its
// alternatives are, a sequence of parts of which a run holds a keyword.
func (w *window) addCheck(re *syntax.Regexp, keywords []string) {
	w.reach = -1
	var (
		checks []string
		autos  []*glushkov
		runs   []int
		ends   []map[string][2]int
		first  [256]bool
		reach  = 0
	)
	for _, parts := range variants(flatten(re), 2) {
		rest, run, runSet, ok := afterAnchor(parts, keywords)
		if !ok || len(rest) == 0 {
			return
		}
		// The first part after the run that cannot be empty starts
		// within run plus the longest of the parts before it.
		r := run
		for _, p := range rest {
			if !nullable(p) {
				if set, ok := firstBytes(p); ok && reach >= 0 {
					for i, in := range set {
						first[i] = first[i] || in
					}
					reach = max(reach, r)
				} else {
					reach = -1
				}
				break
			}
			if r = addLen(r, longest(p)); r < 0 || r > maxLead {
				reach = -1
				break
			}
		}
		c := &syntax.Regexp{Op: syntax.OpConcat}
		for _, p := range rest {
			c.Sub = append(c.Sub, loosen(p))
		}
		if nullable(c) {
			return
		}
		var b strings.Builder
		b.WriteString(`(?s:.){0,` + strconv.Itoa(run) + `}?`)
		reString(&b, c)
		checks = append(checks, b.String())
		autos = append(autos, newGlushkov(c))
		runs = append(runs, run)
		ends = append(ends, runEnds(runSet, keywords))
	}
	if len(checks) == 0 {
		return
	}
	if reach >= 0 {
		w.first, w.reach = &first, reach
	}
	if !slices.Contains(autos, nil) {
		w.autos, w.runs, w.ends = autos, runs, ends
		return
	}
	w.check, _ = regexp.Compile(`\A(?:` + strings.Join(checks, "|") + `)`)
}

// variants returns the sequences of parts that parts stands for, an
// alternation among them spelt out, to depth alternations deep and as
// long as they are few.
func variants(parts []*syntax.Regexp, depth int) [][]*syntax.Regexp {
	if depth > 0 {
		for i, p := range parts {
			if p.Op != syntax.OpAlternate || len(p.Sub) > 8 {
				continue
			}
			if _, ok := finite(p); ok {
				continue
			}
			var out [][]*syntax.Regexp
			for _, alt := range p.Sub {
				v := append(append(slices.Clip(parts[:i]), flatten(alt)...), parts[i+1:]...)
				out = append(out, variants(v, depth-1)...)
				if len(out) > 8 {
					return [][]*syntax.Regexp{parts}
				}
			}
			return out
		}
	}
	return [][]*syntax.Regexp{parts}
}

// afterAnchor returns, for a sequence of parts (groups opened) of which
// a run of consecutive ones holds a keyword in every match, the parts
// after that run, the run's longest match and its strings (lower case).
func afterAnchor(parts []*syntax.Regexp, kws []string) ([]*syntax.Regexp, int, []string, bool) {
	pre, preLen := []string{""}, 0
	for i, s := range parts {
		set, ok := product(pre, s)
		if !ok {
			pre, preLen = []string{""}, 0
			continue
		}
		preLen = addLen(preLen, longest(s))
		if allHold(set, kws) {
			lower := make([]string, len(set))
			for j, s := range set {
				lower[j] = asciiLower(s)
			}
			return parts[i+1:], preLen, lower, preLen >= 0 && preLen <= maxLead
		}
		pre = set
	}
	return nil, 0, nil, false
}

// loosen returns a regex that matches whatever re matches where re
// follows a keyword, and more: without assertions that look back (the
// check starts inside the text), without groups, and with long counted
// repetitions left open, so that it is small.
func loosen(re *syntax.Regexp) *syntax.Regexp {
	switch re.Op {
	case syntax.OpWordBoundary, syntax.OpNoWordBoundary, syntax.OpBeginLine, syntax.OpBeginText:
		return &syntax.Regexp{Op: syntax.OpEmptyMatch}
	case syntax.OpCapture:
		return loosen(re.Sub[0])
	}
	c := *re
	c.Sub = nil
	for _, s := range re.Sub {
		c.Sub = append(c.Sub, loosen(s))
	}
	if c.Op == syntax.OpRepeat && (c.Max > 16 || c.Min > 16) {
		c.Min, c.Max = min(c.Min, 16), -1
	}
	return &c
}

// keep filters kws, the occurrences of keywords in text, down to those
// that pass w.check.
func (w *window) keep(text string, kws []span) []span {
	if w.check == nil && w.autos == nil {
		return kws
	}
	out := kws[:0]
	for _, k := range kws {
		if w.first != nil && !w.firstNear(text, k) {
			continue
		}
		if w.passes(text[k.end:cutAfter(text, k.start, w.lines)], k) {
			out = append(out, k)
		}
	}
	return out
}

// passes runs the check on in, the text from the keyword k's end.
func (w *window) passes(in string, k span) bool {
	if w.autos == nil {
		return w.check.MatchString(in)
	}
	for i, g := range w.autos {
		if w.ends[i] == nil {
			if g.match(in, k.start+w.runs[i]-k.end) {
				return true
			}
			continue
		}
		r, ok := w.ends[i][k.word]
		if from := k.start + r[0] - k.end; ok && from <= len(in) && g.match(in[from:], r[1]-r[0]) {
			return true
		}
	}
	return false
}

// runEnds works out window.ends for a run of parts matching the strings
// set (lower case); nil when one of them is not ASCII (a case variant
// might then differ in length).
func runEnds(set, keywords []string) map[string][2]int {
	ends := map[string][2]int{}
	for _, s := range set {
		if !isASCII(s) {
			return nil
		}
		for _, k := range keywords {
			for o := 0; ; o++ {
				i := strings.Index(s[o:], k)
				if i < 0 {
					break
				}
				o += i
				d := len(s) - o
				if r, ok := ends[k]; ok {
					ends[k] = [2]int{min(r[0], d), max(r[1], d)}
				} else {
					ends[k] = [2]int{d, d}
				}
			}
		}
	}
	return ends
}

// firstNear reports whether a byte of w.first is within w.reach bytes of
// the keyword k's start, from its end on.
func (w *window) firstNear(text string, k span) bool {
	for i := k.end; i < len(text) && i <= k.start+w.reach; i++ {
		if w.first[text[i]] {
			return true
		}
	}
	return false
}

// firstBytes returns the bytes a non-empty match of re may start with,
// in text without the runes of foldsToASCII; false when unsure.
func firstBytes(re *syntax.Regexp) (*[256]bool, bool) {
	var set [256]bool
	if !addFirst(&set, re) {
		return nil, false
	}
	return &set, true
}

// addFirst adds to set the bytes a match of re may start with, and
// reports whether it knows them all.
func addFirst(set *[256]bool, re *syntax.Regexp) bool {
	addRune := func(r rune) {
		if r < utf8.RuneSelf {
			set[r] = true
			return
		}
		var b [utf8.UTFMax]byte
		utf8.EncodeRune(b[:], r)
		set[b[0]] = true
	}
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return true
	case syntax.OpLiteral:
		if len(re.Rune) == 0 {
			return true
		}
		r := re.Rune[0]
		addRune(r)
		if re.Flags&syntax.FoldCase != 0 {
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				addRune(f)
			}
		}
		return true
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			for r := lo; r <= hi && r < utf8.RuneSelf; r++ {
				set[r] = true
			}
			if hi >= utf8.RuneSelf {
				for b := 0xc0; b < 0x100; b++ {
					set[b] = true // any lead byte, and what regexp reads as U+FFFD
				}
				for b := 0x80; b < 0xc0; b++ {
					set[b] = true
				}
			}
		}
		return true
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return false
	case syntax.OpCapture, syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		return addFirst(set, re.Sub[0])
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if !addFirst(set, s) {
				return false
			}
		}
		return true
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if !addFirst(set, s) {
				return false
			}
			if !nullable(s) {
				break
			}
		}
		return true
	}
	return false
}

// cutAfter returns where text ends or, for lines >= 0, the end of the
// line after the first lines ones from i (after its newline).
func cutAfter(text string, i, lines int) int {
	if lines < 0 {
		return len(text)
	}
	for n := 0; ; n++ {
		j := strings.IndexByte(text[i:], '\n')
		if j < 0 {
			return len(text)
		}
		if n == lines {
			return i + j + 1
		}
		i += j + 1
	}
}

// ownWindow is newWindow for a rule whose matches need not hold its
// keywords, with strings found in its regex instead (see bestStrings),
// of three bytes or more. Nil when there are none.
func ownWindow(expr string) *window {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	best := bestStrings(flatten(re), 3)
	if best == nil {
		return nil
	}
	w := newWindow(expr, best)
	if w != nil {
		w.own = best
	}
	return w
}

// runWindow is ownWindow with a run of bytes of one class in every
// match (as [a-f0-9]{40}) instead of strings: the class of the longest
// such run of 12 or more found, nil when there is none.
func runWindow(expr string) *window {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil || nullable(re) {
		return nil
	}
	var best *window
	var walk func(*syntax.Regexp)
	walk = func(n *syntax.Regexp) {
		if class, m, ok := classRepeat(n); ok && m >= 12 && (best == nil || m > best.runMin) {
			if lead, ok := runLead(re, class, m); ok && lead >= 0 && lead <= maxLead {
				best = &window{run: class, runMin: m, lead: lead}
			}
		}
		for _, s := range n.Sub {
			walk(s)
		}
	}
	walk(re)
	if best == nil {
		return nil
	}
	best.lines, best.context, best.skipRunes, best.reach = maxNewlines(re), looksBack(re), max(best.lead, 64), -1
	best.expr = expr
	return best
}

// classRepeat returns, for re a repetition of a class of ASCII bytes (in
// text without the runes of foldsToASCII) at least m times, the class
// and m.
func classRepeat(re *syntax.Regexp) (*[256]bool, int, bool) {
	if re.Op != syntax.OpRepeat || re.Sub[0].Op != syntax.OpCharClass {
		return nil, 0, false
	}
	var class [256]bool
	rs := re.Sub[0].Rune
	for i := 0; i+1 < len(rs); i += 2 {
		for r := rs[i]; r <= rs[i+1]; r++ {
			if r >= utf8.RuneSelf {
				if !foldsToASCIIRune(r) {
					return nil, 0, false
				}
				continue
			}
			class[r] = true
		}
	}
	return &class, re.Min, true
}

// runLead reports whether every match of re holds m or more bytes of
// class in a row, and if so how far from the match's start that run
// starts at most (-1 for no bound).
func runLead(re *syntax.Regexp, class *[256]bool, m int) (int, bool) {
	if c, n, ok := classRepeat(re); ok && n >= m && subClass(c, class) {
		return 0, true
	}
	if sub := leadSub(re); sub != nil {
		return runLead(sub, class, m)
	}
	switch re.Op {
	case syntax.OpAlternate:
		return maxBound(re.Sub, func(s *syntax.Regexp) (int, bool) { return runLead(s, class, m) })
	case syntax.OpConcat:
		before := 0
		for _, s := range re.Sub {
			if n, ok := runLead(s, class, m); ok {
				return addLen(before, n), true
			}
			before = addLen(before, longest(s))
		}
	}
	return 0, false
}

// leadSub returns the sub-expression whose match starts every match of re
// (a capture, a plus, a repeat of at least one), nil for none.
func leadSub(re *syntax.Regexp) *syntax.Regexp {
	switch re.Op {
	case syntax.OpCapture, syntax.OpPlus:
		return re.Sub[0]
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return re.Sub[0]
		}
	}
	return nil
}

// maxBound is the answer of runLead or anchorEnd (f) for the alternation
// of subs: the largest of f's bounds over them (-1 when one has none),
// false when f is false for one.
func maxBound(subs []*syntax.Regexp, f func(*syntax.Regexp) (int, bool)) (int, bool) {
	bound := 0
	for _, s := range subs {
		n, ok := f(s)
		if !ok {
			return 0, false
		}
		if n < 0 || bound < 0 {
			bound = -1
		} else {
			bound = max(bound, n)
		}
	}
	return bound, true
}

func subClass(a, b *[256]bool) bool {
	for i := range a {
		if a[i] && !b[i] {
			return false
		}
	}
	return true
}

// runIntervals returns where matches of a rule windowed on runs of
// w.run may start: from lead bytes before each run of runMin or more
// bytes of the class to runMin bytes before its end.
func (w *window) runIntervals(text string) []span {
	var out []span
	run := w.run
	for i := 0; i < len(text); {
		if !run[text[i]] {
			i++
			continue
		}
		// A run of runMin or more holds the byte runMin-1 on.
		if k := i + w.runMin - 1; k < len(text) && !run[text[k]] {
			i = k + 1
			continue
		}
		j := i
		for j < len(text) && run[text[j]] {
			j++
		}
		if j-i >= w.runMin {
			out = append(out, span{start: max(i-w.lead, 0), end: j - w.runMin})
		}
		i = j
	}
	return out
}

// bestStrings returns, of the runs of consecutive parts with few strings,
// the strings (lower case) of the one with the fewest that are all of
// minLen bytes or more, the longest of those; nil when there is none.
func bestStrings(parts []*syntax.Regexp, minLen int) []string {
	var best []string
	bestLen := 0
	for i := range parts {
		set := []string{""}
		for _, p := range parts[i:] {
			var ok bool
			if set, ok = product(set, p); !ok {
				break
			}
			lits, shortest := lowerSet(set)
			if shortest < minLen {
				continue
			}
			if best == nil || len(lits) < len(best) || len(lits) == len(best) && shortest > bestLen {
				best, bestLen = lits, shortest
			}
		}
	}
	return best
}

// flatten returns the parts of re that follow each other in every
// match, groups opened.
func flatten(re *syntax.Regexp) []*syntax.Regexp {
	switch re.Op {
	case syntax.OpCapture:
		return flatten(re.Sub[0])
	case syntax.OpConcat:
		var out []*syntax.Regexp
		for _, s := range re.Sub {
			out = append(out, flatten(s)...)
		}
		return out
	}
	return []*syntax.Regexp{re}
}

// lowerSet returns set lower-cased (ASCII), without repeats, and the
// length of its shortest string; 0 when one is empty or not ASCII.
func lowerSet(set []string) ([]string, int) {
	var out []string
	shortest := maxStrLen + 1
	for _, s := range set {
		if !isASCII(s) {
			return nil, 0
		}
		s = asciiLower(s)
		shortest = min(shortest, len(s))
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, shortest
}

// occurrences returns where the strings w.own are in lower, the text
// with its ASCII letters lowered.
func (w *window) occurrences(lower string) []span {
	var out []span
	for _, lit := range w.own {
		for i := 0; ; {
			j := strings.Index(lower[i:], lit)
			if j < 0 {
				break
			}
			out = append(out, span{start: i + j, end: i + j + len(lit), word: lit})
			i += j + 1
		}
	}
	return out
}

// anchorEnd reports whether every match of re, preceded by one of the
// strings pre (at most preLen bytes), holds one of kws, and if so how
// far from the start of that string the keyword ends at most, in bytes
// (-1 for no bound). The answer is conservative: false when unsure.
func anchorEnd(re *syntax.Regexp, pre []string, preLen int, kws []string) (int, bool) {
	if set, ok := product(pre, re); ok && allHold(set, kws) {
		return addLen(preLen, longest(re)), true
	}
	if sub := leadSub(re); sub != nil {
		return anchorEnd(sub, pre, preLen, kws)
	}
	switch re.Op {
	case syntax.OpAlternate:
		return maxBound(re.Sub, func(s *syntax.Regexp) (int, bool) { return anchorEnd(s, pre, preLen, kws) })
	case syntax.OpConcat:
		// before: the longest of the parts before the run that pre
		// holds the strings of; pre grows while the parts have few
		// strings, and starts again after a part that has many.
		before := 0
		for _, s := range re.Sub {
			if set, ok := product(pre, s); ok {
				preLen = addLen(preLen, longest(s))
				if allHold(set, kws) {
					return addLen(before, preLen), true
				}
				pre = set
				continue
			}
			if n, ok := anchorEnd(s, pre, preLen, kws); ok {
				return addLen(before, n), true
			}
			before = addLen(addLen(before, preLen), longest(s))
			pre, preLen = []string{""}, 0
		}
	}
	return 0, false
}

// addLen adds two lengths, -1 meaning no bound.
func addLen(a, b int) int {
	if a < 0 || b < 0 {
		return -1
	}
	return min(a+b, maxLead+1)
}

func allHold(set []string, kws []string) bool {
	for _, s := range set {
		s = asciiLower(s)
		held := false
		for _, k := range kws {
			if strings.Contains(s, k) {
				held = true
				break
			}
		}
		if !held {
			return false
		}
	}
	return len(set) > 0
}

func product(set []string, re *syntax.Regexp) ([]string, bool) {
	sub, ok := finite(re)
	if !ok || len(set)*len(sub) > maxStrings {
		return nil, false
	}
	var out []string
	for _, a := range set {
		for _, b := range sub {
			if len(a)+len(b) > maxStrLen {
				return nil, false
			}
			out = append(out, a+b)
		}
	}
	return out, true
}

// finite returns every string re matches when they are few and short, in
// text without the runes of foldsToASCII (the only text windowed): a
// literal that ignores case then stands for its ASCII case variants,
// which asciiLower maps to the same string, and a class's members
// exclude those runes.
func finite(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return []string{""}, true
	case syntax.OpLiteral:
		return []string{string(re.Rune)}, len(re.Rune) <= maxStrLen
	case syntax.OpCharClass:
		var out []string
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				if len(out) == maxStrings {
					return nil, false
				}
				if c := string(r); !slices.Contains(foldsToASCII, c) {
					out = append(out, c)
				}
			}
		}
		return out, true
	case syntax.OpCapture:
		return finite(re.Sub[0])
	case syntax.OpQuest:
		sub, ok := finite(re.Sub[0])
		return append([]string{""}, sub...), ok && len(sub) < maxStrings
	case syntax.OpRepeat:
		if re.Max < 0 || re.Max > maxStrLen {
			return nil, false
		}
		var out []string
		set := []string{""}
		for n := 0; n <= re.Max; n++ {
			if n >= re.Min {
				out = append(out, set...)
			}
			if n < re.Max {
				var ok bool
				if set, ok = product(set, re.Sub[0]); !ok {
					return nil, false
				}
			}
		}
		return out, len(out) <= maxStrings
	case syntax.OpConcat:
		set := []string{""}
		for _, s := range re.Sub {
			var ok bool
			if set, ok = product(set, s); !ok {
				return nil, false
			}
		}
		return set, true
	case syntax.OpAlternate:
		var out []string
		for _, s := range re.Sub {
			sub, ok := finite(s)
			if !ok || len(out)+len(sub) > maxStrings {
				return nil, false
			}
			out = append(out, sub...)
		}
		return out, true
	}
	return nil, false
}

// longest is the longest match of re in bytes in text without the runes
// of foldsToASCII, -1 for no bound (or one over maxLead).
func longest(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpLiteral:
		n := 0
		for _, r := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 {
				n += foldLen(r)
			} else {
				n += utf8.RuneLen(r)
			}
		}
		return min(n, maxLead+1)
	case syntax.OpCharClass:
		n := 0
		for i := 0; i+1 < len(re.Rune); i += 2 {
			r := re.Rune[i+1]
			for r >= re.Rune[i] && foldsToASCIIRune(r) {
				r--
			}
			if r >= re.Rune[i] {
				n = max(n, utf8.RuneLen(r))
			}
		}
		return n
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return utf8.UTFMax
	case syntax.OpCapture, syntax.OpQuest:
		return longest(re.Sub[0])
	case syntax.OpStar, syntax.OpPlus:
		return -1
	case syntax.OpRepeat:
		n := longest(re.Sub[0])
		if re.Max < 0 || n < 0 {
			return -1
		}
		return min(n*re.Max, maxLead+1)
	case syntax.OpConcat:
		total := 0
		for _, s := range re.Sub {
			total = addLen(total, longest(s))
		}
		return total
	case syntax.OpAlternate:
		m := 0
		for _, s := range re.Sub {
			n := longest(s)
			if n < 0 {
				return -1
			}
			m = max(m, n)
		}
		return m
	}
	return 0
}

// foldLen is the longest UTF-8 length among the case variants of r,
// but for those of foldsToASCII.
func foldLen(r rune) int {
	n := utf8.RuneLen(r)
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if !foldsToASCIIRune(f) {
			n = max(n, utf8.RuneLen(f))
		}
	}
	return n
}

// maxNewlines is the most newlines a match of re holds, -1 for no bound.
func maxNewlines(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpLiteral:
		return strings.Count(string(re.Rune), "\n")
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			if re.Rune[i] <= '\n' && '\n' <= re.Rune[i+1] {
				return 1
			}
		}
		return 0
	case syntax.OpAnyChar:
		return 1
	case syntax.OpCapture, syntax.OpQuest:
		return maxNewlines(re.Sub[0])
	case syntax.OpStar, syntax.OpPlus, syntax.OpRepeat:
		n := maxNewlines(re.Sub[0])
		switch {
		case n == 0:
			return 0
		case n < 0 || re.Op != syntax.OpRepeat || re.Max < 0:
			return -1
		}
		return n * re.Max
	case syntax.OpConcat, syntax.OpAlternate:
		total := 0
		for _, s := range re.Sub {
			n := maxNewlines(s)
			if n < 0 {
				return -1
			}
			if re.Op == syntax.OpConcat {
				total += n
			} else {
				total = max(total, n)
			}
		}
		return total
	}
	return 0
}

// looksBack reports whether re has an assertion that looks at the rune
// before its position: \b, \B, ^ (of a line or of the text).
func looksBack(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpWordBoundary, syntax.OpNoWordBoundary, syntax.OpBeginLine, syntax.OpBeginText:
		return true
	}
	for _, s := range re.Sub {
		if looksBack(s) {
			return true
		}
	}
	return false
}

// nullable reports whether re can match the empty string.
func nullable(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary, syntax.OpStar, syntax.OpQuest:
		return true
	case syntax.OpCapture, syntax.OpPlus:
		return nullable(re.Sub[0])
	case syntax.OpRepeat:
		return re.Min == 0 || nullable(re.Sub[0])
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if !nullable(s) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if nullable(s) {
				return true
			}
		}
		return false
	}
	return false
}

// foldsToASCII lists the runes beyond ASCII that a case-insensitive regex
// takes for an ASCII letter (unicode.SimpleFold) or that strings.ToLower
// turns into one, as UTF-8: text holding one is searched whole, since
// the keywords' occurrences found in its ASCII-lowered form might not be
// all those that a match or gitleaks' keyword check sees. A test checks
// the list against the unicode tables.
var foldsToASCII = []string{"\u0130", "\u017f", "\u212a"}

func foldsToASCIIRune(r rune) bool {
	return r == '\u0130' || r == '\u017f' || r == '\u212a'
}

func hasFoldToASCII(s string) bool {
	for _, r := range foldsToASCII {
		if strings.Contains(s, r) {
			return true
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// findAll returns what the rule's regex.FindAllStringIndex(text, -1)
// returns, given where its keywords are in text (kws, their byte spans).
// Every match holds a keyword that ends at most w.lead bytes after the
// match's start, so matches start only in the intervals [end-lead,
// start] of the keywords' spans; within them, findAll looks for the
// leftmost match from where the last one ended, as FindAll does, with
// the text on both sides that the regex can look at.
func (w *window) findAll(text string, kws []span, whole *regexp.Regexp) [][]int {
	var ivs []span
	if w.run != nil {
		ivs = w.runIntervals(text)
	} else {
		kws = w.keep(text, kws)
		ivs = make([]span, len(kws))
		for i, k := range kws {
			ivs[i] = span{start: w.earliest(text, k), end: k.start}
		}
	}
	slices.SortFunc(ivs, func(a, b span) int { return a.start - b.start })
	var (
		out [][]int
		pos int // where the last match ended
	)
	for i := 0; i < len(ivs); {
		lo, hi := ivs[i].start, ivs[i].end
		for i++; i < len(ivs) && ivs[i].start <= hi+1; i++ {
			hi = max(hi, ivs[i].end)
		}
		for a := max(lo, pos); a <= hi; {
			s, e, next := w.find(text, a)
			if next < 0 { // a regexp that does not compile
				return whole.FindAllStringIndex(text, -1)
			}
			if s < 0 {
				a = next
				continue
			}
			out = append(out, []int{s, e})
			pos, a = e, e // a match is never empty (newWindow)
		}
	}
	return out
}

// lazyRegexp is a regexp compiled on first use.
type lazyRegexp struct {
	once sync.Once
	re   *regexp.Regexp
}

// get returns the regexp, nil if expr (called once) does not compile.
func (l *lazyRegexp) get(expr func() string) *regexp.Regexp {
	l.once.Do(func() { l.re, _ = regexp.Compile(expr()) })
	return l.re
}

// skipExpr is the expression of skip, or of skipCtx with ctx.
func (w *window) skipExpr(ctx bool) string {
	n := strconv.Itoa(w.skipRunes)
	if ctx {
		return `\A(?s:.)(?s:.){0,` + n + `}?(` + w.expr + `)`
	}
	return `\A(?s:.){0,` + n + `}?(` + w.expr + `)`
}

// find returns the leftmost match of the rule's regex in text (as in the
// whole text) that starts within w.skipRunes runes from a, or s < 0 and
// the position after the last start it looked at (next < 0 when the
// search's regexp does not compile).
func (w *window) find(text string, a int) (s, e, next int) {
	a = runeStart(text, a)
	last := a
	for range w.skipRunes {
		if last >= len(text) {
			break
		}
		last += runeWidth(text, last)
	}
	// The match cannot take in more newlines than w.lines from any start
	// up to last: the text is cut after one more, and no thread of the
	// regex reaches the cut.
	end := cutAfter(text, last, w.lines)
	from, re := a, &w.skip
	if w.context && a > 0 {
		_, n := utf8.DecodeLastRuneInString(text[:a])
		from, re = a-n, &w.skipCtx
	}
	compiled := re.get(func() string { return w.skipExpr(re == &w.skipCtx) })
	if compiled == nil {
		return -1, -1, -1
	}
	loc := compiled.FindStringSubmatchIndex(text[from:end])
	if loc == nil {
		if last < len(text) {
			return -1, -1, last + runeWidth(text, last)
		}
		return -1, -1, len(text) + 1
	}
	return from + loc[2], from + loc[3], 0
}

// runeWidth is the width of the rune at text[i] as the regexp package
// steps over it: 1 for a byte that does not start a valid encoding.
func runeWidth(text string, i int) int {
	if text[i] < utf8.RuneSelf {
		return 1
	}
	_, n := utf8.DecodeRuneInString(text[i:])
	return n
}

// runeStart moves i back to the start of the rune that the regexp
// package, stepping from the text's start, sees it in.
func runeStart(text string, i int) int {
	for j := i - 1; j >= 0 && j > i-utf8.UTFMax; j-- {
		if utf8.RuneStart(text[j]) {
			if _, n := utf8.DecodeRuneInString(text[j:]); j+n > i {
				return j
			}
			break
		}
	}
	return i
}

// reString writes re as a regex that parses back to it. It stands in for
// re.String, which costs much more on the large case-folded classes of
// gitleaks' rules (it works out whether each folds to itself).
func reString(b *strings.Builder, re *syntax.Regexp) {
	switch re.Op {
	case syntax.OpNoMatch:
		b.WriteString(`[^\x00-\x{10FFFF}]`)
	case syntax.OpEmptyMatch:
		b.WriteString(`(?:)`)
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			b.WriteString(`(?i:`)
		} else {
			b.WriteString(`(?:`)
		}
		for _, r := range re.Rune {
			b.WriteString(`\x{` + strconv.FormatInt(int64(r), 16) + `}`)
		}
		b.WriteString(`)`)
	case syntax.OpCharClass:
		if len(re.Rune) == 0 {
			b.WriteString(`[^\x00-\x{10FFFF}]`)
			break
		}
		b.WriteString(`[`)
		for i := 0; i+1 < len(re.Rune); i += 2 {
			b.WriteString(`\x{` + strconv.FormatInt(int64(re.Rune[i]), 16) + `}-\x{` + strconv.FormatInt(int64(re.Rune[i+1]), 16) + `}`)
		}
		b.WriteString(`]`)
	case syntax.OpAnyCharNotNL:
		b.WriteString(`(?-s:.)`)
	case syntax.OpAnyChar:
		b.WriteString(`(?s:.)`)
	case syntax.OpBeginLine:
		b.WriteString(`(?m:^)`)
	case syntax.OpEndLine:
		b.WriteString(`(?m:$)`)
	case syntax.OpBeginText:
		b.WriteString(`\A`)
	case syntax.OpEndText:
		b.WriteString(`\z`)
	case syntax.OpWordBoundary:
		b.WriteString(`\b`)
	case syntax.OpNoWordBoundary:
		b.WriteString(`\B`)
	case syntax.OpCapture:
		b.WriteString(`(`)
		reString(b, re.Sub[0])
		b.WriteString(`)`)
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		b.WriteString(`(?:`)
		reString(b, re.Sub[0])
		b.WriteString(`)`)
		switch re.Op {
		case syntax.OpStar:
			b.WriteString(`*`)
		case syntax.OpPlus:
			b.WriteString(`+`)
		case syntax.OpQuest:
			b.WriteString(`?`)
		default:
			b.WriteString(`{` + strconv.Itoa(re.Min) + `,`)
			if re.Max >= 0 {
				b.WriteString(strconv.Itoa(re.Max))
			}
			b.WriteString(`}`)
		}
		if re.Flags&syntax.NonGreedy != 0 {
			b.WriteString(`?`)
		}
	case syntax.OpConcat, syntax.OpAlternate:
		b.WriteString(`(?:`)
		for i, s := range re.Sub {
			if i > 0 && re.Op == syntax.OpAlternate {
				b.WriteString(`|`)
			}
			reString(b, s)
		}
		b.WriteString(`)`)
	}
}
