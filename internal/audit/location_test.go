package audit

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// locationWalk is gitleaks' location (detect/location.go) as it is
// written, a walk over every newline: what location must give.
func locationWalk(newlines []int, raw string, mi []int) loc {
	var (
		l        loc
		prev     int
		set      bool
		lastLine int
	)
	start, end := mi[0], mi[1]
	if len(newlines) == 0 {
		newlines = []int{len(raw)}
	}
	for n, nl := range newlines {
		lastLine = n
		if prev <= start && start < nl {
			set = true
			l.startLine, l.endLine = n, n
			l.startLineIndex, l.endLineIndex = prev, nl
		}
		if prev < end && end <= nl {
			l.endLine = n
			l.endLineIndex = nl
		}
		prev = nl
	}
	if !set {
		l.startLine, l.endLine = lastLine+1, lastLine+1
		i := 0
		for end+i < len(raw) && raw[end+i] != '\n' && raw[end+i] != '\r' {
			i++
		}
		l.endLineIndex = end + i
	}
	return l
}

// TestLocation: location finds by binary search what gitleaks' walk over
// every newline finds, for matches anywhere in texts of short lines,
// empty lines and no newline at all.
func TestLocation(t *testing.T) {
	t.Parallel()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 3))
	for range 2000 {
		var b strings.Builder
		for range r.IntN(30) {
			b.WriteString([]string{"\n", "\n\n", "a", "bc", "\r\n", "def"}[r.IntN(6)])
		}
		raw := b.String()
		nls := newlineIndex(raw)
		start := r.IntN(len(raw) + 1)
		end := start + r.IntN(len(raw)-start+1)
		if got, want := location(nls, raw, []int{start, end}), locationWalk(nls, raw, []int{start, end}); got != want {
			t.Fatalf("location(%q, %d, %d) = %+v, want %+v", raw, start, end, got, want)
		}
	}
}
