package audit

import (
	"regexp/syntax"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of the regex analysis below: the furthest a match is looked for
// from its keyword, and the largest set of strings worked out.
const (
	maxReach   = 16 << 10
	maxStrings = 256
	maxStrLen  = 64
)

// keywordAnchored reports whether every match of expr holds one of
// keywords (lower case), judged from its syntax: a conservative answer,
// false when unsure. For such a rule, text far from any keyword holds no
// match and need not be searched.
func keywordAnchored(expr string, keywords []string) bool {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return false
	}
	return anchored(re.Simplify(), keywords)
}

func anchored(re *syntax.Regexp, kws []string) bool {
	if set, ok := finite(re); ok {
		return allHold(set, kws)
	}
	switch re.Op {
	case syntax.OpCapture:
		return anchored(re.Sub[0], kws)
	case syntax.OpPlus:
		return anchored(re.Sub[0], kws)
	case syntax.OpRepeat:
		return re.Min >= 1 && anchored(re.Sub[0], kws)
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if !anchored(s, kws) {
				return false
			}
		}
		return true
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if anchored(s, kws) {
				return true
			}
		}
		// A run of consecutive parts with few strings, that all hold a
		// keyword (passw, (?:or)?, d).
		for i := range re.Sub {
			set := []string{""}
			for _, s := range re.Sub[i:] {
				var ok bool
				if set, ok = product(set, s); !ok {
					break
				}
				if allHold(set, kws) {
					return true
				}
			}
		}
	}
	return false
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

// finite returns every string re matches when they are few and short.
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
				out = append(out, string(r))
			}
		}
		return out, true
	case syntax.OpCapture:
		return finite(re.Sub[0])
	case syntax.OpQuest:
		sub, ok := finite(re.Sub[0])
		return append([]string{""}, sub...), ok && len(sub) < maxStrings
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

// maxMatchLen returns the longest match of expr in bytes, at most
// maxReach: a match that reaches further from its keyword than that (a
// PEM block of more than 16 KiB) is not searched for.
func maxMatchLen(expr string) int {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return maxReach
	}
	n := longest(re.Simplify())
	if n < 0 || n > maxReach {
		return maxReach
	}
	return n
}

// longest is the longest match of re in bytes, -1 for no bound.
func longest(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpLiteral:
		n := 0
		for _, r := range re.Rune {
			n += utf8.RuneLen(r)
			if re.Flags&syntax.FoldCase != 0 {
				n += foldLen(r) - utf8.RuneLen(r)
			}
		}
		return n
	case syntax.OpCharClass:
		if len(re.Rune) == 0 {
			return 0
		}
		return utf8.RuneLen(re.Rune[len(re.Rune)-1]) // ranges are sorted
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
		return min(n*re.Max, maxReach+1)
	case syntax.OpConcat:
		total := 0
		for _, s := range re.Sub {
			n := longest(s)
			if n < 0 {
				return -1
			}
			total = min(total+n, maxReach+1)
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

// foldLen is the longest UTF-8 length among the case variants of r.
func foldLen(r rune) int {
	n := utf8.RuneLen(r)
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		n = max(n, utf8.RuneLen(f))
	}
	return n
}
