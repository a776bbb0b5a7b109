package child

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPID1 runs a helper as PID 1 of a new PID namespace, where orphans are
// re-parented to it, and checks that it reaps them and still reports its
// child's own exit code.
func TestPID1(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skipf("unshare(1) not available: %v", err)
	}
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", os.Args[0])
	cmd.Env = helperEnviron("pid1", "KEYWARD_CHILD_TEST_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if bytes.HasPrefix(out, []byte("unshare:")) {
		t.Skipf("cannot make a PID namespace here: %s", bytes.TrimSpace(out))
	}
	if err != nil {
		t.Fatalf("helper as PID 1: %v\n%s", err, out)
	}
	for _, want := range []string{
		"orphan: code=5 err=<nil>",
		"zombies after orphan: []",
		"race: code=6 err=<nil>",
	} {
		if !bytes.Contains(out, []byte(want+"\n")) {
			t.Errorf("helper output lacks %q:\n%s", want, out)
		}
	}
}

// helperPID1 runs as PID 1 in the helper process.
func helperPID1() int {
	if os.Getpid() != 1 {
		fmt.Printf("pid is %d, not 1\n", os.Getpid())
		return 2
	}
	dir := os.Getenv("KEYWARD_CHILD_TEST_DIR")
	env := append(os.Environ(), "D="+dir)

	// An orphan exits while the child runs; the child exits 5 only once
	// the orphan's /proc entry is gone, that is once PID 1 reaped it.
	const orphan = `
( sh -c 'echo $$ > "$D/orphan.tmp"; mv "$D/orphan.tmp" "$D/orphan"' & )
i=0; while [ ! -e "$D/orphan" ]; do i=$((i+1)); [ $i -lt 1000 ] || exit 90; sleep 0.01; done
opid=$(cat "$D/orphan")
i=0; while [ -e /proc/$opid ]; do i=$((i+1)); [ $i -lt 1000 ] || exit 91; sleep 0.01; done
exit 5`
	code, err := Run(context.Background(), Options{Args: []string{"/bin/sh", "-c", orphan}, Env: env, Stdout: os.Stdout, Stderr: os.Stderr})
	fmt.Printf("orphan: code=%d err=%v\n", code, err)
	fmt.Printf("zombies after orphan: %v\n", zombies())

	// Orphans exit at the moment the child does: rounds that reap them
	// also collect the child, whose status must still reach Wait.
	const race = `for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do ( sh -c 'exit 1' & ); done; exit 6`
	code, err = Run(context.Background(), Options{Args: []string{"/bin/sh", "-c", race}, Env: env, Stdout: os.Stdout, Stderr: os.Stderr})
	fmt.Printf("race: code=%d err=%v\n", code, err)
	return 0
}

// zombies lists the processes of this PID namespace in state Z.
func zombies() []string {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var zs []string
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ...; comm may contain spaces and parentheses.
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && strings.HasPrefix(s[i+1:], " Z") {
			zs = append(zs, strings.TrimSpace(s[:i+1]))
		}
	}
	return zs
}
