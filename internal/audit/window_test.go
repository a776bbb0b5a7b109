package audit

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// pieces are what windowTexts builds texts of: the rules' keywords in
// any case, the punctuation of assignments and quotes, runs of value
// characters, runes beyond ASCII and broken UTF-8.
var windowPieces = []string{
	" ", " ", "\t", "\n", "\n", "\r\n", "=", "==", ":", ":=", "::=", "=>", "?=", "||", "|", ",", ";", ">", "'", "\"", "`",
	".", "-", "_", "/", "+", "%", "@", "://", "\\n", "\\r", "{{", "}}", "${", "}", "(", ")", "[", "]", "#", "$",
	"kind: Secret\n", "data:\n", "BEGIN", "-----", " PRIVATE KEY-----\n", "curl ", " -H ", " -u ", "Authorization: Bearer ",
	"é", "—", "日本", "\xff", "\xe2\x82", "\u00e5",
}

// windowText returns a random text dense in a few of the rules'
// keywords (few, so that running the rules they enable over the whole
// text stays cheap), holding a rune that folds to ASCII now and then
// when withFolds (such text is searched whole, so it shows less of the
// windows).
func windowText(r *rand.Rand, all []string, withFolds bool) string {
	words := make([]string, 6)
	for i := range words {
		words[i] = all[r.IntN(len(all))]
	}
	g := gen{r}
	hex := "0123456789abcdef"
	// shapes are secrets of the rules that run around strings or runs
	// of their own (see ownWindow, runWindow) rather than keywords.
	shapes := []func() string{
		func() string { return g.s(digits, 15+r.IntN(2)) + "|" + g.s(lower+digits, 27+r.IntN(14)) },
		func() string { return "sgp_" + g.s(hex, 40) },
		func() string { return g.s(hex, 40) },
		func() string { return "sgp_" + g.s(hex, 16) + "_" + g.s(hex, 40) },
		func() string { return "pat" + g.s(alnum, 14) + "." + g.s(hex, 64) },
		func() string { return "xoxe.xoxb-1-" + g.s(upper+digits, 163+r.IntN(4)) },
		func() string { return "https://" + g.s(hex, 8) + ":" + g.s(hex, 8) + "@gems.contribsys.com/" },
		func() string { return "hooks.slack.com/services/" + g.s(alnum, 43+r.IntN(14)) },
	}
	var b strings.Builder
	n := 20 + r.IntN(200)
	for range n {
		if r.IntN(20) == 0 {
			b.WriteString(shapes[r.IntN(len(shapes))]())
		}
		switch k := r.IntN(10); {
		case k < 3:
			w := words[r.IntN(len(words))]
			switch r.IntN(3) {
			case 0:
				w = strings.ToUpper(w)
			case 1:
				if w != "" {
					w = strings.ToUpper(w[:1]) + w[1:]
				}
			}
			b.WriteString(w)
		case k < 7:
			b.WriteString(windowPieces[r.IntN(len(windowPieces))])
		default:
			sets := []string{alnum, alnum + "+/", "0123456789abcdef", digits, alnum + "_-.", lower}
			set := sets[r.IntN(len(sets))]
			m := r.IntN(8)
			if r.IntN(3) == 0 {
				m = 8 + r.IntN(200)
			}
			for range m {
				b.WriteByte(set[r.IntN(len(set))])
			}
		}
		if withFolds && r.IntN(200) == 0 {
			b.WriteString(foldsToASCII[r.IntN(len(foldsToASCII))])
		}
	}
	return b.String()
}

// keywords returns every rule's keywords, and the prefixes of a few
// rules' secrets (which are not always keywords).
func (rs *ruleSet) allKeywords() []string {
	var out []string
	for w := range rs.byWord {
		out = append(out, w)
	}
	slices.Sort(out)
	return append(out, "ghp_", "sk_live_", "AKIA", "xoxb-1234567890-", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIx", "sgp_", "pat",
		"hooks.slack.com/services/", "postgres://", "https://", "ops_eyJ", "ZXlK", "xoxe.xoxp-1-", "@gems.contribsys.com/", "0123456789abcdef01234567|")
}

func hitKeys(hs []ruleHit) []string {
	var out []string
	for _, h := range hs {
		out = append(out, fmt.Sprintf("%s:%d:%d:%d:%x", h.rule.id, h.line, h.offset, h.length, h.secret))
	}
	slices.Sort(out)
	return out
}

// checkWindowed fails when the windowed search finds other than running
// every rule over the whole text.
func checkWindowed(t *testing.T, rs *ruleSet, path, text string) int {
	t.Helper()
	got := hitKeys(rs.detect(path, text, 1))
	want := hitKeys(rs.detectIn(path, text, 1, false))
	if !slices.Equal(got, want) {
		t.Errorf("%s: windowed and whole searches differ: %s (a text of %d bytes; the seed is logged)", path, differ(got, want), len(text))
	}
	return len(want)
}

// TestWindowedSameAsWhole: over random texts dense in keywords, the
// rules run around their keywords find exactly what they find run over
// the whole text: the same matches, lines and secrets.
func TestWindowedSameAsWhole(t *testing.T) {
	t.Parallel()
	rs, err := defaultRules()
	if err != nil {
		t.Fatal(err)
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	words := rs.allKeywords()
	n := 250
	if testing.Short() || raceEnabled {
		n = 30
		t.Logf("%d texts only (-short or -race)", n)
	}
	found := 0
	for i := range n {
		path := []string{"a.txt", "config/app.yaml", "x.go", "settings.gradle"}[i%4]
		found += checkWindowed(t, rs, path, windowText(r, words, i%10 == 0))
		if t.Failed() {
			return
		}
	}
	if found < n/10 {
		t.Errorf("only %d findings in %d texts: the comparison shows little", found, n)
	}
	t.Logf("%d texts, %d findings", n, found)
}

// FuzzWindowedSameAsWhole is TestWindowedSameAsWhole for go test -fuzz.
func FuzzWindowedSameAsWhole(f *testing.F) {
	rs, err := defaultRules()
	if err != nil {
		f.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	words := rs.allKeywords()
	for range 20 {
		f.Add(windowText(r, words, false))
	}
	f.Add("api_key = \"" + strings.Repeat("aB3", 10) + "\"\npassword:\n\n  'x9Yq2LmN0pQrStUv'\n")
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 8<<10 {
			t.Skip("longer than 8 KiB: the search over the whole text, with coverage counters, would take minutes")
		}
		checkWindowed(t, rs, "f.yaml", text)
	})
}

// TestFoldsToASCII: foldsToASCII holds every rune beyond ASCII that a
// case-insensitive regex matches for an ASCII letter or that
// strings.ToLower turns into ASCII.
func TestFoldsToASCII(t *testing.T) {
	t.Parallel()
	var want []string
	for r := rune(0x80); r <= unicode.MaxRune; r++ {
		folds := unicode.ToLower(r) < 0x80
		for f := unicode.SimpleFold(r); f != r && !folds; f = unicode.SimpleFold(f) {
			folds = f < 0x80
		}
		if folds {
			want = append(want, string(r))
			if !foldsToASCIIRune(r) {
				t.Errorf("foldsToASCIIRune(%U) is false", r)
			}
		}
	}
	if !slices.Equal(foldsToASCII, want) {
		t.Errorf("foldsToASCII = %q, want %q", foldsToASCII, want)
	}
}
