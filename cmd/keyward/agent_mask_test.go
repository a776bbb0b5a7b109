package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testenv"
)

// TestAgentMaskChildOutput: keyward agent --mask -- COMMAND masks the
// child's stdout and stderr through the process's one masker, whatever
// reaches the child and however:
//   - the values it starts with (an env variable and a file);
//   - a file value that rotates while it runs: the running child is only
//     signalled, so the writers it already has must know the new value;
//   - an env value that rotates in by a restart: the restarted child's
//     output goes through the same writers;
//
// each printed raw, in two writes (one of them after a short pause) and in
// every encoded form, computed here by the standard library (valueForms).
// No form of any value reaches keyward's stdout or stderr, every line
// holding one is exactly what is left with the value masked, and keyward
// exits with the child's code.
func TestAgentMaskChildOutput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Single-line, so that every form is one line of a forms file; ASCII
	// in their first 6 bytes, so that the shell's split writes put the
	// value back together byte for byte.
	db1, db2 := `agent-db "one" & ä/1?x=y\z`, `agent-db "two" & ö/2?x=z<>`
	api1, api2 := "agent-api one+two/€ key%41", "agent-api three 中文 'k'#9"
	all := map[string]string{"db (initial)": db1, "db (rotated)": db2, "api (initial)": api1, "api (rotated)": api2}
	jsonOf := func(k, v string) string {
		b, err := json.Marshal(map[string]string{k: v})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// formsFile writes every form of value, one a line, for the child to
	// print.
	formsFile := func(name, value string) {
		var lines []string
		for form := range valueForms(map[string]string{"v": value}) {
			lines = append(lines, form)
		}
		slices.Sort(lines)
		atomicWrite(t, filepath.Join(dir, name), strings.Join(lines, "\n")+"\n")
	}
	testenv.WriteFile(t, filepath.Join(dir, "db.json"), jsonOf("password", db1))
	testenv.WriteFile(t, filepath.Join(dir, "api.json"), jsonOf("key", api1))
	formsFile("db-forms.txt", db1)
	formsFile("api-forms.txt", api1)
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), `version: 1
secrets:
  DB: file:db.json#password
  API: file:api.json#key
env:
  DB_VALUE: DB
files:
  - {path: out/api, format: raw, secret: API, on_change: {signal: HUP}}
watch: {interval: 1h, debounce: 100ms}
server: {listen: "unix:kw.sock"}
`)
	// show prints $v raw on both streams, in two writes of its stdout
	// (the second after a pause well under --mask-idle) and every form of
	// it from the forms file $1.
	child := `show() {
  printf '%s %s\n' "$2" "$v"; printf '%s %s\n' "$2" "$v" >&2
  printf '%.6s' "$v"; sleep 0.02; printf '%s\n' "${v#??????}"
  cat "$1"; cat "$1" >&2
}
trap 'exit 7' TERM
trap 'v=$(cat out/api); show api-forms.txt api; echo hup-done' HUP
v=$DB_VALUE; show db-forms.txt db
v=$(cat out/api); show api-forms.txt api
echo started
while :; do sleep 1 & wait $!; done`
	a := startAgent(t, dir, nil, "agent", "--mask", "-c", "keyward.yaml", "--", "sh", "-c", child)
	var out []string
	until := func(marker string) {
		t.Helper()
		for {
			l := a.nextLine()
			out = append(out, l)
			if l == marker {
				return
			}
		}
	}
	until("started")
	a.waitWatching(2)

	// The file value rotates: the child is signalled, not restarted.
	formsFile("api-forms.txt", api2)
	atomicWrite(t, filepath.Join(dir, "api.json"), jsonOf("key", api2))
	until("hup-done")

	// The env value rotates: the child is restarted with it.
	formsFile("db-forms.txt", db2)
	atomicWrite(t, filepath.Join(dir, "db.json"), jsonOf("password", db2))
	until("started")

	if code := a.stop(); code != 7 {
		t.Errorf("exit code %d, want the child's 7", code)
	}
	stdout, stderr := strings.Join(out, "\n"), a.stderr.String()
	for form, what := range valueForms(all) {
		if strings.Contains(stdout, form) {
			t.Errorf("stdout: leaked value of %s", what)
		}
		if strings.Contains(stderr, form) {
			t.Errorf("stderr: leaked value of %s", what)
		}
	}
	// Every line of the child's is what remains of it with the value
	// masked, so the values were printed and each was masked whole.
	masked := 0
	for _, l := range out {
		switch l {
		case "***", "db ***", "api ***":
			masked++
		case "started", "hup-done":
		default:
			t.Errorf("the child's line is not masked whole (%d bytes)", len(l))
		}
	}
	// Each printing (db and api at the start, api after the HUP, db and
	// api after the restart) is a raw line, a split line and every form.
	want := 0
	for _, v := range []string{db1, api1, api2, db2, api2} {
		want += 2 + len(valueForms(map[string]string{"v": v}))
	}
	if masked != want {
		t.Errorf("%d masked lines on stdout, want %d", masked, want)
	}
}

