package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/child"
	"github.com/keyward/keyward/internal/testenv"
)

// End-to-end tests of keyward agent (and exec with a watch) with the built
// binary: real files, fsnotify, signals and restarts of a real child. They
// wait on the child's output and on the agent's HTTP endpoints, each with
// a deadline, never on a fixed sleep.

const agentWait = 20 * time.Second

// agentProc is a running keyward agent.
type agentProc struct {
	t      *testing.T
	dir    string
	cmd    *exec.Cmd
	lines  chan string // the child's stdout, line by line
	stderr *testenv.LogBuffer
	sock   string
	http   *http.Client
	exited chan struct{}
	code   int
}

// startAgent runs the binary with args in dir; the config's server listens
// on dir/kw.sock.
func startAgent(t *testing.T, dir string, env []string, args ...string) *agentProc {
	t.Helper()
	a := &agentProc{t: t, dir: dir, lines: make(chan string, 1000), stderr: &testenv.LogBuffer{}, exited: make(chan struct{}), sock: filepath.Join(dir, "kw.sock")}
	a.cmd = exec.Command(binPath, args...)
	a.cmd.Dir = dir
	a.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	a.cmd.Stderr = a.stderr
	// Its own process group (shared with the child it supervises), so that
	// a failed test can kill both.
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			a.lines <- sc.Text()
		}
		a.code, _ = child.ExitCode(a.cmd.Wait())
		close(a.exited)
	}()
	a.http = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", a.sock)
	}}}
	t.Cleanup(func() {
		select {
		case <-a.exited:
		default:
			_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
			<-a.exited
		}
		if t.Failed() {
			log := a.stderr.String()
			for i, v := range agentValuesSeen {
				log = strings.ReplaceAll(log, v, fmt.Sprintf("[secret #%d]", i))
			}
			t.Logf("agent stderr (test values redacted):\n%s", log)
		}
		for _, v := range agentValuesSeen {
			if strings.Contains(a.stderr.String(), v) {
				t.Errorf("a secret value (%d bytes) appears in keyward's log", len(v))
			}
		}
	})
	return a
}

// agentValuesSeen are values the tests write as secrets; none may appear
// in keyward's log.
var agentValuesSeen = []string{"s3cr3t-gen-", "pw-env-", "kube-pass-", "recov-val-"}

// expectLine waits for the child's next line and returns it.
func (a *agentProc) nextLine() string {
	a.t.Helper()
	select {
	case l := <-a.lines:
		return l
	case <-a.exited:
		a.t.Fatalf("agent exited (code %d) while a line was expected", a.code)
	case <-time.After(agentWait):
		a.t.Fatal("no line from the child in time")
	}
	return ""
}

