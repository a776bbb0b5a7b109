package scan

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/keyward/keyward/internal/mask"
)

var secrets = []mask.Secret{
	{Name: "DB_PASSWORD", Value: []byte("hunter2-db-password")},
	{Name: "STRIPE_KEY", Value: []byte("sk_live_4eC39HqLyjWDarjtT1zdp7dc")},
	{Name: "TLS_KEY", Value: []byte("-----BEGIN KEY-----\nMIIBsecretkeymaterial42\n-----END KEY-----\n")},
	{Name: "WEB", Value: []byte("p@ss w/rd+more&x")},
	{Name: "SHORT", Value: []byte("abc")},
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// filler returns n bytes of text without secrets, in lines.
func filler(r *rand.Rand, n int) []byte {
	const alpha = "abcdefghijklmnopqrstuvwxyz0123456789 .,;:-_="
	b := make([]byte, n)
	for i := range b {
		if r.IntN(60) == 0 {
			b[i] = '\n'
		} else {
			b[i] = alpha[r.IntN(len(alpha))]
		}
	}
	return b
}

type planted struct {
	path   string
	offset int64
	line   int
	secret string
	kind   string
}

// tree lays out a directory of mixed files; with plant it hides values in
// some of them and returns where.
func tree(t *testing.T, plant bool) (string, []planted) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 1))
	dir := t.TempDir()
	var want []planted
	put := func(rel string, parts ...any) {
		var b []byte
		for _, p := range parts {
			switch p := p.(type) {
			case []byte:
				b = append(b, p...)
			case planted:
				if !plant {
					continue
				}
				val := secretValue(p.secret)
				var form []byte
				switch p.kind {
				case mask.KindRaw:
					form = val
				case mask.KindBase64:
					form = []byte(base64.StdEncoding.EncodeToString(val))
				case mask.KindHex:
					form = []byte(hex.EncodeToString(val))
				case mask.KindURL:
					form = []byte(url.QueryEscape(string(val)))
				case mask.KindLine:
					form = []byte("MIIBsecretkeymaterial42")
				}
				p.path = filepath.Join(dir, rel)
				p.offset = int64(len(b))
				p.line = bytes.Count(b, []byte{'\n'}) + 1
				if bytes.IndexByte(b[:min(len(b), binarySniff)], 0) >= 0 {
					p.line = 0
				}
				want = append(want, p)
				b = append(b, form...)
			}
		}
		write(t, filepath.Join(dir, rel), b)
	}
	put("README.md", filler(r, 3000))
	put("dist/app.js", filler(r, 5000), planted{secret: "STRIPE_KEY", kind: mask.KindRaw}, filler(r, 100))
	put("dist/config.json", []byte(`{"auth": "`), planted{secret: "DB_PASSWORD", kind: mask.KindBase64}, []byte("\"}\n"))
	put("dist/sub/deep/trace.log", filler(r, 700), planted{secret: "DB_PASSWORD", kind: mask.KindHex}, filler(r, 10))
	put("dist/url.txt", []byte("https://x.example/?p="), planted{secret: "WEB", kind: mask.KindURL})
	put("dist/app.bin", []byte{0x7f, 'E', 'L', 'F', 0, 0, 1}, filler(r, 100), planted{secret: "STRIPE_KEY", kind: mask.KindRaw})
	put("dist/key-fragment.txt", filler(r, 50), planted{secret: "TLS_KEY", kind: mask.KindLine}, []byte("\n"))
	// Across the 1 MiB chunk boundary.
	put("dist/big.log", filler(r, chunkSize-7), planted{secret: "DB_PASSWORD", kind: mask.KindRaw}, filler(r, 5000))
	put("dist/empty", nil)
	put("dist/abc.txt", []byte("abc abc abc: the short secret is never searched for\n"))
	return dir, want
}

func secretValue(name string) []byte {
	for _, s := range secrets {
		if s.Name == name {
			return s.Value
		}
	}
	panic(name)
}

func TestScanFindsPlantedValues(t *testing.T) {
	t.Parallel()
	dir, want := tree(t, true)
	set := mask.NewSet(secrets, 0)
	rep, err := Scan(context.Background(), set, []string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Errors) > 0 {
		t.Fatalf("errors: %v", rep.Errors)
	}
	got := map[string]Hit{}
	for _, h := range rep.Hits {
		got[fmt.Sprintf("%s@%d", h.Path, h.Offset)] = h
	}
	for _, w := range want {
		key := fmt.Sprintf("%s@%d", w.path, w.offset)
		h, ok := got[key]
		if !ok {
			t.Errorf("%s (%s in %s form) not found", key, w.secret, w.kind)
			continue
		}
		if h.Secret != w.secret || h.Kind != w.kind || h.Line != w.line {
			t.Errorf("%s: got %s/%s line %d, want %s/%s line %d", key, h.Secret, h.Kind, h.Line, w.secret, w.kind, w.line)
		}
		delete(got, key)
	}
	for k, h := range got {
		t.Errorf("unexpected hit %s: %s (%s)", k, h.Secret, h.Kind)
	}
	if rep.Files != 10 {
		t.Errorf("scanned %d files, want 10", rep.Files)
	}
}