// TestAgentMaskOnChangeCommand: without a child, agent --mask masks the
// on_change commands' output, and what the masker still holds back when
// the agent stops (the possible beginning of a value, held for
// --mask-idle) is written out rather than lost.
func TestAgentMaskOnChangeCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	api1, api2 := "agent-cmd first value", "agent-cmd second value"
	testenv.WriteFile(t, filepath.Join(dir, "api.json"), `{"key": "`+api1+`"}`)
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), `version: 1
secrets:
  API: file:api.json#key
files:
  - {path: out/api, format: raw, secret: API}
on_change: {command: [sh, -c, 'v=$(cat out/api); printf "new %s\n" "$v"; printf "tail %.6s" "$v"; : > printed']}
watch: {interval: 1h, debounce: 100ms}
server: {listen: "unix:kw.sock"}
`)
	a := startAgent(t, dir, nil, "agent", "--mask", "--mask-idle", "1h", "-c", "keyward.yaml")
	a.waitWatching(1)
	atomicWrite(t, filepath.Join(dir, "api.json"), `{"key": "`+api2+`"}`)
	if l := a.nextLine(); l != "new ***" {
		t.Fatalf("the command's line is not masked whole (%d bytes)", len(l))
	}
	// Stopped after it printed everything: a stop before would cancel it.
	a.waitFor("the command's last write", func() bool {
		_, err := os.Stat(filepath.Join(dir, "printed"))
		return err == nil
	})
	if code := a.stop(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	var rest []string
	for len(a.lines) > 0 {
		rest = append(rest, <-a.lines)
	}
	if !slices.Equal(rest, []string{"tail agent-"}) {
		t.Errorf("after the stop, the output ends %q, want the held-back %q written out", rest, "tail agent-")
	}
	for _, v := range []string{api1, api2} {
		if strings.Contains(a.stderr.String(), v) || strings.Contains(strings.Join(rest, "\n"), v) {
			t.Error("leaked value of API")
		}
	}
}

