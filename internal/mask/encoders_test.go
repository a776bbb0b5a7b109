package mask

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// hostileRunes are what hostile values are made of: every character that
// some encoder escapes (HTML-sensitive, quotes, backslash, URL-reserved,
// controls, DEL), non-ASCII from each UTF-8 length including one beyond
// the BMP, the line separators, and line breaks.
var hostileRunes = []rune("abcXYZ019 &<>\"'\\/%+=?#:;@$,!*()[]{}~`^|\t\n\r\b\f\x00\x01\x1f\x7fäöé€ßñ中文\u2028\u2029😀🔑\u00ad")

// hostileValues returns n random UTF-8 values of 6 to 40 characters, each
// with at least one character that needs escaping somewhere.
func hostileValues(r *rand.Rand, n int) [][]byte {
	out := make([][]byte, 0, n)
	for len(out) < n {
		var b strings.Builder
		for range 6 + r.IntN(35) {
			b.WriteRune(hostileRunes[r.IntN(len(hostileRunes))])
		}
		v := b.String()
		if strings.Trim(v, "abcXYZ019") == "" {
			continue
		}
		out = append(out, []byte(v))
	}
	return out
}

// goEncoders are the ways Go programs (and keyward itself) print a string.
// Each returns exactly what stands for v in the output.
var goEncoders = map[string]func(v []byte) []byte{
	"json.Marshal": func(v []byte) []byte { b, _ := json.Marshal(string(v)); return b[1 : len(b)-1] },
	"json.Encoder without HTML escaping": func(v []byte) []byte {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(string(v))
		return b.Bytes()[1 : b.Len()-2]
	},
	"slog JSON":       func(v []byte) []byte { return slogValue(v, true, "", "") },
	"slog text":       func(v []byte) []byte { return slogValue(v, false, "", "") },
	"slog JSON of %q": func(v []byte) []byte { return slogValue([]byte(strconv.Quote(string(v))), true, `\"`, `\"`) },
	"slog text of JSON": func(v []byte) []byte {
		j, _ := json.Marshal(string(v))
		return slogValue(j, false, `\"`, `\"`)
	},
	"%q":                   func(v []byte) []byte { q := fmt.Appendf(nil, "%q", v); return q[1 : len(q)-1] },
	"strconv.QuoteToASCII": func(v []byte) []byte { q := strconv.QuoteToASCII(string(v)); return []byte(q[1 : len(q)-1]) },
	"url.QueryEscape":      func(v []byte) []byte { return []byte(url.QueryEscape(string(v))) },
	"url.PathEscape":       func(v []byte) []byte { return []byte(url.PathEscape(string(v))) },
	"url.Values":           func(v []byte) []byte { return []byte(strings.TrimPrefix(url.Values{"k": {string(v)}}.Encode(), "k=")) },
	"url.URL path":         func(v []byte) []byte { return []byte((&url.URL{Path: "/" + string(v)}).EscapedPath()[1:]) },
	"html.EscapeString":    func(v []byte) []byte { return []byte(html.EscapeString(string(v))) },
	"base64":               func(v []byte) []byte { return []byte(base64.StdEncoding.EncodeToString(v)) },
	"hex":                  func(v []byte) []byte { return []byte(hex.EncodeToString(v)) },
	"%20 upper-case":       func(v []byte) []byte { return []byte(strings.ReplaceAll(url.QueryEscape(string(v)), "+", "%20")) },
	"%20 lower-case": func(v []byte) []byte {
		return lowerPercentHex(strings.ReplaceAll(url.QueryEscape(string(v)), "+", "%20"))
	},
	"raw": func(v []byte) []byte { return bytes.TrimRight(v, "\r\n") },
	"CRLF lines": func(v []byte) []byte {
		return bytes.TrimRight(bytes.ReplaceAll(v, []byte("\n"), []byte("\r\n")), "\r\n")
	},
}

// slogValue returns what slog writes for the attribute value v, with the
// escaped quotes pre and post around it taken off.
func slogValue(v []byte, asJSON bool, pre, post string) []byte {
	var b bytes.Buffer
	opts := &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key != "v" {
			return slog.Attr{}
		}
		return a
	}}
	var h slog.Handler = slog.NewTextHandler(&b, opts)
	if asJSON {
		h = slog.NewJSONHandler(&b, opts)
	}
	slog.New(h).Info("", "v", string(v))
	s := strings.TrimSuffix(b.String(), "\n")
	if asJSON {
		s = strings.TrimSuffix(strings.TrimPrefix(s, `{"v":"`), `"}`)
	} else {
		s = strings.TrimPrefix(s, "v=")
		if strings.HasPrefix(s, `"`) {
			s = s[1 : len(s)-1]
		}
	}
	return []byte(strings.TrimSuffix(strings.TrimPrefix(s, pre), post))
}

// leaks names each value that comes through m whole or in one of its
// encodings (encoded[encoder][i] is value i as encoder writes it), written
// in random pieces between filler; the idle timer never fires.
func leaks(t *testing.T, r *rand.Rand, values [][]byte, encoded map[string][][]byte) []string {
	t.Helper()
	var secrets []Secret
	for i, v := range values {
		secrets = append(secrets, Secret{Name: fmt.Sprintf("V%d", i), Value: v})
	}
	m := New(NewSet(secrets, 0), Options{AfterFunc: (&fakeClock{}).AfterFunc})
	var found []string
	for enc, forms := range encoded {
		for i, form := range forms {
			var out bytes.Buffer
			in := append(append(randBytes(r, fillerAlphabet, r.IntN(30)), form...), randBytes(r, fillerAlphabet, r.IntN(30))...)
			writeChunked(t, r, m.Writer(&out), in)
			if bytes.Contains(out.Bytes(), bytes.TrimRight(values[i], "\r\n")) || bytes.Contains(out.Bytes(), form) {
				found = append(found, fmt.Sprintf("%s: leaked value V%d", enc, i))
			}
		}
	}
	return found
}

