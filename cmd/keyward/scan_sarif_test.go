package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/testenv"
)

// plantedTree adds, below dir/dist, files with fixture values raw, encoded
// and in a binary file.
func plantedTree(t *testing.T, dir string) {
	t.Helper()
	dist := filepath.Join(dir, "dist")
	testenv.WriteFile(t, filepath.Join(dist, "index.html"), "<html>\n<body>hello</body>\n</html>\n")
	testenv.WriteFile(t, filepath.Join(dist, "assets", "app.js"), strings.Repeat("var x = 1;\n", 10)+"const k = \""+fixtureValues[1]+"\";\n")
	testenv.WriteFile(t, filepath.Join(dist, "config.json"), `{"auth":"`+base64.StdEncoding.EncodeToString([]byte(fixtureValues[0]))+"\"}\n")
	testenv.WriteFile(t, filepath.Join(dist, "logo.png"), "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"+strings.Repeat("\x00\x01", 50)+hex.EncodeToString([]byte(fixtureValues[2])))
}

// sarifResults is what a SARIF consumer reads of each result.
type sarifResults struct {
	Version string `json:"version"`
	Runs    []struct {
		Tool struct {
			Driver struct {
				Name    string `json:"name"`
				Version string `json:"version"`
				Rules   []struct {
					ID string `json:"id"`
				} `json:"rules"`
			} `json:"driver"`
		} `json:"tool"`
		Results []struct {
			RuleID    string `json:"ruleId"`
			Locations []struct {
				PhysicalLocation struct {
					ArtifactLocation struct {
						URI string `json:"uri"`
					} `json:"artifactLocation"`
					Region struct {
						StartLine  int   `json:"startLine"`
						ByteOffset int64 `json:"byteOffset"`
					} `json:"region"`
				} `json:"physicalLocation"`
			} `json:"locations"`
		} `json:"results"`
	} `json:"runs"`
}

// TestScanSARIF checks scan --format sarif against the text report of the
// same tree: the same occurrences at the same places, the same exit
// status, and no value.
func TestScanSARIF(t *testing.T) {
	t.Parallel()
	dir, _ := fixture(t)
	plantedTree(t, dir)
	text := keyward(t, dir, nil, "scan", "-c", "keyward.yaml", "dist")
	sarif := keyward(t, dir, nil, "scan", "-c", "keyward.yaml", "--format", "sarif", "dist")
	if text.code != 1 || sarif.code != 1 {
		t.Fatalf("exit %d (text) and %d (sarif), want 1 for both; stderr %q", text.code, sarif.code, sarif.stderr)
	}
	assertNoValue(t, "scan --format sarif stdout", sarif.stdout, fixtureValues)
	assertNoValue(t, "scan --format sarif stderr", sarif.stderr, fixtureValues)
	var log sarifResults
	if err := json.Unmarshal([]byte(sarif.stdout), &log); err != nil {
		t.Fatalf("scan --format sarif printed no JSON: %v", err)
	}
	if log.Version != "2.1.0" || len(log.Runs) != 1 || log.Runs[0].Tool.Driver.Name != "keyward" || log.Runs[0].Tool.Driver.Version == "" {
		t.Fatalf("SARIF log header: version %q, %d runs, driver %+v", log.Version, len(log.Runs), log.Runs)
	}
	// Each text line ("PATH:LINE: SECRET (KIND, offset N)" or without the
	// line) must be a result, and nothing else.
	var fromText, fromSARIF []string
	for _, l := range strings.Split(strings.TrimSpace(text.stdout), "\n") {
		loc, rest, _ := strings.Cut(l, ": ")
		secret, _, _ := strings.Cut(rest, " (")
		_, off, _ := strings.Cut(rest, "offset ")
		path, line, ok := strings.Cut(loc, ":")
		if !ok {
			line = "0"
		}
		fromText = append(fromText, fmt.Sprintf("%s %s %s %s", path, line, secret, strings.TrimSuffix(off, ")")))
	}
	rules := map[string]bool{}
	for _, r := range log.Runs[0].Tool.Driver.Rules {
		rules[r.ID] = true
	}
	for _, r := range log.Runs[0].Results {
		if !rules[r.RuleID] {
			t.Errorf("result with ruleId %q, which no rule has", r.RuleID)
		}
		pl := r.Locations[0].PhysicalLocation
		fromSARIF = append(fromSARIF, fmt.Sprintf("%s %d %s %d", pl.ArtifactLocation.URI, pl.Region.StartLine, strings.TrimPrefix(r.RuleID, "secret:"), pl.Region.ByteOffset))
	}
	slices.Sort(fromText)
	slices.Sort(fromSARIF)
	if len(fromText) != 3 || !slices.Equal(fromText, fromSARIF) {
		t.Errorf("SARIF results:\n%s\nwant the text report's 3 hits:\n%s", strings.Join(fromSARIF, "\n"), strings.Join(fromText, "\n"))
	}

	clean := t.TempDir()
	testenv.WriteFile(t, filepath.Join(clean, "a.txt"), "nothing\n")
	r := keyward(t, dir, nil, "scan", "-c", "keyward.yaml", "--format", "sarif", clean)
	if r.code != 0 || !strings.Contains(r.stdout, `"results": []`) {
		t.Errorf("clean tree: exit %d, stdout %q", r.code, r.stdout)
	}
	r = keyward(t, dir, nil, "scan", "-c", "keyward.yaml", "--format", "yaml", "dist")
	checkFailure(t, r, exitUsage, []string{`invalid --format "yaml"`})
}
