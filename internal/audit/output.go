package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/keyward/keyward/internal/sarif"
	"github.com/keyward/keyward/internal/scan"
)

// String formats f as audit prints it: "FILE:LINE: RULE (…TAIL)", the
// line left out when unknown; a configured secret says its name and form.
func (f Finding) String() string {
	var b strings.Builder
	b.WriteString(f.Path)
	if f.Line > 0 {
		fmt.Fprintf(&b, ":%d", f.Line)
	}
	b.WriteString(": ")
	b.WriteString(f.Rule)
	switch {
	case f.Secret != "":
		fmt.Fprintf(&b, " (value of secret %s, %s)", f.Secret, f.Kind)
	case f.Tail != "":
		fmt.Fprintf(&b, " (…%s)", f.Tail)
	default:
		b.WriteString(" (…)")
	}
	return b.String()
}

// WriteText writes one line per finding.
func WriteText(w io.Writer, rep *Report) error {
	for _, f := range rep.Findings {
		if _, err := fmt.Fprintln(w, f.String()); err != nil {
			return err
		}
	}
	return nil
}

// WriteSARIF writes rep as a SARIF 2.1.0 log: a rule for each rule with a
// finding, a result for each finding (file, line, byte range, and the
// secret's tail or name, never its value), and the paths that could not
// be read or were skipped for their size as notifications.
func WriteSARIF(w io.Writer, rep *Report, prog sarif.Program) error {
	index := map[string]int{}
	var ids []string
	first := map[string]Finding{}
	for _, f := range rep.Findings {
		if _, ok := index[f.Rule]; !ok {
			index[f.Rule] = 0
			ids = append(ids, f.Rule)
			first[f.Rule] = f
		}
	}
	slices.Sort(ids)
	var rules []sarif.Rule
	for i, id := range ids {
		index[id] = i
		rules = append(rules, sarifRule(first[id]))
	}
	var results []sarif.Result
	seen := map[string]int{}
	for _, f := range rep.Findings {
		// The fingerprint names the rule, the file, the tail and the
		// finding's rank among its like in the file: stable when lines
		// move, and nothing of the value beyond what is printed.
		key := f.Rule + "\x00" + f.Path + "\x00" + f.Tail
		seen[key]++
		fp := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d", key, seen[key]))
		msg := "A credential matching the rule " + f.Rule + " is in this file"
		switch {
		case f.Secret != "":
			msg = "The value of the configured secret " + f.Secret + " is in this file (" + f.Kind + ")"
		case f.Tail != "":
			msg += " (ending …" + f.Tail + ")"
		}
		results = append(results, sarif.Result{
			RuleID:    f.Rule,
			RuleIndex: index[f.Rule],
			Kind:      "fail",
			Level:     "error",
			Message:   sarif.Text{Text: msg + "."},
			Locations: []sarif.Location{{PhysicalLocation: sarif.PhysicalLocation{
				ArtifactLocation: sarif.ArtifactLocation{URI: sarif.FileURI(f.Path)},
				Region:           sarif.Region{StartLine: f.Line, ByteOffset: f.Offset, ByteLength: f.Length},
			}}},
			PartialFingerprints: map[string]string{"keywardAudit/v1": hex.EncodeToString(fp[:16])},
		})
	}
	inv := scan.Invocation(&scan.Report{Errors: rep.Errors, Skipped: rep.Skipped}, "audit", "audited")
	return sarif.Write(w, sarif.New(prog, rules, results, inv))
}

func sarifRule(f Finding) sarif.Rule {
	if f.Secret != "" {
		return scan.SecretRule(f.Secret)
	}
	return sarif.Rule{
		ID:                   f.Rule,
		Name:                 "HardCodedCredential",
		ShortDescription:     sarif.Text{Text: "Hard-coded credential (" + f.Rule + ")"},
		FullDescription:      sarif.Text{Text: f.Description},
		Help:                 sarif.Text{Text: "Move the credential into a secret store and reference it from keyward's config; revoke and rotate it, since it has been in a file. If it is not a credential, add an entry with the reason to " + AllowFile + "."},
		DefaultConfiguration: sarif.Configuration{Level: "error"},
		Properties:           sarif.RuleProperties{Tags: []string{"security", "secret"}, SecuritySeverity: "8.0", Precision: "high"},
	}
}