// TestHostileValuesThroughEncoders: 150 random values made of characters
// that encoders escape go through every encoder Go offers (and keyward's
// own logger uses) and through the mask: none comes out, in any form.
func TestHostileValuesThroughEncoders(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(12, 5))
	values := hostileValues(r, 150)
	encoded := map[string][][]byte{}
	for name, enc := range goEncoders {
		for _, v := range values {
			encoded[name] = append(encoded[name], enc(v))
		}
	}
	for _, l := range leaks(t, r, values, encoded) {
		t.Error(l)
	}
}

// runtimeScripts print, for each value read as a base64 line on stdin, one
// line: a JSON array of the value as each of that runtime's encoders
// writes it.
var runtimeScripts = map[string][]string{
	"python3": {"python3", "-c", `
import sys, json, base64, html, urllib.parse as u
for line in sys.stdin:
    v = base64.b64decode(line).decode()
    print(json.dumps([json.dumps(v)[1:-1], json.dumps(v, ensure_ascii=False)[1:-1],
        u.quote(v, safe=''), u.quote(v), u.quote_plus(v, safe=''), u.quote_plus(v), u.urlencode({"k": v})[2:],
        html.escape(v), html.escape(v, quote=False), repr(v)[1:-1]]))
`},
	"node": {"node", "-e", `
const rl = require('readline').createInterface({input: process.stdin});
rl.on('line', l => {
  const v = Buffer.from(l, 'base64').toString('utf8');
  console.log(JSON.stringify([JSON.stringify(v).slice(1, -1), encodeURIComponent(v), encodeURI(v),
    new URLSearchParams({k: v}).toString().slice(2), Buffer.from(v).toString('base64'),
    Buffer.from(v).toString('base64url'), Buffer.from(v).toString('hex')]));
});
`},
}

// TestHostileValuesThroughRuntimes is TestHostileValuesThroughEncoders
// with the encoders of Python and JavaScript themselves (json.dumps,
// quote, quote_plus, urlencode, JSON.stringify, encodeURIComponent,
// encodeURI, URLSearchParams…), run in the real interpreters.
func TestHostileValuesThroughRuntimes(t *testing.T) {
	t.Parallel()
	for name, argv := range runtimeScripts {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := exec.LookPath(argv[0]); err != nil {
				t.Skipf("%s is not installed, so its encoders cannot be checked", argv[0])
			}
			r := rand.New(rand.NewPCG(21, uint64(len(name))))
			values := hostileValues(r, 150)
			var in bytes.Buffer
			for _, v := range values {
				in.WriteString(base64.StdEncoding.EncodeToString(v) + "\n")
			}
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Stdin = &in
			outb, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			lines := strings.Split(strings.TrimSuffix(string(outb), "\n"), "\n")
			if len(lines) != len(values) {
				t.Fatalf("%s printed %d lines for %d values", name, len(lines), len(values))
			}
			encoded := map[string][][]byte{}
			for _, line := range lines {
				var forms []string
				if err := json.Unmarshal([]byte(line), &forms); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				for j, f := range forms {
					k := fmt.Sprintf("%s encoder %d", name, j)
					encoded[k] = append(encoded[k], []byte(f))
				}
			}
			for _, l := range leaks(t, r, values, encoded) {
				t.Error(l)
			}
		})
	}
}

// TestJSONEscapeMatchesGo: the JSON styles that describe Go's encoders
// agree with Go's encoders on every hostile value (and on bytes that are
// not UTF-8).
func TestJSONEscapeMatchesGo(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 3))
	values := append(hostileValues(r, 300), []byte("bad \xff\xfe utf-8 \xe2\x82"))
	for _, v := range values {
		j, _ := json.Marshal(string(v))
		if got := jsonEscape(v, jsonGo); !bytes.Equal(got, j[1:len(j)-1]) {
			t.Fatalf("json.Marshal style: got %q, want %q", got, j)
		}
		var b bytes.Buffer
		slog.New(slog.NewJSONHandler(&b, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey {
				return slog.Attr{}
			}
			return a
		}})).Info("", "v", string(v))
		want := strings.TrimSuffix(strings.TrimPrefix(b.String(), `{"v":"`), "\"}\n")
		if got := jsonEscape(v, jsonSlog); string(got) != want {
			t.Fatalf("slog style: got %q, want %q", got, want)
		}
	}
}

// TestPlainValuesNeedNoEscaping: for a value of only the bytes plain
// accepts, every escaping form equals the value (so Forms may skip them).
func TestPlainValuesNeedNoEscaping(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 1))
	for range 200 {
		v := randBytes(r, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._", 6+r.IntN(30))
		if !plain(v) {
			t.Fatal("plain refuses a plain value")
		}
		var all [][]byte
		all = append(all, urlForms(v)...)
		all = append(all, jsonForms(v)...)
		all = append(all, htmlForms(v)...)
		all = append(all, goQuoted(v, false), goQuoted(v, true), pyRepr(v, true), pyRepr(v, false))
		for _, f := range all {
			if !bytes.Equal(f, v) {
				t.Fatalf("an escaping form of a plain value differs from it: %q", f)
			}
		}
	}
	if plain([]byte("a~b")) || plain([]byte("a b")) || plain([]byte("ä")) {
		t.Fatal("plain accepts a byte some encoder escapes")
	}
}