// TestAgentMaskCommandAfterChild: with a child, agent --mask keeps masking
// and writing out an on_change command's output until the agent's own
// shutdown is over: a command still running when the child exits is
// stopped by that shutdown, and what it prints then reaches stdout, masked,
// instead of going to writers already closed.
func TestAgentMaskCommandAfterChild(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	api1, api2 := "agent-late first value", "agent-late second value"
	testenv.WriteFile(t, filepath.Join(dir, "api.json"), `{"key": "`+api1+`"}`)
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), `version: 1
secrets:
  API: file:api.json#key
files:
  - path: out/api
    format: raw
    secret: API
    on_change: {command: [sh, -c, 'v=$(cat out/api); trap ''printf "stopped %s\n" "$v"; exit 0'' TERM; : > began; while :; do sleep 1 & wait $!; done']}
watch: {interval: 1h, debounce: 100ms}
server: {listen: "unix:kw.sock"}
`)
	child := `echo started; while [ ! -e began ]; do sleep 0.05; done; echo child-done; exit 3`
	a := startAgent(t, dir, nil, "agent", "--mask", "-c", "keyward.yaml", "--", "sh", "-c", child)
	if l := a.nextLine(); l != "started" {
		t.Fatalf("first line %q, want started", l)
	}
	a.waitWatching(1)
	atomicWrite(t, filepath.Join(dir, "api.json"), `{"key": "`+api2+`"}`)
	select {
	case <-a.exited:
	case <-time.After(agentWait):
		t.Fatal("the agent did not exit after its child")
	}
	if a.code != 3 {
		t.Errorf("exit code %d, want the child's 3", a.code)
	}
	var rest []string
	for len(a.lines) > 0 {
		rest = append(rest, <-a.lines)
	}
	if !slices.Equal(rest, []string{"child-done", "stopped ***"}) {
		t.Errorf("after the child, the output is %d lines %v long, want the child's last line and the stopped command's, masked", len(rest), lineLengths(rest))
	}
	for _, v := range []string{api1, api2} {
		if strings.Contains(a.stderr.String(), v) || strings.Contains(strings.Join(rest, "\n"), v) {
			t.Error("leaked value of API")
		}
	}
}

// lineLengths returns the length of each line, for a failure message
// that must not print a line that may hold a value.
func lineLengths(lines []string) []int {
	n := make([]int, len(lines))
	for i, l := range lines {
		n[i] = len(l)
	}
	return n
}

// TestAgentMaskChildAndCommandInterleaved: the child and the on_change
// commands write to the same stdout, but each through writers of its own:
// the beginning of a value the child holds back is not written out because
// a command's line came in between, and the child's rest then completes it
// to *** instead of showing the two halves on either side of that line.
func TestAgentMaskChildAndCommandInterleaved(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, api1, api2 := "agent-split db value", "agent-split api one", "agent-split api two"
	testenv.WriteFile(t, filepath.Join(dir, "db.json"), `{"password": "`+db+`"}`)
	testenv.WriteFile(t, filepath.Join(dir, "api.json"), `{"key": "`+api1+`"}`)
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), `version: 1
secrets:
  DB: file:db.json#password
  API: file:api.json#key
env:
  DB_VALUE: DB
files:
  - {path: out/api, format: raw, secret: API, on_change: {command: [sh, -c, 'echo from-command; : > printed']}}
watch: {interval: 1h, debounce: 100ms}
server: {listen: "unix:kw.sock"}
`)
	// The child writes the value's first 6 bytes, waits until the command
	// has printed its line, then writes the rest.
	child := `echo started
printf '%.6s' "$DB_VALUE"
while [ ! -e printed ]; do sleep 0.05; done
printf '%s\n' "${DB_VALUE#??????}"
echo done
while :; do sleep 1 & wait $!; done`
	a := startAgent(t, dir, nil, "agent", "--mask", "--mask-idle", "1h", "-c", "keyward.yaml", "--", "sh", "-c", child)
	if l := a.nextLine(); l != "started" {
		t.Fatalf("first line %d bytes, want started", len(l))
	}
	a.waitWatching(2)
	atomicWrite(t, filepath.Join(dir, "api.json"), `{"key": "`+api2+`"}`)
	var out []string
	for len(out) == 0 || out[len(out)-1] != "done" {
		out = append(out, a.nextLine())
	}
	if !slices.Equal(out, []string{"from-command", "***", "done"}) {
		t.Errorf("the output is %d lines of %v bytes, want from-command, the child's value masked whole, done", len(out), lineLengths(out))
	}
	if joined := strings.Join(out, ""); strings.Contains(joined, db[:6]) || strings.Contains(joined, db[6:]) {
		t.Error("leaked value of DB, split by the command's line")
	}
	a.stop()
}
