package mask

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"slices"
)

// gram is the length of the substrings the Matcher indexes. Every pattern
// must be at least this long.
const gram = 4

// MinPatternLength is the shortest pattern a Matcher accepts; shorter ones
// are dropped by NewMatcher.
const MinPatternLength = gram

// A Matcher finds every occurrence of a fixed set of byte patterns in a
// buffer, in one pass over it. It is immutable and safe for concurrent use.
//
// It is a sampled q-gram filter rather than an Aho-Corasick automaton: with
// m the length of the shortest pattern, it looks at the 4-byte substring at
// every (m-3)th position of the text only, tests it against a bitmap of the
// 4-byte substrings that patterns have at their first m-3 offsets, and
// compares whole patterns only on a hit. Every occurrence of a pattern
// covers exactly one sampled position with one of those substrings, so
// nothing is missed. With secrets of 6 bytes or more it reads a third of the
// text's positions and, for hundreds of patterns, the bitmap (a few hundred
// KiB) stays in cache; an Aho-Corasick automaton over the same patterns
// steps through every byte and its transition table does not fit in cache.
type Matcher struct {
	pats   [][]byte
	minLen int
	maxLen int
	step   int // distance between sampled positions: minLen - gram + 1

	shift  uint     // hash: (g * hashMul) >> shift
	filter []uint64 // bitmap of hashes of indexed grams
	cands  map[uint32][]cand

	// For Pending: patterns by their first gram, and every prefix of 1 to
	// gram-1 bytes of any pattern.
	firstFilter []uint64
	first       map[uint32][]int32
	short       map[uint32]struct{} // prefix bytes | len<<24
}

// cand is a pattern that has gram g at offset off.
type cand struct {
	pat int32
	off int32
}

const hashMul = 0x9E3779B1

// NewMatcher returns a Matcher for patterns. Patterns shorter than
// MinPatternLength are dropped and duplicates are merged; the index of
// every pattern kept is its index in patterns (Find reports that index).
// The patterns are not copied and must not be modified afterwards.
func NewMatcher(patterns [][]byte) *Matcher {
	m := &Matcher{pats: patterns}
	seen := make(map[string]bool, len(patterns))
	var keep []int32
	for i, p := range patterns {
		if len(p) < gram || seen[string(p)] {
			continue
		}
		seen[string(p)] = true
		keep = append(keep, int32(i))
		if m.minLen == 0 || len(p) < m.minLen {
			m.minLen = len(p)
		}
		m.maxLen = max(m.maxLen, len(p))
	}
	if len(keep) == 0 {
		return m
	}
	m.step = m.minLen - gram + 1
	n := len(keep) * m.step
	// About 32 bits per indexed gram: a false hit on 1 sampled position in 32
	// or fewer, and a bitmap of 128 KiB for 4,000 grams.
	b := max(10, bits.Len(uint(n*32)))
	b = min(b, 24)
	m.shift = uint(32 - b)
	m.filter = make([]uint64, (1<<b)/64)
	m.firstFilter = make([]uint64, (1<<b)/64)
	m.cands = make(map[uint32][]cand, n)
	m.first = make(map[uint32][]int32, len(keep))
	m.short = make(map[uint32]struct{})
	for _, i := range keep {
		p := patterns[i]
		for off := 0; off < m.step; off++ {
			g := binary.LittleEndian.Uint32(p[off:])
			h := m.hash(g)
			m.filter[h>>6] |= 1 << (h & 63)
			m.cands[g] = append(m.cands[g], cand{pat: i, off: int32(off)})
		}
		g := binary.LittleEndian.Uint32(p)
		h := m.hash(g)
		m.firstFilter[h>>6] |= 1 << (h & 63)
		m.first[g] = append(m.first[g], i)
		for l := 1; l < gram; l++ {
			m.short[shortKey(p[:l])] = struct{}{}
		}
	}
	return m
}

