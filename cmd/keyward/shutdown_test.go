package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testenv"
)

// Stopping keyward is bounded: these tests send the binary the signals an
// orchestrator sends and check that it ends, and how. Each waits with a
// generous deadline (agentWait); what they assert is the way keyward ended,
// not how long it took.

// TestExecSuperviseStopTimeout: under exec --supervise, a child that
// ignores the SIGTERM keyward forwarded is killed with SIGKILL once
// --stop-timeout has passed, and keyward exits with 137, the code of a
// child killed by SIGKILL.
func TestExecSuperviseStopTimeout(t *testing.T) {
	t.Parallel()
	// An ignored signal stays ignored across exec: sleep ignores TERM.
	a := startAgent(t, t.TempDir(), nil, "exec", "--supervise", "--stop-timeout", "1s", "--",
		"sh", "-c", `trap '' TERM; echo ready; exec sleep 300`)
	if l := a.nextLine(); l != "ready" {
		t.Fatalf("child said %q, want ready", l)
	}
	code := a.stop()
	if !a.cmd.ProcessState.Exited() {
		t.Fatalf("keyward itself was killed (%v); want it to exit with the child's code", a.cmd.ProcessState)
	}
	if code != 128+int(syscall.SIGKILL) {
		t.Fatalf("exit code %d after SIGTERM to a child that ignores it; want 137 (child killed by SIGKILL)", code)
	}
	if !strings.Contains(a.stderr.String(), "killing it") {
		t.Errorf("keyward did not log that it killed the child:\n%s", a.stderr.String())
	}
}

// hangingListener accepts connections on 127.0.0.1 and never answers: a
// store whose server is up but stuck (Vault with a sealed storage backend,
// an API server that lost its etcd). accepted receives once per
// connection.
func hangingListener(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String(), ch
}

// TestAgentShutdownBoundedWhileStoreHangs: an agent whose store accepts
// connections and never answers ends after SIGTERM, within
// --shutdown-timeout, with its server running (the server's goroutine is
// one of those the shutdown waits for).
func TestAgentShutdownBoundedWhileStoreHangs(t *testing.T) {
	t.Parallel()
	addr, accepted := hangingListener(t)
	dir := t.TempDir()
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), `version: 1
providers:
  vault:
    kind: vault
    address: http://`+addr+`
secrets:
  A: vault://secret/app#password
files:
  - path: out/a
    format: raw
    secret: A
server:
  listen: unix:`+filepath.Join(dir, "kw.sock")+`
`)
	a := startAgent(t, dir, []string{"VAULT_TOKEN=s.test-token"}, "agent", "-c", "keyward.yaml", "--shutdown-timeout", "1s")
	select {
	case <-accepted:
	case <-a.exited:
		t.Fatalf("agent exited (code %d) before it reached the store", a.code)
	case <-time.After(agentWait):
		t.Fatal("the agent never connected to the store")
	}
	a.waitFor("the server", a.healthy)
	code := a.stop()
	if !a.cmd.ProcessState.Exited() || code != exitRuntime {
		t.Fatalf("agent stopped during its first fetch: %v, want exit code 1 (first render not done)", a.cmd.ProcessState)
	}
	if !strings.Contains(a.stderr.String(), "interrupted") {
		t.Errorf("keyward did not say the first render was interrupted:\n%s", a.stderr.String())
	}
}

func (a *agentProc) healthy() bool {
	code, _, err := a.get("/healthz")
	return err == nil && code == 200
}

// TestAgentQuitWithoutChild: an agent without a child does what a Go
// program does on SIGQUIT: it prints every goroutine's stack to stderr and
// exits with code 2. (With a child, SIGQUIT is forwarded to it.) The dump
// holds no secret value.
func TestAgentQuitWithoutChild(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const value = "s3cr3t-gen-quit"
	testenv.WriteFile(t, filepath.Join(dir, "s.yaml"), "password: "+value+"\n")
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), `version: 1
secrets:
  A: file:s.yaml#password
files:
  - path: out/a
    format: raw
    secret: A
`)
	a := startAgent(t, dir, nil, "agent", "-c", "keyward.yaml")
	a.waitFor("the first render", func() bool {
		_, err := os.Stat(filepath.Join(dir, "out", "a"))
		return err == nil
	})
	if err := a.cmd.Process.Signal(syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.exited:
	case <-time.After(agentWait):
		t.Fatal("agent did not exit after SIGQUIT")
	}
	if !a.cmd.ProcessState.Exited() || a.code != 2 {
		t.Fatalf("agent after SIGQUIT: %v, want exit code 2", a.cmd.ProcessState)
	}
	stderr := a.stderr.String()
	if !strings.Contains(stderr, "SIGQUIT") || !strings.Contains(stderr, "goroutine ") {
		t.Errorf("no goroutine dump after SIGQUIT:\n%s", stderr)
	}
	if strings.Contains(stderr, value) {
		t.Error("leaked value of secret A in the SIGQUIT dump")
	}
}
