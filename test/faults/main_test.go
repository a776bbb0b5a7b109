//go:build integration

package faults

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testenv"
)

// binPath is the keyward binary, built once for the package with the
// release build's flags.
var binPath string

// helperEnv makes the test binary act as a helper process instead of
// running tests (the pattern of os/exec's tests); its value is the mode.
// (Not KEYWARD_*: keyward keeps its own variables from its child.)
const helperEnv = "FAULTS_HELPER"

// long is set by KEYWARD_FAULTS_LONG=1 (make bench): longer outages and
// more kill -9 iterations.
var long = os.Getenv("KEYWARD_FAULTS_LONG") == "1"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	// The fault tests spend their time waiting on timers, servers and the
	// agents they run, not on CPU: let them all run at once unless
	// -test.parallel was given.
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", "16")
	}
	dir, err := os.MkdirTemp("", "keyward-faults-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if binPath, err = testenv.BuildKeyward(dir); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	code := m.Run()
	stopServers()
	if err := writeSummary(); err != nil {
		fmt.Fprintln(os.Stderr, "fault summary:", err)
	}
	return code
}

// --- helper processes ---

// runHelper runs the test binary as a helper. Mode "child" is the
// workload keyward supervises: it appends "start PID" to the file named by
// $FAULTS_CHILD_LOG, then one line per signal it receives ("signal
// hangup"), and exits 0 on SIGTERM or SIGINT.
func runHelper(mode string) int {
	switch mode {
	case "child":
		return helperChild(os.Getenv("FAULTS_CHILD_LOG"))
	}
	fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
	return 2
}

func helperChild(logPath string) int {
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGINT,
		syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGWINCH, syscall.SIGALRM)
	// One write per line (O_APPEND): the test reads whole lines.
	_, _ = fmt.Fprintf(f, "start %d\n", os.Getpid())
	for s := range sigs {
		_, _ = fmt.Fprintf(f, "signal %s\n", s)
		if s == syscall.SIGTERM || s == syscall.SIGINT {
			return 0
		}
	}
	return 0
}

// childCommand is the agent's command line that runs the recording child,
// and the environment it needs.
func childCommand(logPath string) (args, env []string) {
	return []string{os.Args[0]}, []string{
		helperEnv + "=child",
		"FAULTS_CHILD_LOG=" + logPath,
		// A race-enabled binary otherwise sleeps 1s before it exits.
		"GORACE=atexit_sleep_ms=0",
	}
}

// --- servers, started once per test binary on first use ---

var (
	serversMu sync.Mutex
	stops     []func()
)

func onStop(f func()) {
	serversMu.Lock()
	stops = append(stops, f)
	serversMu.Unlock()
}

func stopServers() {
	serversMu.Lock()
	defer serversMu.Unlock()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
	stops = nil
}

// lazy starts a server once and fails every test that needs it when it
// cannot be started: under the integration tag a missing server is a
// failure, never a skip.
type lazy[T any] struct {
	once sync.Once
	v    T
	err  error
}

func (l *lazy[T]) get(t *testing.T, what string, start func() (T, error)) T {
	t.Helper()
	l.once.Do(func() { l.v, l.err = start() })
	if l.err != nil {
		t.Fatalf("%s is required under the integration tag: %v", what, l.err)
	}
	return l.v
}

var (
	toxiSrv  lazy[*testenv.Toxiproxy]
	vaultSrv lazy[*testenv.Vault]
	motoSrv  lazy[*testenv.Moto]
	kubeSrv  lazy[*testenv.Kube]
	oauthSrv lazy[*testenv.OAuth]
)

const startTimeout = 3 * time.Minute

func toxiproxy(t *testing.T) *testenv.Toxiproxy {
	return toxiSrv.get(t, "toxiproxy (test/servers/toxiproxy.sh)", func() (*testenv.Toxiproxy, error) {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		tp, err := testenv.StartToxiproxy(ctx)
		if err == nil {
			onStop(tp.Stop)
		}
		return tp, err
	})
}

func vault(t *testing.T) *testenv.Vault {
	return vaultSrv.get(t, "Vault (test/servers/vault.sh)", func() (*testenv.Vault, error) {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		dir, err := os.MkdirTemp("", "keyward-faults-vault-")
		if err != nil {
			return nil, err
		}
		v, err := testenv.StartVault(ctx, dir)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		onStop(func() { v.Stop(); os.RemoveAll(dir) })
		return v, nil
	})
}

func moto(t *testing.T) *testenv.Moto {
	return motoSrv.get(t, "moto_server (test/servers/moto.sh)", func() (*testenv.Moto, error) {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		m, err := testenv.StartMoto(ctx)
		if err == nil {
			onStop(m.Stop)
		}
		return m, err
	})
}

func kube(t *testing.T) *testenv.Kube {
	return kubeSrv.get(t, "etcd and kube-apiserver (test/servers/etcd.sh, kube-apiserver.sh)", func() (*testenv.Kube, error) {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		dir, err := os.MkdirTemp("", "keyward-faults-kube-")
		if err != nil {
			return nil, err
		}
		k, err := testenv.StartKube(ctx, dir)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		onStop(func() { k.Stop(); os.RemoveAll(dir) })
		return k, nil
	})
}

// oauthClientSecret is the client secret of the OAuth server's client.
const (
	oauthClientID     = "kw-faults"
	oauthClientSecret = "kw-faults-client-secret-4d1"
)

func oauth(t *testing.T) *testenv.OAuth {
	return oauthSrv.get(t, "oidc-provider (test/servers/oauth.sh)", func() (*testenv.OAuth, error) {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		o, err := testenv.StartOAuth(ctx, []testenv.OAuthClient{{ID: oauthClientID, Secret: oauthClientSecret}})
		if err == nil {
			onStop(o.Close)
		}
		return o, err
	})
}

// --- figures ---

// figures are what a fault test reports: every count is measured, none
// is assumed.
type figures struct {
	// faults is how many faults the agent went through (toxics applied,
	// outages, kills, full-disk or read-only renders refused).
	faults int
	// lost counts observations of a target that was missing, partial, not
	// the last good value, or from two generations at once.
	lost int
	// leftovers counts files and directories keyward left behind (temp
	// files, orphaned ..timestamp directories).
	leftovers int
	// note adds test-specific figures.
	note string
}

var (
	summaryMu sync.Mutex
	summary   = map[string]string{}
)

// report logs f in the test log and keeps it for the summary file.
func report(t *testing.T, f figures) {
	t.Helper()
	line := fmt.Sprintf("%d faults survived, values lost: %d, leftovers: %d", f.faults, f.lost, f.leftovers)
	if f.note != "" {
		line += ", " + f.note
	}
	t.Logf("figures: %s", line)
	if t.Failed() {
		line = "FAILED, " + line
	}
	summaryMu.Lock()
	summary[t.Name()] = line
	summaryMu.Unlock()
}

// writeSummary appends one line per reporting test to
// $KEYWARD_FAULTS_SUMMARY, when set (make test prints it: gotestsum hides
// the log of passing tests).
func writeSummary() error {
	path := os.Getenv("KEYWARD_FAULTS_SUMMARY")
	if path == "" || len(summary) == 0 {
		return nil
	}
	names := make([]string, 0, len(summary))
	for n := range summary {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "faults: %s: %s\n", n, summary[n])
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(b.String())
	return err
}