// get returns the status and body of GET path on the agent's socket.
func (a *agentProc) get(path string) (int, string, error) {
	resp, err := a.http.Get("http://keyward" + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitFor polls cond (which reads the agent's state: files, endpoints)
// until it holds, the agent exits, or agentWait passes.
func (a *agentProc) waitFor(what string, cond func() bool) {
	a.t.Helper()
	testenv.WaitFor(a.t, what, agentWait, a.exited, func() int { return a.code }, cond)
}

// metric returns the value of the first sample whose line starts with
// prefix (name and labels), or -1.
func (a *agentProc) metric(prefix string) float64 {
	_, body, err := a.get("/metrics")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(l, prefix)), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

func (a *agentProc) ready() bool {
	code, _, err := a.get("/readyz")
	return err == nil && code == 200
}

// stop sends SIGTERM and waits for the exit code.
func (a *agentProc) stop() int {
	a.t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		a.t.Fatal(err)
	}
	select {
	case <-a.exited:
	case <-time.After(agentWait):
		a.t.Fatal("agent did not exit after SIGTERM")
	}
	return a.code
}

// waitWatching waits until the file watch is in place: it reports every
// watched file once when it starts, which costs a second fetch of each.
// A burst written before that could be split by that first fetch.
func (a *agentProc) waitWatching(files int) {
	a.t.Helper()
	a.waitFor("the file watch", func() bool {
		return a.metric(`keyward_provider_requests_total{op="fetch",provider="file",result="ok"}`) >= float64(2*files)
	})
}

// atomicWrite replaces path with content the way an editor or a config
// management tool does: a temp file renamed over it.
func atomicWrite(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

var (
	genRe  = regexp.MustCompile(`^A=s3cr3t-gen-(\d+)\nB=s3cr3t-gen-(\d+)\n$`)
	pairRe = regexp.MustCompile(`^s3cr3t-gen-\d+$`)
)

// TestAgentRotationSignalsChildOncePerBurst rotates a file secret in bursts
// while readers hammer the rendered files: every read sees a whole,
// consistent file (A and B of one generation, the atomic_dir pair of one
// generation), and the child gets exactly one SIGHUP per burst, after the
// burst's last value was rendered.
func TestAgentRotationSignalsChildOncePerBurst(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets.yaml")
	gen := func(n int) string { return fmt.Sprintf("a: s3cr3t-gen-%d\nb: s3cr3t-gen-%d\n", n, n) }
	testenv.WriteFile(t, secrets, gen(0))
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), `version: 1
secrets:
  A: file:secrets.yaml#a
  B: file:secrets.yaml#b
files:
  - path: out/app.env
    secrets: [A, B]
  - {path: pair/a, secret: A, atomic_dir: true}
  - {path: pair/b, secret: B, atomic_dir: true}
on_change: {signal: HUP}
# A burst must fit in the debounce window however loaded the test machine.
watch: {interval: 1h, debounce: 300ms}
server: {listen: "unix:kw.sock"}
`)
	// On HUP the child prints what it reads in the rendered file.
	child := `trap 'echo "hup $(head -n1 out/app.env)"' HUP; trap 'exit 0' TERM; echo started; while :; do sleep 1 & wait $!; done`
	a := startAgent(t, dir, nil, "agent", "-c", "keyward.yaml", "--", "sh", "-c", child)
	if l := a.nextLine(); l != "started" {
		t.Fatalf("child said %q", l)
	}
	a.waitFor("readyz", a.ready)
	a.waitWatching(1)

	// Readers: whole-file reads of app.env, and snapshot reads of the
	// atomic_dir pair through ..data (what a reader of a kubelet volume
	// does); ENOENT is a removed old generation, read again.
	var stop atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	bad := make(chan string, 10)
	report := func(s string) {
		select {
		case bad <- s:
		default:
		}
	}
	wg.Go(func() {
		for !stop.Load() {
			b, err := os.ReadFile(filepath.Join(dir, "out", "app.env"))
			if err != nil {
				report("read app.env: " + err.Error())
				return
			}
			m := genRe.FindStringSubmatch(string(b))
			if m == nil || m[1] != m[2] {
				report(fmt.Sprintf("app.env read as a partial or mixed file (%d bytes)", len(b)))
				return
			}
			reads.Add(1)
		}
	})
	wg.Go(func() {
		for !stop.Load() {
			target, err := os.Readlink(filepath.Join(dir, "pair", "..data"))
			if err != nil {
				report("readlink ..data: " + err.Error())
				return
			}
			snap := filepath.Join(dir, "pair", target)
			va, errA := os.ReadFile(filepath.Join(snap, "a"))
			vb, errB := os.ReadFile(filepath.Join(snap, "b"))
			if os.IsNotExist(errA) || os.IsNotExist(errB) {
				continue
			}
			if errA != nil || errB != nil || string(va) != string(vb) || !pairRe.Match(va) {
				report("the atomic_dir pair was read mixed or partial")
				return
			}
			reads.Add(1)
		}
	})

	const bursts = 6
	for k := 1; k <= bursts; k++ {
		// A burst: three rotations back to back; only the last must show.
		for j := 2; j >= 0; j-- {
			atomicWrite(t, secrets, gen(10*k+j))
		}
		want := fmt.Sprintf("hup A=s3cr3t-gen-%d", 10*k)
		if l := a.nextLine(); l != want {
			t.Fatalf("burst %d: child said %q, want %q (one HUP per burst, after its last value)", k, l, want)
		}
	}
	stop.Store(true)
	wg.Wait()
	select {
	case s := <-bad:
		t.Fatal(s)
	default:
	}
	if reads.Load() < 100 {
		t.Fatalf("only %d reads: the readers did not hammer", reads.Load())
	}
	if got := a.metric(`keyward_change_actions_total{action="signal",result="ok"}`); got != bursts {
		t.Fatalf("signal actions %v, want %d", got, bursts)
	}
	if got := a.metric(`keyward_renders_total{result="ok"}`); got != bursts+1 {
		t.Fatalf("renders %v, want %d (initial + one per burst)", got, bursts+1)
	}
	if code := a.stop(); code != 0 {
		t.Fatalf("agent exit code %d after SIGTERM (child exits 0 on TERM)", code)
	}
	select {
	case l := <-a.lines:
		t.Fatalf("extra line from the child: %q", l)
	default:
	}
}

// TestExecWatchRestartsWithNewEnv: keyward exec with a watch: section
// supervises the child; a rotated env secret restarts it, once per burst,
// with the new value in its environment.
func TestExecWatchRestartsWithNewEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secrets := filepath.Join(dir, "db.json")
	testenv.WriteFile(t, secrets, `{"password": "pw-env-1"}`)
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), `version: 1
secrets:
  DB_PASSWORD: file:db.json#password
env:
  DATABASE_PASSWORD: DB_PASSWORD
watch: {interval: 1h, debounce: 300ms}
server: {listen: "unix:kw.sock"}
`)
	child := `trap 'exit 5' TERM; echo "start ${DATABASE_PASSWORD#pw-env-}"; while :; do sleep 1 & wait $!; done`
	a := startAgent(t, dir, nil, "exec", "-c", "keyward.yaml", "--", "sh", "-c", child)
	if l := a.nextLine(); l != "start 1" {
		t.Fatalf("child said %q", l)
	}
	a.waitWatching(1)
	for k := 2; k <= 4; k++ {
		atomicWrite(t, secrets, `{"password": "pw-env-x"}`)
		atomicWrite(t, secrets, fmt.Sprintf(`{"password": "pw-env-%d"}`, k))
		if l, want := a.nextLine(), fmt.Sprintf("start %d", k); l != want {
			t.Fatalf("child said %q, want %q (one restart per burst, with the new env)", l, want)
		}
	}
	// SIGTERM reaches the child, whose own exit code ends keyward.
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-a.exited
	if a.code != 5 {
		t.Fatalf("exit code %d, want the child's 5", a.code)
	}
}

