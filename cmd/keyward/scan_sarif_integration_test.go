//go:build integration

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/keyward/keyward/internal/testenv"
)

// TestScanSARIFValidates checks keyward's SARIF with an independent
// validator: the SARIF SDK's multitool (test/servers/sarif-multitool.sh),
// its SARIF and GitHub rule sets, against the 2.1.0 schema. Errors and
// warnings fail the test; notes (advice such as "add a code snippet",
// which would print the value) do not.
func TestScanSARIFValidates(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("skipped: the SARIF multitool package ships for linux/amd64 only")
	}
	exe, err := testenv.Binary("sarif-multitool.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := fixture(t)
	plantedTree(t, dir)
	r := keyward(t, dir, nil, "scan", "-c", "keyward.yaml", "--format", "sarif", "dist", "no-such-dir")
	if r.code != 1 {
		t.Fatalf("scan: exit %d, stderr %q", r.code, r.stderr)
	}
	in, out := filepath.Join(dir, "keyward.sarif"), filepath.Join(dir, "validation.sarif")
	testenv.WriteFile(t, in, r.stdout)
	cmd := exec.Command(exe, "validate", in, "--output", out, "--rule-kind", "Sarif;Gh", "--level", "Error;Warning;Note")
	cmd.Env = append(os.Environ(), "DOTNET_CLI_TELEMETRY_OPTOUT=1")
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sarif multitool validate: %v\n%s", err, o)
	}
	var val struct {
		Runs []struct {
			Results []struct {
				RuleID  string `json:"ruleId"`
				Level   string `json:"level"`
				Message struct {
					Text      string   `json:"text"`
					ID        string   `json:"id"`
					Arguments []string `json:"arguments"`
				} `json:"message"`
			} `json:"results"`
			Invocations []struct {
				Notifications []struct {
					Level   string `json:"level"`
					Message struct {
						Text string `json:"text"`
					} `json:"message"`
				} `json:"toolExecutionNotifications"`
			} `json:"invocations"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(testenv.ReadFile(t, out)), &val); err != nil {
		t.Fatalf("the validator's own log: %v", err)
	}
	// A binary built without version stamps or VCS information (this
	// test's) says "dev", which SARIF2005 warns is not numeric; releases
	// and go install builds have numeric versions.
	var ours struct {
		Runs []struct {
			Tool struct {
				Driver struct {
					Version string `json:"version"`
				} `json:"driver"`
			} `json:"tool"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &ours); err != nil || len(ours.Runs) != 1 {
		t.Fatalf("keyward's SARIF: %v", err)
	}
	devBuild := ours.Runs[0].Tool.Driver.Version == "dev"
	notes := 0
	for _, run := range val.Runs {
		for _, res := range run.Results {
			switch {
			case res.Level == "note":
				notes++
			case res.RuleID == "SARIF2005" && devBuild:
				t.Log("SARIF2005 (version not numeric) for this unstamped build's version \"dev\"")
			default: // "error", "warning", or "" (the default, warning)
				t.Errorf("validator %s %s: %s %s %q", res.Level, res.RuleID, res.Message.Text, res.Message.ID, res.Message.Arguments)
			}
		}
		for _, inv := range run.Invocations {
			for _, n := range inv.Notifications {
				if n.Level == "error" {
					t.Errorf("validator failed: %s", n.Message.Text)
				}
			}
		}
	}
	t.Logf("validated: %d notes", notes)
}