func TestScanCleanTree(t *testing.T) {
	t.Parallel()
	dir, _ := tree(t, false)
	rep, err := Scan(context.Background(), mask.NewSet(secrets, 0), []string{dir}, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Hits) != 0 || len(rep.Errors) != 0 {
		t.Fatalf("clean tree: %d hits, %d errors", len(rep.Hits), len(rep.Errors))
	}
	if rep.Files != 10 || rep.Bytes < chunkSize {
		t.Errorf("scanned %d files, %d bytes", rep.Files, rep.Bytes)
	}
}

// TestScanBoundaries: symlinks are not followed below a root, FIFOs and
// files over the size limit are skipped, a named root symlink is followed.
func TestScanBoundaries(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	write(t, filepath.Join(outside, "leak.txt"), []byte("hunter2-db-password\n"))
	dir := t.TempDir()
	write(t, filepath.Join(dir, "ok.txt"), []byte("nothing here\n"))
	write(t, filepath.Join(dir, "huge.txt"), append(bytes.Repeat([]byte("x"), 2000), "hunter2-db-password"...))
	must(t, os.Symlink(filepath.Join(outside, "leak.txt"), filepath.Join(dir, "link.txt")))
	must(t, os.Symlink(outside, filepath.Join(dir, "linkdir")))
	must(t, syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600))

	set := mask.NewSet(secrets, 0)
	rep, err := Scan(context.Background(), set, []string{dir}, Options{MaxSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Hits) != 0 {
		t.Fatalf("found %d hits: a symlink was followed out of the tree or the size limit ignored", len(rep.Hits))
	}
	reasons := map[string]string{}
	for _, s := range rep.Skipped {
		reasons[filepath.Base(s.Path)] = s.Reason
	}
	for name, want := range map[string]string{"link.txt": "symlink", "linkdir": "symlink", "fifo": "regular", "huge.txt": "size limit"} {
		if !strings.Contains(reasons[name], want) {
			t.Errorf("%s: skip reason %q, want %q", name, reasons[name], want)
		}
	}

	// A root named on the command line is followed even when a symlink.
	rep, err = Scan(context.Background(), set, []string{filepath.Join(dir, "link.txt"), filepath.Join(dir, "missing")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Hits) != 1 || rep.Hits[0].Secret != "DB_PASSWORD" {
		t.Errorf("named symlink root: %d hits", len(rep.Hits))
	}
	if len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0].Error(), "missing") {
		t.Errorf("missing root: errors %v", rep.Errors)
	}
}

// TestScanManyHits: one file full of a secret is reported with at most
// MaxHitsPerFile hits, the rest counted; overlapping forms of one
// occurrence count once.
func TestScanManyHits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	line := "key=hunter2-db-password b64=" + base64.StdEncoding.EncodeToString([]byte("hunter2-db-password")) + "\n"
	write(t, filepath.Join(dir, "log"), bytes.Repeat([]byte(line), 300))
	rep, err := Scan(context.Background(), mask.NewSet(secrets, 0), []string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Hits) != MaxHitsPerFile || rep.Dropped+len(rep.Hits) < 600 {
		t.Fatalf("%d hits listed, %d dropped; want %d listed and 600 in all", len(rep.Hits), rep.Dropped, MaxHitsPerFile)
	}
}

func TestScanCancelled(t *testing.T) {
	t.Parallel()
	dir, _ := tree(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Scan(ctx, mask.NewSet(secrets, 0), []string{dir}, Options{}); err == nil {
		t.Fatal("no error after cancellation")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkScan measures throughput over a tree of 64 files of 1 MiB of
// log-like text, with 500 secrets (the page cache holds the files).
func BenchmarkScan(b *testing.B) {
	r := rand.New(rand.NewPCG(2, 2))
	dir := b.TempDir()
	for i := range 64 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.log", i)), filler(r, 1<<20), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	var many []mask.Secret
	for i := range 500 {
		many = append(many, mask.Secret{Name: fmt.Sprintf("S%d", i), Value: []byte(fmt.Sprintf("tok_%032x", r.Uint64()))})
	}
	set := mask.NewSet(many, 0)
	b.SetBytes(64 << 20)
	b.ResetTimer()
	for range b.N {
		rep, err := Scan(context.Background(), set, []string{dir}, Options{})
		if err != nil || len(rep.Hits) != 0 {
			b.Fatal(err, len(rep.Hits))
		}
	}
}
