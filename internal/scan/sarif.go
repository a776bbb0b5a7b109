package scan

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keyward/keyward/internal/mask"
)

// SARIF 2.1.0, the format GitHub code scanning and other tools import.
const (
	SARIFVersion = "2.1.0"
	SARIFSchema  = "https://json.schemastore.org/sarif-2.1.0.json"
)

// Tool names the program in a SARIF log.
type Tool struct {
	Name, Version, InformationURI string
}

// RulePrefix starts the rule ID of each secret: "secret:DB_PASSWORD".
// A secret is a rule, so a code-scanning tool groups the places that
// leaked one value, which is what has to be rotated.
const RulePrefix = "secret:"

// WriteSARIF writes rep as a SARIF 2.1.0 log with one run: a rule for
// each secret found, a result for each hit (its file, line and byte
// range, the secret's name and the form it was found in), and the paths
// that could not be scanned or were skipped for their size as tool
// notifications. Like every other output of scan, it never holds a value
// or anything computed from one. Paths become relative URIs ("dist/app.js")
// or, when absolute, file URIs.
func WriteSARIF(w io.Writer, rep *Report, tool Tool) error {
	var rules []sarifRule
	index := map[string]int{}
	for _, h := range rep.Hits {
		if _, ok := index[h.Secret]; !ok {
			index[h.Secret] = -1
		}
	}
	names := make([]string, 0, len(index))
	for n := range index {
		names = append(names, n)
	}
	slices.Sort(names)
	for i, n := range names {
		index[n] = i
		rules = append(rules, sarifRule{
			ID:                   RulePrefix + n,
			Name:                 "SecretValueInFile",
			ShortDescription:     sarifText{Text: "The value of secret " + n + " is in a file"},
			FullDescription:      sarifText{Text: "A file holds the value of the secret " + n + ", raw or encoded (base64, hex, URL or JSON escaping, or one line of a multi-line value). Whoever can read the file can use the secret."},
			Help:                 sarifText{Text: "Remove the value from the file and from whatever produced it (a log line, a build step, a template), then rotate the secret " + n + " in its store: a published value must be treated as known."},
			DefaultConfiguration: sarifConfig{Level: "error"},
			Properties:           sarifRuleProps{Tags: []string{"security", "secret"}, SecuritySeverity: "9.0", Precision: "very-high"},
		})
	}
	results := []sarifResult{}
	seen := map[string]int{}
	for _, h := range rep.Hits {
		region := sarifRegion{ByteOffset: h.Offset, ByteLength: h.Length}
		if h.Line > 0 {
			region.StartLine = h.Line
		}
		// The fingerprint names the secret, the file, the form and the
		// occurrence's rank among that secret's in that file: stable when
		// lines move, and nothing of the value.
		key := h.Secret + "\x00" + h.Path + "\x00" + h.Kind
		seen[key]++
		fp := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d", key, seen[key]))
		results = append(results, sarifResult{
			RuleID:    RulePrefix + h.Secret,
			RuleIndex: index[h.Secret],
			Kind:      "fail",
			Level:     "error",
			Message:   sarifText{Text: "The value of secret " + h.Secret + " is in this file" + formText(h.Kind) + "."},
			Locations: []sarifLocation{{PhysicalLocation: sarifPhysical{
				ArtifactLocation: sarifArtifact{URI: fileURI(h.Path)},
				Region:           region,
			}}},
			PartialFingerprints: map[string]string{"keywardOccurrence/v1": hex.EncodeToString(fp[:16])},
		})
	}
	inv := sarifInvocation{ExecutionSuccessful: len(rep.Errors) == 0, Notifications: []sarifNotification{}}
	for _, e := range rep.Errors {
		inv.Notifications = append(inv.Notifications, notification("error", "cannot scan: "+e.Error(), e.Path))
	}
	for _, s := range rep.Skipped {
		if strings.Contains(s.Reason, "size limit") {
			inv.Notifications = append(inv.Notifications, notification("warning", "not scanned: "+s.Path+": "+s.Reason, s.Path))
		}
	}
	slices.SortStableFunc(inv.Notifications, func(a, b sarifNotification) int {
		return cmp.Compare(a.Locations[0].PhysicalLocation.ArtifactLocation.URI, b.Locations[0].PhysicalLocation.ArtifactLocation.URI)
	})
	log := sarifLog{
		Schema:  SARIFSchema,
		Version: SARIFVersion,
		Runs: []sarifRun{{
			Tool:        sarifTool{Driver: driver(tool, rules)},
			Invocations: []sarifInvocation{inv},
			Results:     results,
			ColumnKind:  "unicodeCodePoints",
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(log)
}

// driver describes the tool. SARIF wants a version that starts with a
// digit, and a semantic version apart: "v1.2.3" is version "1.2.3".
func driver(tool Tool, rules []sarifRule) sarifDriver {
	d := sarifDriver{Name: tool.Name, Version: tool.Version, InformationURI: tool.InformationURI, Rules: rules}
	if v := strings.TrimPrefix(tool.Version, "v"); v != tool.Version && v != "" && v[0] >= '0' && v[0] <= '9' {
		d.Version, d.SemanticVersion = v, v
	}
	return d
}

// formText describes a form kind for a result's message.
func formText(kind string) string {
	switch kind {
	case mask.KindRaw:
		return ""
	case mask.KindLine:
		return " (one line of its value)"
	case mask.KindBase64, mask.KindBase64URL:
		return " (base64-encoded)"
	case mask.KindHex:
		return " (hex-encoded)"
	case mask.KindURL:
		return " (URL-encoded)"
	case mask.KindJSON:
		return " (JSON-escaped)"
	default:
		return " (" + kind + ")"
	}
}

// fileURI turns a scanned path into a SARIF artifact URI: a relative URI
// reference for a relative path (resolved by consumers against the
// checkout), a file URI for an absolute one.
func fileURI(p string) string {
	slash := filepath.ToSlash(p)
	if filepath.IsAbs(p) {
		return (&url.URL{Scheme: "file", Path: slash}).String()
	}
	return (&url.URL{Path: slash}).String()
}

func notification(level, text, path string) sarifNotification {
	return sarifNotification{Level: level, Message: sarifText{Text: text}, Locations: []sarifLocation{{PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: fileURI(path)}}}}}
}

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Invocations []sarifInvocation `json:"invocations"`
	Results     []sarifResult     `json:"results"`
	ColumnKind  string            `json:"columnKind"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name            string      `json:"name"`
	Version         string      `json:"version,omitempty"`
	SemanticVersion string      `json:"semanticVersion,omitempty"`
	InformationURI  string      `json:"informationUri,omitempty"`
	Rules           []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID                   string         `json:"id"`
	Name                 string         `json:"name"`
	ShortDescription     sarifText      `json:"shortDescription"`
	FullDescription      sarifText      `json:"fullDescription"`
	Help                 sarifText      `json:"help"`
	DefaultConfiguration sarifConfig    `json:"defaultConfiguration"`
	Properties           sarifRuleProps `json:"properties"`
}

type sarifRuleProps struct {
	Tags []string `json:"tags"`
	// SecuritySeverity is GitHub's: 9.0 and above is "critical".
	SecuritySeverity string `json:"security-severity"`
	Precision        string `json:"precision"`
}

type sarifConfig struct {
	Level string `json:"level"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID              string            `json:"ruleId"`
	RuleIndex           int               `json:"ruleIndex"`
	Kind                string            `json:"kind"`
	Level               string            `json:"level"`
	Message             sarifText         `json:"message"`
	Locations           []sarifLocation   `json:"locations"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           sarifRegion   `json:"region,omitzero"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine  int   `json:"startLine,omitempty"`
	ByteOffset int64 `json:"byteOffset"`
	ByteLength int   `json:"byteLength"`
}

type sarifInvocation struct {
	ExecutionSuccessful bool                `json:"executionSuccessful"`
	Notifications       []sarifNotification `json:"toolExecutionNotifications"`
}

type sarifNotification struct {
	Level     string          `json:"level"`
	Message   sarifText       `json:"message"`
	Locations []sarifLocation `json:"locations"`
}
