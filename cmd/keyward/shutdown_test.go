package main

import (
	"strings"
	"syscall"
	"testing"
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
