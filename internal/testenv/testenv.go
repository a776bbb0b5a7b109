// Package testenv starts the real servers keyward's integration tests run
// against (Vault, moto, kube-apiserver, …) on free loopback ports, once per
// test binary, and stops them by PID when the tests end.
//
// Server binaries are built or installed by the scripts in test/servers/
// into the git-ignored .cache/ directory at the repository root; `make test`
// runs those scripts first. Integration tests carry the build tag
// "integration": under that tag a missing server fails the test run loudly,
// it never skips silently.
package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RepoRoot returns the repository root (the directory holding go.mod).
func RepoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("testenv: cannot locate source file")
	}
	return filepath.Abs(filepath.Join(filepath.Dir(file), "..", ".."))
}

// CacheDir is where test/servers/ scripts put server binaries:
// $KEYWARD_TEST_CACHE, else .cache/ at the repository root.
func CacheDir() (string, error) {
	if d := os.Getenv("KEYWARD_TEST_CACHE"); d != "" {
		return d, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".cache"), nil
}

// Binary runs test/servers/SCRIPT (which builds or installs the server when
// it is not cached, and prints the path of its binary on its last line of
// stdout) and returns that path. Scripts are idempotent and fast when cached.
func Binary(script string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("bash", filepath.Join(root, "test", "servers", script))
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("test/servers/%s: %w", script, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	path := strings.TrimSpace(lines[len(lines)-1])
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("test/servers/%s printed %q: %w", script, path, err)
	}
	return path, nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Process is a server started by Start.
type Process struct {
	Name string
	cmd  *exec.Cmd
	log  *os.File
	once sync.Once
	done chan struct{}
}

// Start runs a server process in its own process group with its output in
// a log file under dir (shown by LogTail when it fails to come up).
func Start(name, dir string, args []string, env []string) (*Process, error) {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = dir
	cmd.SysProcAttr = serverProcAttr(nil)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, cmd: cmd, log: logf, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Pid returns the server's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Stop terminates the server's process group (SIGTERM, then SIGKILL after
// 5 s) and waits for it.
func (p *Process) Stop() {
	p.once.Do(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		p.log.Close()
	})
}

// LogTail returns the last n bytes of the server's log, for failure messages.
func (p *Process) LogTail(n int64) string {
	b, err := os.ReadFile(p.log.Name())
	if err != nil {
		return ""
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return string(b)
}

// WaitHTTP polls url until it answers with a status below 500 other than
// 404 handling left to ok, the process exits, or timeout passes. ok decides
// whether a response means ready; nil accepts any status below 500.
func WaitHTTP(ctx context.Context, p *Process, url string, timeout time.Duration, ok func(*http.Response) bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			ready := resp.StatusCode < 500
			if ok != nil {
				ready = ok(resp)
			}
			resp.Body.Close()
			if ready {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s after %v: %s", p.Name, url, timeout, p.LogTail(2000))
		case <-p.Exited():
			return fmt.Errorf("%s exited before it was ready: %s", p.Name, p.LogTail(2000))
		case <-tick.C:
		}
	}
}
