package version

import (
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	t.Parallel()
	const (
		full   = "f1b88d5f9a2f63c50cfae8dded86e7979b9ff9fb"
		pseudo = "v0.0.0-20261122082509-f1b88d5f9a2f"
	)
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: full}, {Key: "vcs.time", Value: "2026-11-22T08:25:09Z"}, {Key: "vcs.modified", Value: modified}}
	}
	tests := []struct {
		name              string
		ver, commit, date string
		bi                *debug.BuildInfo
		want              Info
	}{{
		name: "release build: the stamps win over the build information",
		ver:  "v1.2.3", commit: full, date: "2026-11-22T08:25:09Z",
		bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: pseudo + "+dirty"}, Settings: vcs("true")},
		want: Info{Version: "v1.2.3", Commit: full, Date: "2026-11-22T08:25:09Z", Modified: true, GoVersion: "go1.26.8"},
	}, {
		name: "go install of a tag: the module version",
		bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}},
		want: Info{Version: "v1.2.3", Commit: Unknown, Date: Unknown, GoVersion: "go1.26.8"},
	}, {
		name: "go install of a commit: commit and date from the pseudo-version",
		bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: pseudo}},
		want: Info{Version: pseudo, Commit: "f1b88d5f9a2f", Date: "2026-11-22T08:25:09Z", GoVersion: "go1.26.8"},
	}, {
		name: "go install of a commit after a tag",
		bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.4-0.20261122082509-f1b88d5f9a2f"}},
		want: Info{Version: "v1.2.4-0.20261122082509-f1b88d5f9a2f", Commit: "f1b88d5f9a2f", Date: "2026-11-22T08:25:09Z", GoVersion: "go1.26.8"},
	}, {
		name: "go build in a modified clone: VCS settings",
		bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: pseudo + "+dirty"}, Settings: vcs("true")},
		want: Info{Version: pseudo + "+dirty", Commit: full, Date: "2026-11-22T08:25:09Z", Modified: true, GoVersion: "go1.26.8"},
	}, {
		name: "go build without VCS information",
		bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
		want: Info{Version: "dev", Commit: Unknown, Date: Unknown, GoVersion: "go1.26.8"},
	}, {
		name: "no build information",
		want: Info{Version: "dev", Commit: Unknown, Date: Unknown, GoVersion: runtime.Version()},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := resolve(tt.ver, tt.commit, tt.date, tt.bi)
			tt.want.Platform = runtime.GOOS + "/" + runtime.GOARCH
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("resolve() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	in := Info{Version: "v1.2.3", Commit: "f1b88d5f9a2f63c50cfae8dded86e7979b9ff9fb", Date: "2026-11-22T08:25:09Z", Modified: true, GoVersion: "go1.26.8", Platform: "linux/arm64"}
	s := in.String()
	for _, want := range []string{"keyward v1.2.3 ", "commit f1b88d5f9a2f+dirty,", "2026-11-22T08:25:09Z", "go1.26.8 linux/arm64"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() = %q, want it to contain %q", s, want)
		}
	}
}
