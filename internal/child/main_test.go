package child

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// helperEnv, when set, makes the test binary act as a helper process (the
// pattern of os/exec's tests): it runs the named scenario with os.Args[1:]
// and exits, so Exec, PID 1 and a controlling terminal can be tested
// without changing the test process itself.
const helperEnv = "KEYWARD_CHILD_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Args[1:]))
	}
	// A developer's terminal must not change what the signal tests see;
	// the terminal case has its own test in a helper process.
	openTerminal = func() int { return -1 }
	ioDrainTimeout = 300 * time.Millisecond
	os.Exit(m.Run())
}

func runHelper(mode string, args []string) int {
	switch mode {
	case "exec":
		var env []string
		if p, ok := os.LookupEnv("KEYWARD_CHILD_TEST_PATH"); ok {
			env = append(os.Environ(), "PATH="+p)
		}
		err := Exec(args, env)
		fmt.Fprintln(os.Stderr, err)
		if code, ok := ExitCode(err); ok {
			return code
		}
		return 1
	case "pid1":
		return helperPID1()
	case "tty":
		code, err := Run(context.Background(), Options{
			Args:   args,
			Stdin:  os.Stdin,
			Stdout: os.Stdout,
			Stderr: os.Stderr,
		})
		fmt.Printf("code=%d err=%v\n", code, err)
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
	return 2
}

// helperCommand returns a command that runs the test binary as the helper
// for mode, with args after it.
func helperCommand(mode string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = helperEnviron(mode)
	return cmd
}

func helperEnviron(mode string, extra ...string) []string {
	// A race-enabled binary otherwise sleeps 1s before it exits.
	env := append(os.Environ(), helperEnv+"="+mode, "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	return append(env, extra...)
}

// trapScript is a shell script that prints "ready", then prints the name of
// each of sigs it receives, and prints "bye" and exits 0 when its stdin
// reaches EOF. It waits in the wait builtin, which trapped signals interrupt.
func trapScript(sigs ...string) string {
	var b strings.Builder
	for _, s := range sigs {
		fmt.Fprintf(&b, "trap 'echo %s' %s\n", s, s)
	}
	b.WriteString(`exec 3<&0
cat <&3 >/dev/null 2>&1 &
pid=$!
echo ready
while :; do wait $pid; [ $? -gt 128 ] || break; done
echo bye
`)
	return b.String()
}

// running is a Run in progress whose child reads stdin from a pipe and
// writes stdout to another, both passed as files.
type running struct {
	t      *testing.T
	stdin  *os.File // write end: closing it ends a trapScript child
	outR   *os.File
	out    *bufio.Reader
	result chan runResult
}

type runResult struct {
	code int
	err  error
}

func startRun(t *testing.T, ctx context.Context, opts Options) *running {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	opts.Stdin, opts.Stdout = inR, outW
	r := &running{t: t, stdin: inW, outR: outR, out: bufio.NewReader(outR), result: make(chan runResult, 1)}
	go func() {
		code, err := Run(ctx, opts)
		inR.Close()
		outW.Close()
		r.result <- runResult{code, err}
	}()
	t.Cleanup(func() {
		inW.Close()
		outR.Close()
	})
	return r
}

// line reads the child's next line of output, failing after 10s.
func (r *running) line() string {
	r.t.Helper()
	if err := r.outR.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		r.t.Fatal(err)
	}
	s, err := r.out.ReadString('\n')
	if err != nil {
		r.t.Fatalf("reading the child's output: %v (read %q)", err, s)
	}
	return strings.TrimSuffix(s, "\n")
}

func (r *running) expect(want string) {
	r.t.Helper()
	if got := r.line(); got != want {
		r.t.Fatalf("child printed %q, want %q", got, want)
	}
}

// wait returns Run's result, failing after 10s.
func (r *running) wait() (int, error) {
	r.t.Helper()
	select {
	case res := <-r.result:
		return res.code, res.err
	case <-time.After(10 * time.Second):
		r.t.Fatal("Run did not return")
		return 0, nil
	}
}