func (m *Matcher) hash(g uint32) uint32 { return (g * hashMul) >> m.shift }

func shortKey(b []byte) uint32 {
	var k uint32
	for i, c := range b {
		k |= uint32(c) << (8 * i)
	}
	return k | uint32(len(b))<<24
}

// Empty reports whether the Matcher has no pattern: Find never reports
// anything and Pending is always 0.
func (m *Matcher) Empty() bool { return m.maxLen == 0 }

// MaxLen is the length of the longest pattern (0 without patterns).
func (m *Matcher) MaxLen() int { return m.maxLen }

// MinLen is the length of the shortest pattern (0 without patterns).
func (m *Matcher) MinLen() int { return m.minLen }

// Pattern returns the pattern with index i, as given to NewMatcher.
func (m *Matcher) Pattern(i int) []byte { return m.pats[i] }

// Find calls fn for every occurrence of every pattern in b: the pattern's
// index and the occurrence's start and end offsets in b. Overlapping
// occurrences are all reported, in no particular order; fn returning false
// stops the search.
func (m *Matcher) Find(b []byte, fn func(pat, start, end int) bool) {
	if m.maxLen == 0 || len(b) < m.minLen {
		return
	}
	step, shift, filter := m.step, m.shift, m.filter
	last := len(b) - gram
	for i := 0; i <= last; i += step {
		g := binary.LittleEndian.Uint32(b[i:])
		h := (g * hashMul) >> shift
		if filter[h>>6]&(1<<(h&63)) == 0 {
			continue
		}
		for _, c := range m.cands[g] {
			start := i - int(c.off)
			p := m.pats[c.pat]
			end := start + len(p)
			if start < 0 || end > len(b) || !bytes.Equal(b[start:end], p) {
				continue
			}
			if !fn(int(c.pat), start, end) {
				return
			}
		}
	}
}

// Span is a half-open byte range [Start, End).
type Span struct{ Start, End int }

// Cover appends to dst the maximal ranges of b covered by occurrences of
// patterns, sorted and disjoint (overlapping or touching occurrences are
// merged), and returns the extended slice.
func (m *Matcher) Cover(b []byte, dst []Span) []Span {
	n0 := len(dst)
	m.Find(b, func(_, start, end int) bool {
		dst = append(dst, Span{start, end})
		return true
	})
	return mergeSpans(dst, n0)
}

// mergeSpans sorts dst[n0:] and merges overlapping or touching spans in
// place.
func mergeSpans(dst []Span, n0 int) []Span {
	s := dst[n0:]
	if len(s) < 2 {
		return dst
	}
	slices.SortFunc(s, func(a, b Span) int { return a.Start - b.Start })
	out := s[:1]
	for _, sp := range s[1:] {
		last := &out[len(out)-1]
		if sp.Start <= last.End {
			last.End = max(last.End, sp.End)
			continue
		}
		out = append(out, sp)
	}
	return dst[:n0+len(out)]
}

// Pending returns the length of the longest suffix of b, starting at or
// after from, that is a proper prefix of some pattern: the bytes that could
// still become an occurrence when more text follows. It looks at the last
// MaxLen()-1 bytes only.
func (m *Matcher) Pending(b []byte, from int) int {
	if m.maxLen == 0 {
		return 0
	}
	start := max(from, len(b)-m.maxLen+1, 0)
	for p := start; p < len(b); p++ {
		rest := b[p:]
		if len(rest) < gram {
			if _, ok := m.short[shortKey(rest)]; ok {
				return len(rest)
			}
			continue
		}
		g := binary.LittleEndian.Uint32(rest)
		h := m.hash(g)
		if m.firstFilter[h>>6]&(1<<(h&63)) == 0 {
			continue
		}
		for _, i := range m.first[g] {
			if pat := m.pats[i]; len(pat) > len(rest) && bytes.HasPrefix(pat, rest) {
				return len(rest)
			}
		}
	}
	return 0
}
