package scan

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/keyward/keyward/internal/mask"
	"github.com/keyward/keyward/internal/sarif"
)

// Tool names the program in a SARIF log.
type Tool = sarif.Program

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
	var rules []sarif.Rule
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
		rules = append(rules, SecretRule(n))
	}
	var results []sarif.Result
	seen := map[string]int{}
	for _, h := range rep.Hits {
		// The fingerprint names the secret, the file, the form and the
		// occurrence's rank among that secret's in that file: stable when
		// lines move, and nothing of the value.
		key := h.Secret + "\x00" + h.Path + "\x00" + h.Kind
		seen[key]++
		fp := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d", key, seen[key]))
		results = append(results, sarif.Result{
			RuleID:    RulePrefix + h.Secret,
			RuleIndex: index[h.Secret],
			Kind:      "fail",
			Level:     "error",
			Message:   sarif.Text{Text: "The value of secret " + h.Secret + " is in this file" + formText(h.Kind) + "."},
			Locations: []sarif.Location{{PhysicalLocation: sarif.PhysicalLocation{
				ArtifactLocation: sarif.ArtifactLocation{URI: sarif.FileURI(h.Path)},
				Region:           sarif.Region{StartLine: h.Line, ByteOffset: h.Offset, ByteLength: h.Length},
			}}},
			PartialFingerprints: map[string]string{"keywardOccurrence/v1": hex.EncodeToString(fp[:16])},
		})
	}
	return sarif.Write(w, sarif.New(tool, rules, results, Invocation(rep, "scan", "scanned")))
}

// SecretRule is the SARIF rule of the configured secret name: its value
// is in a file.
func SecretRule(name string) sarif.Rule {
	return sarif.Rule{
		ID:                   RulePrefix + name,
		Name:                 "SecretValueInFile",
		ShortDescription:     sarif.Text{Text: "The value of secret " + name + " is in a file"},
		FullDescription:      sarif.Text{Text: "A file holds the value of the secret " + name + ", raw or encoded (base64, hex, URL or JSON escaping, or one line of a multi-line value). Whoever can read the file can use the secret."},
		Help:                 sarif.Text{Text: "Remove the value from the file and from whatever produced it (a log line, a build step, a template), then rotate the secret " + name + " in its store: a published value must be treated as known."},
		DefaultConfiguration: sarif.Configuration{Level: "error"},
		Properties:           sarif.RuleProperties{Tags: []string{"security", "secret"}, SecuritySeverity: "9.0", Precision: "very-high"},
	}
}

// Invocation is the SARIF invocation of a walk whose report is rep: the
// paths that could not be read are errors, those skipped for their size
// warnings; verb and done name what was not done ("scan", "scanned").
func Invocation(rep *Report, verb, done string) sarif.Invocation {
	inv := sarif.Invocation{ExecutionSuccessful: len(rep.Errors) == 0}
	for _, e := range rep.Errors {
		inv.Notifications = append(inv.Notifications, sarif.FileNotification("error", "cannot "+verb+": "+e.Error(), e.Path))
	}
	for _, s := range rep.Skipped {
		if strings.Contains(s.Reason, "size limit") {
			inv.Notifications = append(inv.Notifications, sarif.FileNotification("warning", "not "+done+": "+s.Path+": "+s.Reason, s.Path))
		}
	}
	return inv
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
