package main

import (
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/testenv"
)

// TestScan runs keyward scan over a build tree of mixed files: it names
// each planted value's secret, file and line, never the value, and exits 1;
// over the same tree without them it exits 0.
func TestScan(t *testing.T) {
	t.Parallel()
	dir, _ := fixture(t)
	dist := filepath.Join(dir, "dist")
	testenv.WriteFile(t, filepath.Join(dist, "index.html"), "<html>\n<body>hello</body>\n</html>\n")
	testenv.WriteFile(t, filepath.Join(dist, "assets", "app.js"), strings.Repeat("var x = 1;\n", 1000))
	testenv.WriteFile(t, filepath.Join(dist, "logo.png"), "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"+strings.Repeat("\x00\x01", 500))
	must(t, os.Symlink(filepath.Join(dir, "dev.yaml"), filepath.Join(dist, "secrets-link.yaml")))

	r := keyward(t, dir, nil, "scan", "-c", "keyward.yaml", "dist")
	if r.code != 0 {
		t.Fatalf("clean tree: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r.stdout != "" {
		t.Fatalf("clean tree: stdout %q", r.stdout)
	}

	// Plant values.
	appendFile(t, filepath.Join(dist, "assets", "app.js"), "const k = \"sk_live_4eC39HqLyjWDarjtT1zdp7dc\";\n")
	appendFile(t, filepath.Join(dist, "config.json"), `{"auth":"`+base64.StdEncoding.EncodeToString([]byte("hunter2-db-password"))+"\"}\n")
	appendFile(t, filepath.Join(dist, "logo.png"), hex.EncodeToString([]byte("partner-client-7f3a9c")))
	appendFile(t, filepath.Join(dist, "cert-copy.txt"), "MIIBfake\n")

	r = keyward(t, dir, nil, "scan", "-c", "keyward.yaml", "dist")
	assertClean(t, r)
	if r.code != 1 {
		t.Fatalf("planted tree: exit %d, stderr %q", r.code, r.stderr)
	}
	want := []string{
		"dist/assets/app.js:1001: STRIPE_KEY (raw, offset 11011)\n",
		"dist/cert-copy.txt:1: TLS_CERT (line, offset 0)\n",
		"dist/config.json:1: DB_PASSWORD (base64, offset 9)\n",
		"dist/logo.png: PARTNER_ID (hex, offset 1016)\n",
	}
	if r.stdout != strings.Join(want, "") {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, strings.Join(want, ""))
	}
	if !strings.Contains(r.stderr, "keyward: found 4 occurrences of 4 secrets in 4 files") {
		t.Errorf("stderr %q", r.stderr)
	}

	// Zero config: a reference in the environment is what is searched for.
	r = keyward(t, dir, []string{"KEY=file:dev.yaml#stripe.key"}, "scan", "--env-file-refs", "dist")
	if r.code != 1 || !strings.Contains(r.stdout, "env:KEY (raw") || strings.Contains(r.stdout, "DB_PASSWORD") {
		t.Errorf("zero config: exit %d, stdout %q", r.code, r.stdout)
	}

	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"scan", "-c", "keyward.yaml"}, 2},
		{[]string{"scan", "dist"}, 2},
		{[]string{"scan", "-c", "keyward.yaml", "--max-size", "lots", "dist"}, 2},
	} {
		r := keyward(t, dir, nil, c.args...)
		checkFailure(t, r, c.code, nil)
	}
	r = keyward(t, dir, nil, "scan", "-c", "keyward.yaml", "no-such-dir")
	if r.code != 1 || !strings.Contains(r.stderr, "keyward: 1 paths could not be scanned (first: no-such-dir: no such file") {
		t.Errorf("missing path: exit %d, stderr %q", r.code, r.stderr)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"0": -1, "100": 100, "64KiB": 64 << 10, "256MiB": 256 << 20, "1G": 1 << 30, "2gb": 2 << 30} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "lots", "-1", "10TB", "MiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}
