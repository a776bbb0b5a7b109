// Package sarif writes SARIF 2.1.0 logs, the format GitHub code scanning
// and other tools import, for keyward's reports of what it found in files
// (keyward scan, keyward audit). It holds only the types those reports
// use and one writer; what goes into a log, and that no value does, is
// the caller's business.
package sarif

import (
	"cmp"
	"encoding/json"
	"io"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
)

// SARIF 2.1.0.
const (
	Version = "2.1.0"
	Schema  = "https://json.schemastore.org/sarif-2.1.0.json"
)

// Log is a SARIF log with one run.
type Log struct {
	Schema  string `json:"$schema"`
	Version string `json:"version"`
	Runs    []Run  `json:"runs"`
}

// Run is one run of a tool.
type Run struct {
	Tool        Tool         `json:"tool"`
	Invocations []Invocation `json:"invocations"`
	Results     []Result     `json:"results"`
	ColumnKind  string       `json:"columnKind"`
}

// Tool names the program and its rules.
type Tool struct {
	Driver Driver `json:"driver"`
}

// Driver is the tool's main component.
type Driver struct {
	Name            string `json:"name"`
	Version         string `json:"version,omitempty"`
	SemanticVersion string `json:"semanticVersion,omitempty"`
	InformationURI  string `json:"informationUri,omitempty"`
	Rules           []Rule `json:"rules"`
}

// Program names the program that writes a log.
type Program struct {
	Name, Version, InformationURI string
}

// Rule describes what one kind of result means.
type Rule struct {
	ID                   string         `json:"id"`
	Name                 string         `json:"name"`
	ShortDescription     Text           `json:"shortDescription"`
	FullDescription      Text           `json:"fullDescription"`
	Help                 Text           `json:"help"`
	DefaultConfiguration Configuration  `json:"defaultConfiguration"`
	Properties           RuleProperties `json:"properties"`
}

// RuleProperties are a rule's tags and GitHub's severity properties.
type RuleProperties struct {
	Tags []string `json:"tags"`
	// SecuritySeverity is GitHub's: 9.0 and above is "critical".
	SecuritySeverity string `json:"security-severity"`
	Precision        string `json:"precision"`
}

// Configuration is a rule's default level.
type Configuration struct {
	Level string `json:"level"`
}

// Text is a plain-text message.
type Text struct {
	Text string `json:"text"`
}

// Result is one finding.
type Result struct {
	RuleID              string            `json:"ruleId"`
	RuleIndex           int               `json:"ruleIndex"`
	Kind                string            `json:"kind"`
	Level               string            `json:"level"`
	Message             Text              `json:"message"`
	Locations           []Location        `json:"locations"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
}

// Location is where a result or notification is.
type Location struct {
	PhysicalLocation PhysicalLocation `json:"physicalLocation"`
}

// PhysicalLocation is a file and, optionally, a region of it.
type PhysicalLocation struct {
	ArtifactLocation ArtifactLocation `json:"artifactLocation"`
	Region           Region           `json:"region,omitzero"`
}

// ArtifactLocation is a file's URI (FileURI).
type ArtifactLocation struct {
	URI string `json:"uri"`
}

// Region is a part of a file: its first line (omitted when 0, as in a
// binary file) and its bytes.
type Region struct {
	StartLine  int   `json:"startLine,omitempty"`
	ByteOffset int64 `json:"byteOffset"`
	ByteLength int   `json:"byteLength"`
}

// Invocation says whether the run succeeded, and what went wrong.
type Invocation struct {
	ExecutionSuccessful bool           `json:"executionSuccessful"`
	Notifications       []Notification `json:"toolExecutionNotifications"`
}

// Notification is a problem of the run (a file that could not be read).
type Notification struct {
	Level     string     `json:"level"`
	Message   Text       `json:"message"`
	Locations []Location `json:"locations"`
}

// New returns a log of one run of prog with rules, results and the
// invocation: the lists SARIF requires are never null, the notifications
// are sorted by file, and a version "v1.2.3" is given as "1.2.3", also as
// the semantic version (SARIF wants a version that starts with a digit).
func New(prog Program, rules []Rule, results []Result, inv Invocation) *Log {
	d := Driver{Name: prog.Name, Version: prog.Version, InformationURI: prog.InformationURI, Rules: rules}
	if v := strings.TrimPrefix(prog.Version, "v"); v != prog.Version && v != "" && v[0] >= '0' && v[0] <= '9' {
		d.Version, d.SemanticVersion = v, v
	}
	if d.Rules == nil {
		d.Rules = []Rule{}
	}
	if results == nil {
		results = []Result{}
	}
	if inv.Notifications == nil {
		inv.Notifications = []Notification{}
	}
	slices.SortStableFunc(inv.Notifications, func(a, b Notification) int {
		return cmp.Compare(uri(a), uri(b))
	})
	return &Log{
		Schema:  Schema,
		Version: Version,
		Runs: []Run{{
			Tool:        Tool{Driver: d},
			Invocations: []Invocation{inv},
			Results:     results,
			ColumnKind:  "unicodeCodePoints",
		}},
	}
}

func uri(n Notification) string {
	if len(n.Locations) == 0 {
		return ""
	}
	return n.Locations[0].PhysicalLocation.ArtifactLocation.URI
}

// Write writes log as indented JSON.
func Write(w io.Writer, log *Log) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(log)
}

// FileURI turns a path into an artifact URI: a relative URI reference for
// a relative path (resolved by consumers against the checkout), a file URI
// for an absolute one.
func FileURI(p string) string {
	slash := filepath.ToSlash(p)
	if filepath.IsAbs(p) {
		return (&url.URL{Scheme: "file", Path: slash}).String()
	}
	return (&url.URL{Path: slash}).String()
}

// FileNotification is a notification about the file at path.
func FileNotification(level, text, path string) Notification {
	return Notification{Level: level, Message: Text{Text: text}, Locations: []Location{{PhysicalLocation: PhysicalLocation{ArtifactLocation: ArtifactLocation{URI: FileURI(path)}}}}}
}
