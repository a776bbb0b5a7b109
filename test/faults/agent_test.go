//go:build integration

package faults

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/child"
	"github.com/keyward/keyward/internal/testenv"
)

// waitLong bounds every wait for the agent to reach a state (a render, a
// recovery after a store came back: its retry backoff may have grown).
const waitLong = 90 * time.Second

// agent is a running `keyward agent`, its server on dir/kw.sock.
type agent struct {
	t        *testing.T
	dir      string
	cmd      *exec.Cmd
	log      *testenv.LogBuffer
	childLog string // the recording child's log, "" without a child
	http     *http.Client
	exited   chan struct{}
	code     int
	// secrets are values the agent holds; none may appear in its log.
	secrets func() []string
}

// agentOptions start an agent.
type agentOptions struct {
	// config is keyward.yaml; the server: line is added.
	config string
	// env is the agent's environment beside PATH.
	env []string
	// child runs the recording child under the agent.
	child bool
	// secrets lists the values the agent holds, to check its log.
	secrets func() []string
	// quiet leaves the agent's log out of a failed test's output (an
	// agent killed on purpose, one of many).
	quiet bool
	// args are more flags of keyward agent.
	args []string
}

// startAgent writes the config into dir and runs keyward agent there.
// The agent (and its child) are killed when the test ends, if still
// running; its log is shown when the test failed.
func startAgent(t *testing.T, dir string, o agentOptions) *agent {
	t.Helper()
	cfg := o.config + "server: {listen: \"unix:kw.sock\"}\n"
	if err := os.WriteFile(filepath.Join(dir, "keyward.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &agent{t: t, dir: dir, log: &testenv.LogBuffer{}, exited: make(chan struct{}), secrets: o.secrets}
	args := append([]string{"agent", "-c", "keyward.yaml"}, o.args...)
	env := append([]string{"PATH=" + os.Getenv("PATH")}, o.env...)
	if o.child {
		a.childLog = filepath.Join(dir, "child.log")
		cargs, cenv := childCommand(a.childLog)
		args = append(append(args, "--"), cargs...)
		env = append(env, cenv...)
	}
	a.cmd = exec.Command(binPath, args...)
	a.cmd.Dir = dir
	a.cmd.Env = env
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		a.code, _ = child.ExitCode(a.cmd.Wait())
		close(a.exited)
	}()
	sock := filepath.Join(dir, "kw.sock")
	a.http = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	t.Cleanup(func() {
		a.kill()
		if t.Failed() && !o.quiet {
			t.Logf("agent log (held values redacted):\n%s", tail(a.redacted(), 6000))
		}
		a.checkLog()
	})
	return a
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// kill ends the agent's process group with SIGKILL, unless it exited.
func (a *agent) kill() {
	select {
	case <-a.exited:
	default:
		_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		<-a.exited
	}
}

// checkLog fails the test when a value the agent holds appears in its log.
func (a *agent) checkLog() {
	if a.secrets == nil {
		return
	}
	log := a.log.String()
	for i, v := range a.secrets() {
		if v != "" && strings.Contains(log, v) {
			a.t.Errorf("leaked value of secret #%d (%d bytes) in keyward's log", i, len(v))
		}
	}
}

// redacted is the agent's log with every value it holds replaced by
// [secret #i], so a failing test never prints one.
func (a *agent) redacted() string {
	log := a.log.String()
	if a.secrets == nil {
		return log
	}
	for i, v := range a.secrets() {
		if v != "" {
			log = strings.ReplaceAll(log, v, fmt.Sprintf("[secret #%d]", i))
		}
	}
	return log
}

// stop sends SIGTERM and returns the exit code.
func (a *agent) stop() int {
	a.t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		a.t.Fatal(err)
	}
	select {
	case <-a.exited:
	case <-time.After(30 * time.Second):
		a.t.Fatal("agent did not exit within 30s of SIGTERM")
	}
	return a.code
}

// get returns the status and body of GET path on the agent's server.
func (a *agent) get(path string) (int, string, error) {
	resp, err := a.http.Get("http://keyward" + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// readyz returns /readyz's status and body; 0 when it cannot be reached.
func (a *agent) readyz() (int, string) {
	code, body, err := a.get("/readyz")
	if err != nil {
		return 0, err.Error()
	}
	return code, strings.TrimSpace(body)
}

// metrics returns every sample of /metrics by series ("name{labels}").
func (a *agent) metrics() map[string]float64 {
	a.t.Helper()
	code, body, err := a.get("/metrics")
	if err != nil || code != 200 {
		a.t.Fatalf("GET /metrics: %d %v", code, err)
	}
	out := map[string]float64{}
	for _, l := range strings.Split(body, "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			out[l[:i]] = v
		}
	}
	return out
}

// sum adds the samples of the metric name whose labels contain every one
// of labels (`stage="fetch"`).
func sum(m map[string]float64, name string, labels ...string) float64 {
	var s float64
	for series, v := range m {
		n, l, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		ok := true
		for _, want := range labels {
			if !strings.Contains(l, want) {
				ok = false
			}
		}
		if ok {
			s += v
		}
	}
	return s
}

// waitFor polls cond until it holds, the agent exits, or timeout passes.
func (a *agent) waitFor(what string, timeout time.Duration, cond func() bool) {
	a.t.Helper()
	testenv.WaitFor(a.t, what, timeout, a.exited, func() int { return a.code }, cond)
}

// waitReady waits until /readyz answers 200.
func (a *agent) waitReady() {
	a.t.Helper()
	a.waitFor("/readyz 200", waitLong, func() bool { c, _ := a.readyz(); return c == 200 })
}

// childEvents returns the recording child's log lines.
func (a *agent) childEvents() []string {
	a.t.Helper()
	b, err := os.ReadFile(a.childLog)
	if err != nil && !os.IsNotExist(err) {
		a.t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// childCounts returns how often the child started and how many signals it
// received, and the signal lines.
func (a *agent) childCounts() (starts int, signals []string) {
	for _, l := range a.childEvents() {
		switch {
		case strings.HasPrefix(l, "start "):
			starts++
		case strings.HasPrefix(l, "signal "):
			signals = append(signals, strings.TrimPrefix(l, "signal "))
		}
	}
	return starts, signals
}

// expectChild fails unless the child started exactly once and received
// exactly wantHUP SIGHUPs and no other signal.
func (a *agent) expectChild(when string, wantHUP int) {
	a.t.Helper()
	starts, sigs := a.childCounts()
	if starts != 1 {
		a.t.Errorf("%s: the child started %d times, want once (never restarted)", when, starts)
	}
	if len(sigs) != wantHUP || wantHUP > 0 && strings.Count(strings.Join(sigs, ","), "hangup") != wantHUP {
		a.t.Errorf("%s: the child received signals %q, want %d hangup", when, sigs, wantHUP)
	}
}

// readFile returns path's content, or nil when it cannot be read.
func readFile(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return b
}

// snapshot reads every path.
func snapshot(paths []string) map[string][]byte {
	out := make(map[string][]byte, len(paths))
	for _, p := range paths {
		out[p] = readFile(p)
	}
	return out
}

// diffSnapshot returns the paths whose content differs from want (missing
// files included), sorted by the order of paths.
func diffSnapshot(paths []string, want map[string][]byte) []string {
	var bad []string
	for _, p := range paths {
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want[p]) {
			bad = append(bad, filepath.Base(p))
		}
	}
	return bad
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustf(t *testing.T, err error, format string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
	}
}

// unexpected returns the entries of dir (as dir's base name/entry) that are
// not in want, sorted; none when dir does not exist.
func unexpected(dir string, want ...string) []string {
	ok := map[string]bool{}
	for _, w := range want {
		ok[w] = true
	}
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if !ok[e.Name()] {
			out = append(out, filepath.Base(dir)+"/"+e.Name())
		}
	}
	sort.Strings(out)
	return out
}
