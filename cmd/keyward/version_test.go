package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/version"
	"github.com/keyward/keyward/providers"
)

// minimalTags leaves every optional provider out: a small binary that
// builds in seconds.
const minimalTags = "no_vault no_awssm no_gcpsm no_k8s"

func versionJSON(t *testing.T, bin string) version.Info {
	t.Helper()
	out, err := exec.Command(bin, "version", "-o", "json").Output()
	if err != nil {
		t.Fatalf("keyward version -o json: %v", err)
	}
	var in version.Info
	dec := json.NewDecoder(strings.NewReader(string(out)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		t.Fatalf("keyward version -o json printed invalid JSON: %v\n%s", err, out)
	}
	return in
}

func TestVersion(t *testing.T) {
	t.Parallel()
	in := versionJSON(t, binPath)
	// The test binary is built without tags: every builtin kind is in it.
	want := providers.KnownKinds()
	if !slices.Equal(in.Providers, want) {
		t.Errorf("providers = %v, want %v", in.Providers, want)
	}
	if in.GoVersion != runtime.Version() {
		t.Errorf("go_version = %q, want %q", in.GoVersion, runtime.Version())
	}
	if p := runtime.GOOS + "/" + runtime.GOARCH; in.Platform != p {
		t.Errorf("platform = %q, want %q", in.Platform, p)
	}
	if in.Version == "" || in.Commit == "" || in.Date == "" {
		t.Errorf("empty fields in %+v", in)
	}

	text := keyward(t, t.TempDir(), nil, "version")
	flag := keyward(t, t.TempDir(), nil, "--version")
	if text.code != 0 || flag.code != 0 {
		t.Fatalf("version exited %d, --version %d: %s%s", text.code, flag.code, text.stderr, flag.stderr)
	}
	first, rest, _ := strings.Cut(text.stdout, "\n")
	if flag.stdout != first+"\n" {
		t.Errorf("--version printed %q, want the first line of `keyward version`: %q", flag.stdout, first)
	}
	if !strings.HasPrefix(first, "keyward "+in.Version+" (commit ") {
		t.Errorf("version printed %q, want it to start with the version %q", first, in.Version)
	}
	if want := "providers: " + strings.Join(want, " ") + "\n"; rest != want {
		t.Errorf("version printed %q after the first line, want %q", rest, want)
	}

	bad := keyward(t, t.TempDir(), nil, "version", "-o", "yaml")
	if bad.code != exitUsage || !strings.Contains(bad.stderr, `invalid -o "yaml"`) {
		t.Errorf("version -o yaml: exit %d, stderr %q; want exit %d naming the format", bad.code, bad.stderr, exitUsage)
	}
}

// buildKeyward builds keyward with extra go build arguments into a
// temporary directory.
func buildKeyward(t *testing.T, args ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "keyward")
	cmd := exec.Command("go", append(append([]string{"build", "-trimpath", "-o", bin}, args...), ".")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", args, err, out)
	}
	return bin
}

// TestVersionStamped checks what the release build's -ldflags set, and that
// the provider list follows the build tags.
func TestVersionStamped(t *testing.T) {
	t.Parallel()
	const (
		ver    = "v9.8.7"
		commit = "0123456789abcdef0123456789abcdef01234567"
		date   = "2026-01-02T03:04:05Z"
	)
	pkg := "github.com/keyward/keyward/internal/version."
	bin := buildKeyward(t, "-tags", minimalTags,
		"-ldflags", "-X "+pkg+"Version="+ver+" -X "+pkg+"Commit="+commit+" -X "+pkg+"Date="+date)
	in := versionJSON(t, bin)
	if in.Version != ver || in.Commit != commit || in.Date != date {
		t.Errorf("version -o json = %+v, want version %s, commit %s, date %s", in, ver, commit, date)
	}
	if !slices.Equal(in.Providers, []string{"file"}) {
		t.Errorf("providers = %v with -tags %q, want only [file]", in.Providers, minimalTags)
	}
}

// TestVersionFromVCS checks a build without stamps in a git clone (what a
// developer's `go build` or `go install` gives): the commit and its date
// come from the build information.
func TestVersionFromVCS(t *testing.T) {
	t.Parallel()
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("skipped: not in a git clone (git rev-parse HEAD: %v)", err)
	}
	bin := buildKeyward(t, "-tags", minimalTags, "-buildvcs=true")
	bi, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(bi), "vcs.revision=") {
		// The go command finds no repository in a linked git worktree
		// (its .git is a file); a clone has a .git directory.
		t.Skip("skipped: go build -buildvcs=true embedded no VCS information here (a git worktree?)")
	}
	git := exec.Command("git", "log", "-1", "--format=%cd", "--date=format-local:%Y-%m-%dT%H:%M:%SZ")
	git.Env = append(os.Environ(), "TZ=UTC")
	ctime, err := git.Output()
	if err != nil {
		t.Fatal(err)
	}
	in := versionJSON(t, bin)
	if want := strings.TrimSpace(string(head)); in.Commit != want {
		t.Errorf("commit = %q, want HEAD %q", in.Commit, want)
	}
	if want := strings.TrimSpace(string(ctime)); in.Date != want {
		t.Errorf("date = %q, want HEAD's commit date %q", in.Date, want)
	}
	if in.Version == "dev" {
		t.Errorf("version = dev, want the version Go derives from the repository")
	}
}
