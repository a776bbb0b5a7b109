package audit

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestKeywordDFA: the automaton finds every occurrence of every keyword,
// overlapping ones too, as a search for each keyword in turn does.
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
				b.WriteString(words[r.IntN(len(words))])
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
		d.walk([]byte(text), func(pos int, word int32) { got = append(got, occ{pos, word}) })
		for wi, w := range words {
			for i := 0; ; {
				j := strings.Index(text[i:], w)
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
