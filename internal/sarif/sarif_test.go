package sarif

import (
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileURI(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]string{
		"dist/app.js":          "dist/app.js",
		"../out/a b.txt":       "../out/a%20b.txt",
		"/srv/build/x%y.log":   "file:///srv/build/x%25y.log",
		"c:colon/first.txt":    "./c:colon/first.txt",
		"dist/#not-a-fragment": "dist/%23not-a-fragment",
	} {
		got := FileURI(filepath.FromSlash(path))
		if got != want {
			t.Errorf("FileURI(%q) = %q, want %q", path, got, want)
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Errorf("FileURI(%q) = %q does not parse: %v", path, got, err)
			continue
		}
		if back := strings.TrimPrefix(u.Path, "./"); back != strings.TrimPrefix(path, "./") {
			t.Errorf("FileURI(%q) = %q reads back as the path %q", path, got, back)
		}
	}
}
