package audit

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestPathSetSameAsJoined: an allowlist's paths, matched alternative by
// alternative behind a test of the strings each needs, match the paths
// the joined regex matches, over random paths made of the pieces of
// gitleaks' global allowlist and their case variants.
func TestPathSetSameAsJoined(t *testing.T) {
	t.Parallel()
	pieces := []string{
		"/", "/", "a", "src/", "vendor/", "node_modules/", "go.mod", "go.sum", "go.work.sum", ".png", ".JPG", ".jpeg", ".woff2",
		".pdf", ".dll", "gradlew", "gradlew.bat", "gradle.lockfile", "mvnw.cmd", ".mvn/wrapper/MavenWrapperDownloader.java",
		"package-lock.json", "yarn.lock", "bower_components/", "jquery-ui.min.js", "swagger-ui.js.map", "javascript.json",
		"Pipfile.lock", "poetry.lock", "venv/lib/", "lib64/python3.10/", "python/3.11/lib/", "six-1.16.0.dist-info/",
		"vendor/bundle/", "x.gem", "verification-metadata.xml", "Database.refactorlog", ".git", "gitleaks.toml",
		"github.com/", "golang.org/x/", "k8s.io/", "modules.txt", "@octokit/auth-token/README.md", ".bb", ".inc",
		"\u212a", "\u017f", "é", "-", "_", ".", "1", "2.7",
	}
	rs, err := defaultRules()
	if err != nil {
		t.Fatal(err)
	}
	var sets []*pathSet
	for _, lists := range [][]*allowlist{rs.global} {
		for _, a := range lists {
			if a.hasPaths {
				sets = append(sets, a.paths)
			}
		}
	}
	for _, r := range rs.rules {
		for _, a := range r.allow {
			if a.hasPaths {
				sets = append(sets, a.paths)
			}
		}
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	n := 20000
	if testing.Short() || raceEnabled {
		n = 2000
		t.Logf("%d paths only (-short or -race)", n)
	}
	matched := 0
	for range n {
		var b strings.Builder
		for range 1 + r.IntN(6) {
			p := pieces[r.IntN(len(pieces))]
			switch r.IntN(4) {
			case 0:
				p = strings.ToUpper(p)
			case 1:
				p = strings.ToLower(p)
			}
			b.WriteString(p)
		}
		path := b.String()
		for _, ps := range sets {
			got, want := ps.MatchString(path), ps.all.MatchString(path)
			if got != want {
				t.Fatalf("%q against %s: %v, the joined regex says %v", path, ps, got, want)
			}
			if want {
				matched++
			}
		}
	}
	if matched < n/20 {
		t.Errorf("only %d paths matched: the comparison shows little", matched)
	}
}
