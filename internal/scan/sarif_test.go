package scan

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/mask"
)

// sarifDoc is the part of a SARIF 2.1.0 log the checks read, decoded
// without the writer's types so that a field the writer misnames is
// missing here.
type sarifDoc struct {
	Schema  *string `json:"$schema"`
	Version *string `json:"version"`
	Runs    []struct {
		Tool *struct {
			Driver *struct {
				Name  *string `json:"name"`
				Rules []struct {
					ID               *string `json:"id"`
					ShortDescription *struct {
						Text *string `json:"text"`
					} `json:"shortDescription"`
					DefaultConfiguration struct {
						Level string `json:"level"`
					} `json:"defaultConfiguration"`
				} `json:"rules"`
			} `json:"driver"`
		} `json:"tool"`
		Results []struct {
			RuleID    *string `json:"ruleId"`
			RuleIndex *int    `json:"ruleIndex"`
			Kind      string  `json:"kind"`
			Level     string  `json:"level"`
			Message   *struct {
				Text *string `json:"text"`
			} `json:"message"`
			Locations []struct {
				PhysicalLocation *struct {
					ArtifactLocation *struct {
						URI *string `json:"uri"`
					} `json:"artifactLocation"`
					Region *struct {
						StartLine  *int   `json:"startLine"`
						ByteOffset *int64 `json:"byteOffset"`
						ByteLength *int   `json:"byteLength"`
					} `json:"region"`
				} `json:"physicalLocation"`
			} `json:"locations"`
			PartialFingerprints map[string]string `json:"partialFingerprints"`
		} `json:"results"`
		Invocations []struct {
			ExecutionSuccessful *bool `json:"executionSuccessful"`
			Notifications       []struct {
				Level   string `json:"level"`
				Message *struct {
					Text *string `json:"text"`
				} `json:"message"`
			} `json:"toolExecutionNotifications"`
		} `json:"invocations"`
	} `json:"runs"`
}

// A located hit, as read back from a SARIF result.
type sarifHit struct {
	uri, rule string
	line      int
	offset    int64
	length    int
}

