package audit

import (
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zricethezav/gitleaks/v8/detect"
	"github.com/zricethezav/gitleaks/v8/sources"
)

// benchTexts are a copy of this repository's Go sources (dense in the
// rules' keywords) and a log of random base64 lines.
func benchTexts(b *testing.B) map[string]string {
	var src strings.Builder
	_ = filepath.WalkDir(filepath.Join("..", ".."), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() && (d.Name() == ".git" || d.Name() == ".cache") {
			return filepath.SkipDir
		}
		if strings.HasSuffix(p, ".go") && src.Len() < 1<<20 {
			c, _ := os.ReadFile(p)
			src.Write(c)
		}
		return nil
	})
	raw := make([]byte, 768<<10)
	_, _ = rand.Read(raw)
	enc := base64.StdEncoding.EncodeToString(raw)
	var log strings.Builder
	for len(enc) > 120 {
		log.WriteString(enc[:120] + "\n")
		enc = enc[120:]
	}
	return map[string]string{"src": src.String(), "log": log.String()}
}

// BenchmarkRules measures the rules' throughput on one core, by kind of
// text, in chunks as Audit reads them.
func BenchmarkRules(b *testing.B) {
	rs, err := defaultRules()
	if err != nil {
		b.Fatal(err)
	}
	for name, text := range benchTexts(b) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				for off := 0; off < len(text); off += chunkSize {
					rs.detect("bench/"+name+".txt", text[off:min(off+chunkSize, len(text))], 1)
				}
			}
		})
	}
}

// BenchmarkGitleaks measures gitleaks' own detector (its library, with
// its default rules) on the texts of BenchmarkRules, for comparison.
func BenchmarkGitleaks(b *testing.B) {
	d, err := detect.NewDetectorDefaultConfig()
	if err != nil {
		b.Fatal(err)
	}
	for name, text := range benchTexts(b) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				for off := 0; off < len(text); off += chunkSize {
					//lint:ignore SA1019 gitleaks' Detect takes no other type before v9
					d.Detect(detect.Fragment(sources.Fragment{Raw: text[off:min(off+chunkSize, len(text))], FilePath: "bench/" + name + ".txt", StartLine: 1}))
				}
			}
		})
	}
}