// TestAgentProviderOutage removes and then corrupts the secrets file for
// several intervals: the rendered file stays as it was, readiness holds
// (nothing expired: the last good value is still valid), the metrics show
// the failure, and the agent recovers by itself.
func TestAgentProviderOutage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secrets := filepath.Join(dir, "creds.yaml")
	testenv.WriteFile(t, secrets, "token: recov-val-1\n")
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), `version: 1
secrets:
  TOKEN: file:creds.yaml#token
files:
  - {path: out/token, secret: TOKEN}
watch: {interval: 200ms, jitter: 0}
server: {listen: "unix:kw.sock"}
`)
	a := startAgent(t, dir, nil, "agent", "-c", "keyward.yaml")
	a.waitFor("readyz", a.ready)
	out := filepath.Join(dir, "out", "token")
	if got := testenv.ReadFile(t, out); got != "recov-val-1" {
		t.Fatalf("token = %q", got)
	}
	const up = `keyward_secret_up{secret="TOKEN"}`
	const fetchErrors = `keyward_errors_total{stage="fetch"}`

	must(t, os.Remove(secrets))
	a.waitFor("the failure in metrics", func() bool { return a.metric(up) == 0 })
	// Several intervals of failure (backoff: 0.5s, 1s, … with jitter).
	a.waitFor("three failed attempts", func() bool { return a.metric(fetchErrors) >= 3 })
	if got := testenv.ReadFile(t, out); got != "recov-val-1" {
		t.Fatal("the rendered file changed while the provider failed")
	}
	if !a.ready() {
		t.Fatal("/readyz went red although no lease expired")
	}
	testenv.WriteFile(t, secrets, "token: [recov-val-broken\n") // corrupted: YAML does not parse
	n := a.metric(fetchErrors)
	a.waitFor("errors on the corrupted file", func() bool { return a.metric(fetchErrors) > n })
	if got := testenv.ReadFile(t, out); got != "recov-val-1" {
		t.Fatal("the rendered file changed while the provider failed")
	}
	atomicWrite(t, secrets, "token: recov-val-2\n")
	a.waitFor("recovery", func() bool { b, _ := os.ReadFile(out); return string(b) == "recov-val-2" })
	a.waitFor("metrics recovered", func() bool { return a.metric(up) == 1 })
	if !strings.Contains(a.stderr.String(), "secret recovered") {
		t.Fatal("recovery not logged")
	}
	if c := strings.Count(a.stderr.String(), "secret check failed"); c < 1 || c > 2 {
		t.Fatalf("the failure was logged %d times within a minute, want at most once per minute (plus the corruption after a recovery)", c)
	}
	if code := a.stop(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	if _, err := os.Lstat(a.sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}

// TestAgentKubeletVolume reads a secret from a directory laid out like a
// kubelet Secret volume and rotates it the way the kubelet does.
func TestAgentKubeletVolume(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	vol := filepath.Join(dir, "vol")
	must(t, os.MkdirAll(vol, 0o755))
	gen := func(name, pass string) {
		d := filepath.Join(vol, name)
		must(t, os.Mkdir(d, 0o755))
		testenv.WriteFile(t, filepath.Join(d, "password"), pass)
	}
	gen("..2026_11_22_00_00_00.000000001", "kube-pass-1")
	must(t, os.Symlink("..2026_11_22_00_00_00.000000001", filepath.Join(vol, "..data")))
	must(t, os.Symlink("..data/password", filepath.Join(vol, "password")))
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), `version: 1
secrets:
  PASS: file:vol/password
files:
  - {path: out/pass, secret: PASS}
watch: {interval: 1h}
server: {listen: "unix:kw.sock"}
`)
	a := startAgent(t, dir, nil, "agent", "-c", "keyward.yaml")
	a.waitFor("readyz", a.ready)
	out := filepath.Join(dir, "out", "pass")
	gen("..2026_11_22_00_01_00.000000002", "kube-pass-2")
	must(t, os.Symlink("..2026_11_22_00_01_00.000000002", filepath.Join(vol, "..data_tmp")))
	must(t, os.Rename(filepath.Join(vol, "..data_tmp"), filepath.Join(vol, "..data")))
	must(t, os.RemoveAll(filepath.Join(vol, "..2026_11_22_00_00_00.000000001")))
	a.waitFor("the swapped value", func() bool { b, _ := os.ReadFile(out); return string(b) == "kube-pass-2" })
	if got := a.metric(`keyward_provider_requests_total{op="fetch",provider="file",result="ok"}`); got > 4 {
		t.Fatalf("%v fetches for one swap: watch events were not debounced", got)
	}
	if code := a.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

func TestAgentUsageAndConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	testenv.WriteFile(t, filepath.Join(dir, "v.yaml"), "k: v-value\n")
	testenv.WriteFile(t, filepath.Join(dir, "signal.yaml"), "version: 1\nsecrets: {K: file:v.yaml#k}\non_change: {signal: HUP}\n")
	testenv.WriteFile(t, filepath.Join(dir, "missing.yaml"), "version: 1\nsecrets: {K: file:nope.yaml#k}\n")
	cases := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no config", []string{"agent"}, 2, []string{"config file is required"}},
		{"argument before --", []string{"agent", "-c", "signal.yaml", "sh"}, 2, []string{"no arguments before --"}},
		{"signal without a child", []string{"agent", "-c", "signal.yaml"}, 78, []string{"signal.yaml", "on_change", "needs a child"}},
		{"secret never appears", []string{"agent", "-c", "missing.yaml", "--init-timeout", "1s"}, 1, []string{"--init-timeout", "K", "not found"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			r := keyward(t, dir, nil, c.args...)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d: %s", r.code, c.code, r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q: %s", w, r.stderr)
				}
			}
			if time.Since(start) > 15*time.Second {
				t.Errorf("took %v", time.Since(start))
			}
		})
	}
}

// TestExecMaskLearnsRotatedValues: with --mask and a watch, a value that
// rotates in is masked before the child can read it from its file, and the
// value it replaced stays masked.
func TestExecMaskLearnsRotatedValues(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secrets := filepath.Join(dir, "db.json")
	testenv.WriteFile(t, secrets, `{"password": "first-password-value"}`)
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), `version: 1
secrets:
  DB_PASSWORD: file:db.json#password
files:
  - {path: out/pw, format: raw, secret: DB_PASSWORD}
watch: {interval: 1h, debounce: 100ms}
on_change: {signal: HUP}
server: {listen: "unix:kw.sock"}
`)
	child := `trap 'echo "now $(cat out/pw) was first-password-value"' HUP; echo ready; while :; do sleep 1 & wait $!; done`
	a := startAgent(t, dir, nil, "exec", "--mask", "-c", "keyward.yaml", "--", "sh", "-c", child)
	if l := a.nextLine(); l != "ready" {
		t.Fatalf("child said %q", l)
	}
	a.waitWatching(1)
	atomicWrite(t, secrets, `{"password": "second-password-value"}`)
	l := a.nextLine()
	if strings.Contains(l, "password-value") {
		t.Fatalf("a rotated or rotated-out value reached the output unmasked (%d bytes)", len(l))
	}
	if l != "now *** was ***" {
		t.Fatalf("child said %q, want both values masked", l)
	}
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-a.exited
}
