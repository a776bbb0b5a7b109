package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCompletionScripts(t *testing.T) {
	t.Parallel()
	for shell, marker := range map[string]string{
		"bash":       "complete -o default -F __start_keyward keyward",
		"zsh":        "#compdef keyward",
		"fish":       "complete -c keyward",
		"powershell": "Register-ArgumentCompleter",
	} {
		r := keyward(t, t.TempDir(), nil, "completion", shell)
		if r.code != 0 || !strings.Contains(r.stdout, marker) {
			t.Errorf("completion %s: exit %d, stderr %q; want a script with %q", shell, r.code, r.stderr, marker)
		}
	}
	if r := keyward(t, t.TempDir(), nil, "completion", "tcsh"); r.code != exitUsage {
		t.Errorf("completion tcsh: exit %d, want %d", r.code, exitUsage)
	}
}

// visibleCommands are the commands a user can type: those newRoot adds,
// without hidden ones, plus cobra's completion and help.
func visibleCommands() []string {
	g := &globals{env: env{getenv: func(string) string { return "" }, environ: func() []string { return nil }}}
	names := []string{"completion", "help"}
	for _, c := range newRoot(g).Commands() {
		if !c.Hidden {
			names = append(names, c.Name())
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// complete runs `keyward __complete ARGS...`, what every shell script asks,
// and returns the candidates (without their descriptions).
func complete(t *testing.T, args ...string) []string {
	t.Helper()
	r := keyward(t, t.TempDir(), nil, append([]string{"__complete"}, args...)...)
	if r.code != 0 {
		t.Fatalf("__complete %q: exit %d, stderr %q", args, r.code, r.stderr)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if !strings.HasPrefix(l, ":") { // the directive line
			name, _, _ := strings.Cut(l, "\t")
			out = append(out, name)
		}
	}
	return out
}

func TestCompleteCommandsAndFlags(t *testing.T) {
	t.Parallel()
	if got, want := complete(t, ""), visibleCommands(); !slices.Equal(got, want) {
		t.Errorf("completing a command gives %v, want %v", got, want)
	}
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"sc"}, []string{"scan"}},
		{[]string{"--log-level", ""}, []string{"debug", "info", "warn", "error"}},
		{[]string{"version", "-o", ""}, []string{"text", "json"}},
		{[]string{"completion", ""}, []string{"bash", "fish", "powershell", "zsh"}},
	} {
		if got := complete(t, tt.args...); !slices.Equal(got, tt.want) {
			t.Errorf("completing %q gives %v, want %v", tt.args, got, tt.want)
		}
	}
}

// bashCompletionShim stands in for bash-completion's _get_comp_words_by_ref
// when that package is not installed: the words, the current one and the
// previous one, as the generated script reads them.
const bashCompletionShim = `_get_comp_words_by_ref() {
	words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD
	cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}
}
`

// TestBashCompletion sources the bash script and completes as bash does
// on TAB: the script runs the keyward found on PATH.
func TestBashCompletion(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("skipped: no bash")
	}
	prelude := bashCompletionShim
	const bashCompletion = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(bashCompletion); err == nil {
		prelude = "source " + bashCompletion + "\n"
	} else {
		t.Log("bash-completion is not installed: completing with a stand-in for _get_comp_words_by_ref")
	}
	script := prelude + `source <(keyward completion bash)
COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
__start_keyward
printf '%s\n' "${COMPREPLY[@]}"
`
	for _, tt := range []struct {
		words []string
		want  []string
	}{
		{[]string{"keyward", "sc"}, []string{"scan"}},
		{[]string{"keyward", "ve"}, []string{"version"}},
		{[]string{"keyward", "--log-format", ""}, []string{"text", "json"}},
		{[]string{"keyward", ""}, visibleCommands()},
	} {
		cmd := exec.Command("bash", append([]string{"-c", script, "bash"}, tt.words...)...)
		cmd.Env = []string{"PATH=" + filepath.Dir(binPath) + string(os.PathListSeparator) + os.Getenv("PATH")}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("bash completion of %q: %v\n%s", tt.words, err, stderr.String())
		}
		got := strings.Fields(stdout.String())
		if !slices.Equal(got, tt.want) {
			t.Errorf("bash completes %q to %v, want %v (stderr %q)", tt.words, got, tt.want, stderr.String())
		}
	}
}