// parseSARIF decodes out and checks what SARIF 2.1.0 requires of every
// object present (§3.13 sarifLog version and runs, §3.14 run tool, §3.18
// tool driver, §3.19 driver name, §3.49 rule id, §3.27 result message, a
// ruleId that names a rule and a ruleIndex that points at it, levels and
// kinds from the enumerations, URIs that parse, regions inside the file).
func parseSARIF(t *testing.T, out []byte) (sarifDoc, []sarifHit) {
	t.Helper()
	var doc sarifDoc
	dec := json.NewDecoder(bytes.NewReader(out))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("SARIF output is not JSON: %v", err)
	}
	if doc.Version == nil || *doc.Version != "2.1.0" {
		t.Fatalf("version = %v, want 2.1.0", doc.Version)
	}
	if doc.Schema == nil || !strings.Contains(*doc.Schema, "sarif-2.1.0") {
		t.Errorf("$schema = %v, want the 2.1.0 schema", doc.Schema)
	}
	if len(doc.Runs) != 1 {
		t.Fatalf("%d runs, want 1", len(doc.Runs))
	}
	run := doc.Runs[0]
	if run.Tool == nil || run.Tool.Driver == nil || run.Tool.Driver.Name == nil || *run.Tool.Driver.Name == "" {
		t.Fatal("run.tool.driver.name is missing")
	}
	ids := map[string]int{}
	for i, r := range run.Tool.Driver.Rules {
		if r.ID == nil || *r.ID == "" {
			t.Fatalf("rule %d has no id", i)
		}
		if _, dup := ids[*r.ID]; dup {
			t.Errorf("rule id %s twice", *r.ID)
		}
		ids[*r.ID] = i
		if r.ShortDescription == nil || r.ShortDescription.Text == nil || *r.ShortDescription.Text == "" {
			t.Errorf("rule %s has no shortDescription.text", *r.ID)
		}
	}
	levels := []string{"none", "note", "warning", "error"}
	var hits []sarifHit
	for i, r := range run.Results {
		if r.Message == nil || r.Message.Text == nil || *r.Message.Text == "" {
			t.Errorf("result %d has no message.text", i)
		}
		if r.RuleID == nil {
			t.Fatalf("result %d has no ruleId", i)
		}
		idx, ok := ids[*r.RuleID]
		if !ok || r.RuleIndex == nil || *r.RuleIndex != idx {
			t.Errorf("result %d: ruleId %s, ruleIndex %v: not a rule of the driver at that index", i, *r.RuleID, r.RuleIndex)
		}
		if !slices.Contains(levels, r.Level) || !slices.Contains([]string{"pass", "open", "informational", "notApplicable", "review", "fail"}, r.Kind) {
			t.Errorf("result %d: level %q, kind %q", i, r.Level, r.Kind)
		}
		if len(r.PartialFingerprints) == 0 {
			t.Errorf("result %d has no partialFingerprints", i)
		}
		if len(r.Locations) != 1 || r.Locations[0].PhysicalLocation == nil || r.Locations[0].PhysicalLocation.ArtifactLocation == nil || r.Locations[0].PhysicalLocation.ArtifactLocation.URI == nil {
			t.Fatalf("result %d has no physical location with an artifact URI", i)
		}
		pl := r.Locations[0].PhysicalLocation
		u, err := url.Parse(*pl.ArtifactLocation.URI)
		if err != nil || strings.Contains(*pl.ArtifactLocation.URI, `\`) {
			t.Errorf("result %d: uri %q is not a URI reference: %v", i, *pl.ArtifactLocation.URI, err)
		}
		rg := pl.Region
		if rg == nil || rg.ByteOffset == nil || rg.ByteLength == nil || *rg.ByteOffset < 0 || *rg.ByteLength <= 0 {
			t.Fatalf("result %d: region %+v, want a byte range", i, rg)
		}
		h := sarifHit{uri: u.String(), rule: *r.RuleID, offset: *rg.ByteOffset, length: *rg.ByteLength}
		if rg.StartLine != nil {
			if *rg.StartLine < 1 {
				t.Errorf("result %d: startLine %d", i, *rg.StartLine)
			}
			h.line = *rg.StartLine
		}
		hits = append(hits, h)
	}
	if len(run.Invocations) != 1 || run.Invocations[0].ExecutionSuccessful == nil {
		t.Fatal("no invocation with executionSuccessful")
	}
	for i, n := range run.Invocations[0].Notifications {
		if !slices.Contains(levels, n.Level) || n.Message == nil || n.Message.Text == nil {
			t.Errorf("notification %d: level %q, message %v", i, n.Level, n.Message)
		}
	}
	return doc, hits
}

// TestWriteSARIF scans a tree with values in a text file, a binary file and
// an encoded form, plus an unreadable path, and checks the SARIF log
// against the report: one result per hit, at the same place, and no value.
func TestWriteSARIF(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "out", "app.log"), []byte("starting\nconnecting with hunter2-db-password\nok\n"))
	write(t, filepath.Join(dir, "out", "blob.bin"), append([]byte("\x00\x01\x02"), "sk_live_4eC39HqLyjWDarjtT1zdp7dc"...))
	write(t, filepath.Join(dir, "out", "with space.json"), []byte(`{"k":"`+base64.StdEncoding.EncodeToString([]byte("hunter2-db-password"))+`"}`))
	set := mask.NewSet(secrets, mask.DefaultMinLength)
	t.Chdir(dir)
	rep, err := Scan(context.Background(), set, []string{"out", "missing"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Hits) != 3 || len(rep.Errors) != 1 {
		t.Fatalf("the scan found %d hits and %d errors, want 3 and 1: %+v", len(rep.Hits), len(rep.Errors), rep)
	}
	var buf bytes.Buffer
	if err := WriteSARIF(&buf, rep, Tool{Name: "keyward", Version: "v1.2.3", InformationURI: "https://example.test/keyward"}); err != nil {
		t.Fatal(err)
	}
	doc, hits := parseSARIF(t, buf.Bytes())
	var want []sarifHit
	for _, h := range rep.Hits {
		want = append(want, sarifHit{uri: (&url.URL{Path: filepath.ToSlash(h.Path)}).String(), rule: RulePrefix + h.Secret, line: h.Line, offset: h.Offset, length: h.Length})
	}
	if !slices.Equal(hits, want) {
		t.Errorf("SARIF results %+v, want the report's hits %+v", hits, want)
	}
	if !strings.Contains(buf.String(), `"version": "1.2.3"`) || !strings.Contains(buf.String(), `"semanticVersion": "1.2.3"`) {
		t.Error("the driver's version v1.2.3 is not given as 1.2.3 (SARIF wants it to start with a digit)")
	}
	if got := len(doc.Runs[0].Tool.Driver.Rules); got != 2 {
		t.Errorf("%d rules, want one for each secret found (2)", got)
	}
	if slices.ContainsFunc(hits, func(h sarifHit) bool { return h.uri == "out/with space.json" }) || !strings.Contains(buf.String(), "out/with%20space.json") {
		t.Error("a path with a space is not percent-encoded in its URI")
	}
	inv := doc.Runs[0].Invocations[0]
	if *inv.ExecutionSuccessful || len(inv.Notifications) != 1 || inv.Notifications[0].Level != "error" || !strings.Contains(*inv.Notifications[0].Message.Text, "missing") {
		t.Errorf("invocation %+v, want unsuccessful with an error about the missing path", inv)
	}
	for _, s := range secrets {
		for _, form := range mask.Forms(s.Value, mask.DefaultMinLength) {
			if bytes.Contains(buf.Bytes(), form.Bytes) {
				t.Errorf("the SARIF log leaked value of %s (%s form)", s.Name, form.Kind)
			}
		}
	}
}

// TestWriteSARIFClean checks the log of a scan that found nothing: valid,
// with empty results (not null) and a successful invocation.
func TestWriteSARIFClean(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.txt"), []byte("nothing here\n"))
	rep, err := Scan(context.Background(), mask.NewSet(secrets, mask.DefaultMinLength), []string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteSARIF(&buf, rep, Tool{Name: "keyward"}); err != nil {
		t.Fatal(err)
	}
	doc, hits := parseSARIF(t, buf.Bytes())
	if len(hits) != 0 || !*doc.Runs[0].Invocations[0].ExecutionSuccessful {
		t.Errorf("clean scan: %d results, invocation %+v", len(hits), doc.Runs[0].Invocations[0])
	}
	if !strings.Contains(buf.String(), `"results": []`) {
		t.Error(`a clean scan's log has no "results": [] (null or missing tells GitHub nothing was analysed)`)
	}
}
