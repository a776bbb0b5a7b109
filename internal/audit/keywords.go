package audit

import "sync"

// keywordDFA finds every occurrence of a set of keywords (Aho-Corasick as
// a full automaton over classes of bytes): one table lookup a byte. An
// upper-case ASCII letter is in the class of its lower case: keywords
// are lower-case, and found in text of either case.
type keywordDFA struct {
	class  [256]uint8 // byte -> its class; 0 for bytes no keyword holds
	n      int        // classes
	next   []uint16   // next[state*n+class]
	ends   [][]int32  // ends[state]: the keywords that end there
	length []int      // length[word]
}

// newKeywordDFA builds the automaton of words (lower case); nil when it
// would need more than 65536 states or 256 classes, or a word holds an
// upper-case ASCII letter.
func newKeywordDFA(words []string) *keywordDFA {
	d := &keywordDFA{n: 1}
	for _, w := range words {
		for i := range len(w) {
			c := w[i]
			if 'A' <= c && c <= 'Z' {
				return nil
			}
			if d.class[c] == 0 {
				if d.n == 256 {
					return nil
				}
				d.class[c] = uint8(d.n)
				if 'a' <= c && c <= 'z' {
					d.class[c-'a'+'A'] = uint8(d.n)
				}
				d.n++
			}
		}
		d.length = append(d.length, len(w))
	}
	// The trie: child[state*n+class], 0 for none (state 0 is the root,
	// never a child).
	child := make([]int, d.n)
	own := [][]int32{nil}
	for wi, w := range words {
		s := 0
		for i := range len(w) {
			c := int(d.class[w[i]])
			if child[s*d.n+c] == 0 {
				child[s*d.n+c] = len(own)
				own = append(own, nil)
				child = append(child, make([]int, d.n)...)
			}
			s = child[s*d.n+c]
		}
		own[s] = append(own[s], int32(wi))
	}
	states := len(own)
	if states > 1<<16 {
		return nil
	}
	d.next = make([]uint16, states*d.n)
	d.ends = make([][]int32, states)
	fail := make([]int, states)
	queue := []int{0}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		d.ends[s] = append(append([]int32(nil), own[s]...), d.ends[fail[s]]...)
		if s == 0 {
			d.ends[s] = own[0]
		}
		for c := range d.n {
			t := child[s*d.n+c]
			switch {
			case t != 0:
				if s != 0 {
					fail[t] = int(d.next[fail[s]*d.n+c])
				}
				d.next[s*d.n+c] = uint16(t)
				queue = append(queue, t)
			case s != 0:
				d.next[s*d.n+c] = d.next[fail[s]*d.n+c]
			}
		}
	}
	for s := range d.ends {
		if len(d.ends[s]) == 0 {
			d.ends[s] = nil
		}
	}
	return d
}

// walk calls fn with the start of every occurrence in text of a keyword
// and the keyword's index.
func (d *keywordDFA) walk(text string, fn func(start int, word int32)) {
	s := 0
	for i := range len(text) {
		s = int(d.next[s*d.n+int(d.class[text[i]])])
		if ends := d.ends[s]; ends != nil {
			for _, w := range ends {
				fn(i+1-d.length[w], w)
			}
		}
	}
}

// holds reports whether text holds one of the keywords.
func (d *keywordDFA) holds(text string) bool {
	s := 0
	for i := range len(text) {
		if s = int(d.next[s*d.n+int(d.class[text[i]])]); d.ends[s] != nil {
			return true
		}
	}
	return false
}

// lazyKeywords is a keywordDFA built on first use: an allowlist's
// stopwords are looked for only in what a rule found.
type lazyKeywords struct {
	words []string
	once  sync.Once
	dfa   *keywordDFA
}

// newLazyKeywords returns the automaton of words to be, nil when it
// would be too large (see newKeywordDFA).
func newLazyKeywords(words []string) *lazyKeywords {
	var bytes [256]bool
	classes, states := 1, 1
	for _, w := range words {
		states += len(w)
		for i := range len(w) {
			if c := w[i]; 'A' <= c && c <= 'Z' {
				return nil
			} else if !bytes[c] {
				bytes[c] = true
				classes++
			}
		}
	}
	if classes > 256 || states > 1<<16 {
		return nil
	}
	return &lazyKeywords{words: words}
}

func (l *lazyKeywords) get() *keywordDFA {
	l.once.Do(func() { l.dfa = newKeywordDFA(l.words) })
	return l.dfa
}
