package audit

import (
	"math/bits"
	"regexp/syntax"
	"unicode"
	"unicode/utf8"
)

// glushkov is a small automaton of byte positions (at most 64) for a
// check regex, simulated with one bit per position: a quicker stand-in
// for the check's regexp that matches whatever it matches, and more. A
// position stands for one rune; one that may match a rune beyond ASCII
// matches any run of such bytes. The end of the text is a symbol of its
// own (endOfText), which \z matches; the other assertions are taken as
// matching everywhere. See newGlushkov.
type glushkov struct {
	first, last uint64
	// bytes[c]: the positions that byte c (or endOfText) matches.
	bytes [257]uint64
	// ends: how many \z the regex holds, the most endOfText it reads.
	ends int
	// follow[p]: the positions that may follow position p.
	follow [64]uint64
}

// endOfText is the symbol read at the end of the text.
const endOfText = 256

// newGlushkov builds the automaton of re, or returns nil when re has
// more than 64 positions or can match the empty string.
func newGlushkov(re *syntax.Regexp) *glushkov {
	b := &gbuilder{}
	f, ok := b.build(re)
	if !ok || f.nullable {
		return nil
	}
	g := &glushkov{first: f.first, last: f.last, follow: b.follow, ends: b.ends}
	for p := range b.n {
		for c := range 257 {
			if b.class[p][c] {
				g.bytes[c] |= 1 << p
			}
		}
	}
	return g
}

// match reports whether the automaton matches text from some start in
// [0, starts].
func (g *glushkov) match(text string, starts int) bool {
	var d uint64
	for i := 0; i < len(text); i++ {
		var next uint64
		for ; d != 0; d &= d - 1 {
			next |= g.follow[bits.TrailingZeros64(d)]
		}
		if i <= starts {
			next |= g.first
		} else if next == 0 {
			return false
		}
		d = next & g.bytes[text[i]]
		if d&g.last != 0 {
			return true
		}
	}
	for range g.ends {
		var next uint64
		for ; d != 0; d &= d - 1 {
			next |= g.follow[bits.TrailingZeros64(d)]
		}
		if d = next & g.bytes[endOfText]; d&g.last != 0 {
			return true
		}
	}
	return false
}

type gfrag struct {
	first, last uint64
	nullable    bool
}

type gbuilder struct {
	n      int
	ends   int
	class  [64][257]bool
	follow [64]uint64
}

// pos adds a position for class; one whose class holds bytes beyond
// ASCII may follow itself, so as to read a rune of several bytes.
func (b *gbuilder) pos(class *[257]bool) (gfrag, bool) {
	if b.n == 64 {
		return gfrag{}, false
	}
	p := b.n
	b.n++
	b.class[p] = *class
	if class[0x80] {
		b.follow[p] |= 1 << p
	}
	return gfrag{first: 1 << p, last: 1 << p}, true
}

func (b *gbuilder) link(from, to uint64) {
	for from != 0 {
		p := bits.TrailingZeros64(from)
		from &^= 1 << p
		b.follow[p] |= to
	}
}

func (b *gbuilder) concat(x, y gfrag) gfrag {
	b.link(x.last, y.first)
	f := gfrag{first: x.first, last: y.last, nullable: x.nullable && y.nullable}
	if x.nullable {
		f.first |= y.first
	}
	if y.nullable {
		f.last |= x.last
	}
	return f
}

// addRune adds r, and its case variants if fold, to class: a rune
// beyond ASCII as every byte beyond it (but for those of foldsToASCII,
// which do not occur where checks run).
func addRune(class *[257]bool, r rune, fold bool) {
	add := func(r rune) {
		switch {
		case r < utf8.RuneSelf:
			class[r] = true
		case !foldsToASCIIRune(r):
			for c := 0x80; c < 0x100; c++ {
				class[c] = true
			}
		}
	}
	add(r)
	if fold {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			add(f)
		}
	}
}

func (b *gbuilder) build(re *syntax.Regexp) (gfrag, bool) {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return gfrag{nullable: true}, true
	case syntax.OpEndText:
		var class [257]bool
		class[endOfText] = true
		b.ends++
		return b.pos(&class)
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		var class [257]bool
		for c := range 256 {
			class[c] = c != '\n' || re.Op == syntax.OpAnyChar
		}
		return b.pos(&class)
	case syntax.OpLiteral:
		f := gfrag{nullable: true}
		for _, r := range re.Rune {
			var class [257]bool
			addRune(&class, r, re.Flags&syntax.FoldCase != 0)
			p, ok := b.pos(&class)
			if !ok {
				return f, false
			}
			f = b.concat(f, p)
		}
		return f, true
	case syntax.OpCharClass:
		var class [257]bool
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for r := re.Rune[i]; r <= re.Rune[i+1] && r < utf8.RuneSelf; r++ {
				class[r] = true
			}
			if re.Rune[i+1] >= utf8.RuneSelf {
				for r := max(re.Rune[i], utf8.RuneSelf); r <= re.Rune[i+1]; r++ {
					if !foldsToASCIIRune(r) {
						addRune(&class, r, false)
						break
					}
				}
			}
		}
		return b.pos(&class)
	case syntax.OpCapture:
		return b.build(re.Sub[0])
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		f, ok := b.build(re.Sub[0])
		if re.Op != syntax.OpQuest {
			b.link(f.last, f.first)
		}
		f.nullable = f.nullable || re.Op != syntax.OpPlus
		return f, ok
	case syntax.OpRepeat:
		if re.Max > 64 || re.Min > 64 {
			return gfrag{}, false
		}
		f := gfrag{nullable: true}
		for i := range max(re.Min, re.Max) {
			s, ok := b.build(re.Sub[0])
			if !ok {
				return f, false
			}
			if i >= re.Min {
				s.nullable = true
			}
			f = b.concat(f, s)
		}
		if re.Max < 0 {
			s, ok := b.build(re.Sub[0])
			if !ok {
				return f, false
			}
			b.link(s.last, s.first)
			s.nullable = true
			f = b.concat(f, s)
		}
		return f, true
	case syntax.OpConcat:
		f := gfrag{nullable: true}
		for _, s := range re.Sub {
			x, ok := b.build(s)
			if !ok {
				return f, false
			}
			f = b.concat(f, x)
		}
		return f, true
	case syntax.OpAlternate:
		var f gfrag
		for _, s := range re.Sub {
			x, ok := b.build(s)
			if !ok {
				return f, false
			}
			f.first |= x.first
			f.last |= x.last
			f.nullable = f.nullable || x.nullable
		}
		return f, true
	}
	return gfrag{}, false
}
