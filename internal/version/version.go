// Package version tells which keyward this is: the release version, the
// commit and its date, stamped by `make release` with
//
//	-ldflags "-X github.com/keyward/keyward/internal/version.Version=v1.2.3
//	          -X github.com/keyward/keyward/internal/version.Commit=<sha>
//	          -X github.com/keyward/keyward/internal/version.Date=<RFC 3339>"
//
// and, for a binary built without them (`go install …@v1.2.3`, `go build`
// in a clone), read from the build information the Go toolchain embeds.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/mod/module"
)

// Set at link time by the release build; empty otherwise.
var (
	// Version is the release version, such as "v1.2.3".
	Version string
	// Commit is the full commit hash the binary was built from.
	Commit string
	// Date is the commit's date in RFC 3339 (UTC), not the build's, so
	// that two builds of one commit are byte-identical.
	Date string
)

// Unknown stands for a field that neither the link-time stamps nor the
// build information provide.
const Unknown = "unknown"

// Info describes the running binary. Its JSON form is what
// `keyward version -o json` prints.
type Info struct {
	// Version is the release or module version ("v1.2.3", a Go
	// pseudo-version for an untagged commit), or "dev" when the binary
	// was built from a source tree without version control information.
	Version string `json:"version"`
	// Commit is the commit hash (full when stamped or read from VCS
	// information, 12 digits when derived from a pseudo-version), or
	// Unknown.
	Commit string `json:"commit"`
	// Date is the commit's date, RFC 3339 in UTC, or Unknown.
	Date string `json:"date"`
	// Modified reports a build from a tree with uncommitted changes,
	// when the build information says so.
	Modified bool `json:"modified,omitempty"`
	// GoVersion is the toolchain that built the binary ("go1.26.8").
	GoVersion string `json:"go_version"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
	// Providers lists the provider kinds compiled into this binary,
	// sorted; the caller fills it in (this package knows no providers).
	Providers []string `json:"providers,omitempty"`
}

// Get returns the running binary's Info (without Providers). It is safe
// for concurrent use.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(Version, Commit, Date, bi)
}

// resolve merges the link-time stamps with the build information bi (nil
// when there is none): a stamp wins; otherwise the module version (from
// `go install …@version`, or the one Go derives from VCS tags), then the
// VCS settings of a build in a clone, then the commit and date a
// pseudo-version carries.
func resolve(ver, commit, date string, bi *debug.BuildInfo) Info {
	in := Info{Version: ver, Commit: commit, Date: date, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		in.GoVersion = bi.GoVersion
		if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			in.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if in.Commit == "" {
					in.Commit = s.Value
				}
			case "vcs.time":
				if in.Date == "" {
					in.Date = s.Value
				}
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	// Go appends "+dirty" to the version of a build from a modified tree.
	if v, _, _ := strings.Cut(in.Version, "+"); module.IsPseudoVersion(v) {
		if in.Commit == "" {
			in.Commit, _ = module.PseudoVersionRev(v)
		}
		if in.Date == "" {
			if t, err := module.PseudoVersionTime(v); err == nil {
				in.Date = t.UTC().Format(time.RFC3339)
			}
		}
	}
	if in.Version == "" {
		in.Version = "dev"
	}
	if in.Commit == "" {
		in.Commit = Unknown
	}
	if in.Date == "" {
		in.Date = Unknown
	}
	return in
}

// String is the one line `keyward --version` prints:
// "keyward v1.2.3 (commit 0123abcd…, 2026-01-02T03:04:05Z, go1.26.8 linux/amd64)".
func (in Info) String() string {
	commit := in.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if in.Modified {
		commit += "+dirty"
	}
	return fmt.Sprintf("keyward %s (commit %s, %s, %s %s)", in.Version, commit, in.Date, in.GoVersion, in.Platform)
}
