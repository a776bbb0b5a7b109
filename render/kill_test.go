package render

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/keyward/keyward/providers"
)

// The test binary doubles as a keyward-like writer process for the tests
// that kill one with SIGKILL in the middle of a write (the re-exec
// pattern): with helperEnv set, TestMain runs runHelper instead of the
// tests.
const helperEnv = "KEYWARD_RENDER_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper())
	}
	// The copy is made before any test starts a process: an executable
	// written while another goroutine forks can stay open for writing in
	// the child for a moment, and exec then fails with ETXTBSY.
	cleanup := makePublicCopy()
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// helperFiles are what the helper renders under root: two plain files and
// an atomic_dir group of two.
func helperFiles(root string) []File {
	files := []File{
		rawFile(filepath.Join(root, "plain", "p1"), "P1"),
		rawFile(filepath.Join(root, "plain", "p2"), "P2"),
	}
	for _, n := range []string{"a", "b"} {
		files = append(files, File{Path: filepath.Join(root, "atomic", n), Format: FormatRaw, Secret: strings.ToUpper(n), AtomicDir: true, UID: -1, GID: -1})
	}
	return files
}

// helperValue is the content of the file for secret name in generation
// gen: long enough that a write takes a while.
func helperValue(gen int, name string) string {
	head := fmt.Sprintf("gen=%d name=%s ", gen, name)
	return head + strings.Repeat("x", 64<<10-len(head))
}

func helperSecrets(gen int) map[string]providers.Resolved {
	m := map[string]string{}
	for _, n := range []string{"P1", "P2", "A", "B"} {
		m[n] = helperValue(gen, n)
	}
	return resolved(m)
}

// runHelper renders helperFiles into $KEYWARD_RENDER_TEST_HELPER:
// generation $HELPER_GEN once, or, with HELPER_LOOP=1, generation after
// generation until killed, printing each one done. With HELPER_KILL=STEP:N
// it kills itself with SIGKILL at the Nth write or atomic step STEP.
func runHelper() int {
	if os.Getenv("HELPER_WRITE") != "" {
		return runWriteHelper()
	}
	root := os.Getenv(helperEnv)
	gen, _ := strconv.Atoi(os.Getenv("HELPER_GEN"))
	if k := os.Getenv("HELPER_KILL"); k != "" {
		step, n, _ := strings.Cut(k, ":")
		want, _ := strconv.Atoi(n)
		seen := 0
		hit := func(s string) {
			if s == step {
				if seen++; seen == want {
					_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
					select {}
				}
			}
		}
		testHookWriteStep = func(s, _ string) { hit(s) }
		testHookAtomicStep = hit
	}
	files := helperFiles(root)
	for {
		if _, err := Render(files, helperSecrets(gen)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if os.Getenv("HELPER_LOOP") == "" {
			return 0
		}
		fmt.Println(gen)
		gen++
	}
}

func helperCmd(t *testing.T, root string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), append([]string{helperEnv + "=" + root}, env...)...)
	cmd.Stderr = os.Stderr
	return cmd
}

func runHelperOK(t *testing.T, root string, gen int) {
	t.Helper()
	if err := helperCmd(t, root, fmt.Sprintf("HELPER_GEN=%d", gen)).Run(); err != nil {
		t.Fatalf("helper generation %d: %v", gen, err)
	}
}

func killedBySIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// checkConsistent checks that every target holds one whole generation's
// value, the atomic_dir pair the same one, and returns the leftovers: the
// entries of the two directories that are neither a target nor the
// current atomic_dir layout.
func checkConsistent(t *testing.T, root string) (leftovers []string) {
	t.Helper()
	genOf := func(name, content string) int {
		var g int
		if _, err := fmt.Sscanf(content, "gen=%d ", &g); err != nil || content != helperValue(g, name) {
			t.Fatalf("%s: not a whole value of any generation (%d bytes)", name, len(content))
		}
		return g
	}
	for _, n := range []string{"p1", "p2"} {
		genOf(strings.ToUpper(n), readFile(t, filepath.Join(root, "plain", n)))
	}
	ga := genOf("A", readFile(t, filepath.Join(root, "atomic", "a")))
	gb := genOf("B", readFile(t, filepath.Join(root, "atomic", "b")))
	if ga != gb {
		t.Fatalf("atomic_dir files of generations %d and %d", ga, gb)
	}
	expected := map[string][]string{
		"plain":  {"p1", "p2"},
		"atomic": {"a", "b", dataLink, readlink(t, filepath.Join(root, "atomic", dataLink))},
	}
	for dir, want := range expected {
		entries, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !slices.Contains(want, e.Name()) {
				leftovers = append(leftovers, filepath.Join(dir, e.Name()))
			}
		}
	}
	return leftovers
}

// TestKillMidWrite kills a writer process with SIGKILL at every step of a
// write of two plain files and an atomic_dir group, then starts another:
// the targets are always whole and of one generation, and after the
// restart's write nothing of the killed write is left.
func TestKillMidWrite(t *testing.T) {
	t.Parallel()
	kills := []string{
		"opened:1",
		"created:1", "created:2", // the plain files' temp files
		"created:3", "created:4", // the files of the atomic_dir snapshot
		"rename:1", "rename:2",
		"staged:1", "data_tmp:1", "swapped:1", "cleaned:1",
	}
	leftBehind := 0
	for _, kill := range kills {
		root := t.TempDir()
		runHelperOK(t, root, 0)
		err := helperCmd(t, root, "HELPER_GEN=1", "HELPER_KILL="+kill).Run()
		if !killedBySIGKILL(err) {
			t.Fatalf("kill at %s: helper not killed: %v", kill, err)
		}
		left := checkConsistent(t, root)
		leftBehind += len(left)
		// The restart writes generation 1: for some files a change, for
		// the ones the killed process already replaced, none.
		runHelperOK(t, root, 1)
		if left := checkConsistent(t, root); len(left) > 0 {
			t.Errorf("kill at %s: left after the restart: %v", kill, left)
		}
	}
	t.Logf("%d kills at every step: %d leftovers after the kills, 0 after the restarts", len(kills), leftBehind)
	if leftBehind == 0 {
		t.Errorf("no kill left anything behind: the test does not exercise the sweep")
	}
}

// TestKillLoop kills a process that rewrites the files in a loop at
// arbitrary moments, as a crash or an OOM kill would, and restarts it.
func TestKillLoop(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	runHelperOK(t, root, 0)
	const rounds = 20
	gen, leftBehind := 1, 0
	for range rounds {
		cmd := helperCmd(t, root, fmt.Sprintf("HELPER_GEN=%d", gen), "HELPER_LOOP=1")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		for range 1 + rand.IntN(3) {
			if !lines.Scan() {
				t.Fatalf("helper stopped: %v", cmd.Wait())
			}
			gen++
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		gen++
		leftBehind += len(checkConsistent(t, root))
	}
	runHelperOK(t, root, gen)
	if left := checkConsistent(t, root); len(left) > 0 {
		t.Errorf("left after the restart: %v", left)
	}
	t.Logf("%d kills at arbitrary moments: %d leftovers after the kills, 0 after the restart", rounds, leftBehind)
}
