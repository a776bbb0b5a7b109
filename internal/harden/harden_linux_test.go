package harden

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary, re-executed, run DisableCoreDumps on
// itself, so the test process keeps its own limits and dumpability.
const helperEnv = "KEYWARD_HARDEN_TEST_HELPER"

func TestDisableCoreDumps(t *testing.T) {
	if os.Getenv(helperEnv) == "1" {
		checkDisabled(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDisableCoreDumps$", "-test.v", "-test.count=1")
	// GORACE: a race-enabled binary otherwise sleeps 1s before exiting.
	cmd.Env = append(os.Environ(), helperEnv+"=1", "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper process: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "core soft limit 0, dumpable 0, child core limit 0, restored for child") {
		t.Fatalf("helper process did not run the checks:\n%s", out)
	}
}

// checkDisabled runs in the helper process.
func checkDisabled(t *testing.T) {
	childLimit := func() string {
		out, err := exec.Command("/bin/sh", "-c", "ulimit -c").Output()
		if err != nil {
			t.Fatalf("sh: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &orig); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	if orig.Cur == 0 {
		// Make the restore observable: start from a non-zero soft limit.
		orig.Cur = min(orig.Max, 1<<20)
		if err := unix.Setrlimit(unix.RLIMIT_CORE, &orig); err != nil {
			t.Fatalf("setrlimit: %v", err)
		}
	}
	before := childLimit()
	if err := DisableCoreDumps(); err != nil {
		t.Fatalf("DisableCoreDumps: %v", err)
	}
	if err := DisableCoreDumps(); err != nil {
		t.Fatalf("DisableCoreDumps, second call: %v", err)
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &lim); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	if lim.Cur != 0 || lim.Max != orig.Max {
		t.Errorf("RLIMIT_CORE = %d/%d, want 0/%d", lim.Cur, lim.Max, orig.Max)
	}
	dumpable, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil {
		t.Fatalf("prctl PR_GET_DUMPABLE: %v", err)
	}
	if dumpable != 0 {
		t.Errorf("PR_GET_DUMPABLE = %d, want 0", dumpable)
	}
	during := childLimit()
	if during != "0" {
		t.Errorf("child's ulimit -c while secrets are held = %q, want 0", during)
	}
	if err := ChildCoreLimit(); err != nil {
		t.Fatalf("ChildCoreLimit: %v", err)
	}
	after := childLimit()
	if after != before {
		t.Errorf("child's ulimit -c after ChildCoreLimit = %q, want the original %q", after, before)
	}
	if d, _ := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); d != 0 {
		t.Errorf("ChildCoreLimit made keyward dumpable again")
	}
	t.Logf("core soft limit %d, dumpable %d, child core limit %s, restored for child", lim.Cur, dumpable, during)
}
