package audit

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestKeywordDFA: the automaton finds every occurrence of every keyword,
// overlapping ones too, in text of either case, as a search for each
// keyword in turn in the lower-cased text does.
func TestKeywordDFA(t *testing.T) {
	t.Parallel()
	rs, err := defaultRules()
	if err != nil {
		t.Fatal(err)
	}
	words := append(slices.Clone(rs.words), "a", "aa", "aab", "b", "ab")
	d := newKeywordDFA(words)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	for range 300 {
		var b strings.Builder
		for range r.IntN(100) {
			if r.IntN(2) == 0 {
				w := words[r.IntN(len(words))]
				if r.IntN(3) == 0 {
					w = strings.ToUpper(w)
				}
				b.WriteString(w)
			} else {
				b.WriteByte("ab_-. \n\xff"[r.IntN(8)])
			}
		}
		text := b.String()
		type occ struct {
			pos  int
			word int32
		}
		var got, want []occ
		d.walk(text, func(pos int, word int32) { got = append(got, occ{pos, word}) })
		lower := asciiLower(text)
		for wi, w := range words {
			for i := 0; ; {
				j := strings.Index(lower[i:], w)
				if j < 0 {
					break
				}
				want = append(want, occ{i + j, int32(wi)})
				i += j + 1
			}
		}
		cmp := func(a, b occ) int { return a.pos*len(words) + int(a.word) - b.pos*len(words) - int(b.word) }
		slices.SortFunc(got, cmp)
		slices.SortFunc(want, cmp)
		if !slices.Equal(got, want) {
			t.Fatalf("%d occurrences found, %d there (a text of %d bytes)", len(got), len(want), len(text))
		}
	}
}
