//go:build integration

package faults

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// killKeys is how many secrets the kill test renders into each target.
const killKeys = 8

// TestKill9DuringRotations kills the agent with SIGKILL at random moments
// while a file secret rotates every few milliseconds, and restarts it, in
// a loop. After every kill each target must be whole and consistent: the
// dotenv and JSON files parse and hold all keys of one generation, and
// the atomic_dir group's files all come from one generation. At the end
// (rotations stopped, the agent restarted once more) the targets hold the
// last generation and no temp file, ..data_tmp link or orphaned
// ..timestamp directory is left.
func TestKill9DuringRotations(t *testing.T) {
	t.Parallel()
	iterations := 50
	if long {
		iterations = 250
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src.yaml")
	suffix := randHex(6)
	var gen atomic.Int64
	writeGen := func(n int64) {
		var b strings.Builder
		for i := range killKeys {
			fmt.Fprintf(&b, "k%d: g%d-k%d-%s\n", i, n, i, suffix)
		}
		tmp := filepath.Join(dir, ".src.yaml.writing")
		must(t, os.WriteFile(tmp, []byte(b.String()), 0o600))
		must(t, os.Rename(tmp, src))
	}
	writeGen(0)

	var cfg strings.Builder
	cfg.WriteString("version: 1\nsecrets:\n")
	names := make([]string, killKeys)
	for i := range killKeys {
		names[i] = fmt.Sprintf("K%d", i)
		fmt.Fprintf(&cfg, "  K%d: file:src.yaml#k%d\n", i, i)
	}
	list := strings.Join(names, ", ")
	fmt.Fprintf(&cfg, "files:\n  - {path: out/app.env, secrets: [%s]}\n  - {path: out/app.json, secrets: [%s]}\n  - {path: out/raw, secret: K0}\n", list, list)
	for i := range killKeys {
		fmt.Fprintf(&cfg, "  - {path: pair/k%d, secret: K%d, atomic_dir: true}\n", i, i)
	}
	cfg.WriteString("watch: {interval: 1h, debounce: 5ms}\n")

	// The rotations: a new generation every 10ms, for the whole loop.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				writeGen(gen.Add(1))
			}
		}
	})
	stopRotations := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopRotations)

	c := &consistency{dir: dir, suffix: suffix}
	var fig figures
	rendered := false // a first render finished: every target must exist from now on
	debris := 0       // kills that left keyward's temp files or directories behind
	seenLeft := map[string]bool{}
	for i := range iterations {
		a := startAgent(t, dir, agentOptions{config: cfg.String(), quiet: true})
		time.Sleep(randDuration(300 * time.Millisecond))
		a.kill()
		fig.faults++
		if !rendered {
			rendered = c.exists()
		}
		if rendered {
			if bad := c.check(); len(bad) > 0 {
				fig.lost++
				t.Errorf("kill %d: %s", i, strings.Join(bad, "; "))
			}
		}
		fresh := false
		for _, l := range c.leftovers() {
			if !seenLeft[l] {
				seenLeft[l], fresh = true, true
			}
		}
		if fresh {
			debris++
		}
		if t.Failed() {
			break
		}
	}
	stopRotations()
	last := gen.Load()

	a := startAgent(t, dir, agentOptions{config: cfg.String()})
	a.waitReady()
	a.waitFor("the last generation", waitLong, func() bool { return c.generation() == last })
	if code := a.stop(); code != 0 {
		t.Errorf("agent exit code %d after SIGTERM, want 0", code)
	}
	if bad := c.check(); len(bad) > 0 {
		fig.lost++
		t.Errorf("after the last restart: %s", strings.Join(bad, "; "))
	}
	left := c.leftovers()
	fig.leftovers = len(left)
	if len(left) > 0 {
		t.Errorf("leftovers after the restart: %q", left)
	}
	fig.note = fmt.Sprintf("rotations: %d, kills that left debris for the next start: %d", last, debris)
	report(t, fig)
}

// consistency checks the kill test's targets in dir.
type consistency struct {
	dir, suffix string
}

var killValue = regexp.MustCompile(`^g(\d+)-k(\d)-([0-9a-f]+)$`)

// value parses one rendered value: its generation, for key i.
func (c *consistency) value(v string, i int) (int64, error) {
	m := killValue.FindStringSubmatch(v)
	if m == nil || m[2] != strconv.Itoa(i) || m[3] != c.suffix {
		return 0, fmt.Errorf("not a value of key k%d", i)
	}
	return strconv.ParseInt(m[1], 10, 64)
}

func (c *consistency) exists() bool {
	for _, p := range []string{"out/app.env", "out/app.json", "out/raw", "pair/k0"} {
		if _, err := os.Stat(filepath.Join(c.dir, p)); err != nil {
			return false
		}
	}
	return true
}

// generation returns the generation of the atomic_dir group, or -1.
func (c *consistency) generation() int64 {
	g, err := c.group()
	if err != nil {
		return -1
	}
	return g
}

// group reads pair/k0..k7 and returns their one generation.
func (c *consistency) group() (int64, error) {
	var gen int64 = -1
	for i := range killKeys {
		p := filepath.Join(c.dir, "pair", fmt.Sprintf("k%d", i))
		if target, err := os.Readlink(p); err != nil || target != fmt.Sprintf("..data/k%d", i) {
			return 0, fmt.Errorf("pair/k%d is not the ..data/k%d link (%v)", i, i, err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return 0, fmt.Errorf("pair/k%d: %v", i, err)
		}
		g, err := c.value(string(b), i)
		if err != nil {
			return 0, fmt.Errorf("pair/k%d: %v", i, err)
		}
		if gen >= 0 && g != gen {
			return 0, fmt.Errorf("the atomic_dir group mixes generations %d and %d", gen, g)
		}
		gen = g
	}
	return gen, nil
}

// check returns what is wrong with the targets: missing, partial, or
// mixing generations.
func (c *consistency) check() []string {
	var bad []string
	if _, err := c.group(); err != nil {
		bad = append(bad, err.Error())
	}
	// dotenv: KEY=VALUE lines (a plain value needs no quotes).
	if b, err := os.ReadFile(filepath.Join(c.dir, "out", "app.env")); err != nil {
		bad = append(bad, "app.env: "+err.Error())
	} else {
		vals := map[string]string{}
		for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			k, v, _ := strings.Cut(l, "=")
			vals[k] = strings.Trim(v, `'"`)
		}
		if err := c.oneGeneration(vals); err != nil {
			bad = append(bad, "app.env: "+err.Error())
		}
	}
	if b, err := os.ReadFile(filepath.Join(c.dir, "out", "app.json")); err != nil {
		bad = append(bad, "app.json: "+err.Error())
	} else {
		var vals map[string]string
		if err := json.Unmarshal(b, &vals); err != nil {
			bad = append(bad, "app.json does not parse: "+err.Error())
		} else if err := c.oneGeneration(vals); err != nil {
			bad = append(bad, "app.json: "+err.Error())
		}
	}
	if b, err := os.ReadFile(filepath.Join(c.dir, "out", "raw")); err != nil {
		bad = append(bad, "raw: "+err.Error())
	} else if _, err := c.value(string(b), 0); err != nil {
		bad = append(bad, "raw: "+err.Error())
	}
	return bad
}

func (c *consistency) oneGeneration(vals map[string]string) error {
	if len(vals) != killKeys {
		return fmt.Errorf("%d keys, want %d", len(vals), killKeys)
	}
	var gen int64 = -1
	for i := range killKeys {
		g, err := c.value(vals[fmt.Sprintf("K%d", i)], i)
		if err != nil {
			return fmt.Errorf("K%d: %v", i, err)
		}
		if gen >= 0 && g != gen {
			return fmt.Errorf("mixes generations %d and %d", gen, g)
		}
		gen = g
	}
	return nil
}

// leftovers lists every entry of out/ and pair/ that is not a target,
// ..data or the snapshot directory ..data points to: what interrupted
// writes left (temp files, a ..data_tmp link, orphaned snapshots), whatever
// keyward names them.
func (c *consistency) leftovers() []string {
	pair := []string{"..data"}
	for i := range killKeys {
		pair = append(pair, fmt.Sprintf("k%d", i))
	}
	if data, err := os.Readlink(filepath.Join(c.dir, "pair", "..data")); err == nil {
		pair = append(pair, data)
	}
	return append(unexpected(filepath.Join(c.dir, "out"), "app.env", "app.json", "raw"),
		unexpected(filepath.Join(c.dir, "pair"), pair...)...)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// randDuration returns a uniformly random duration in [0, max).
func randDuration(max time.Duration) time.Duration {
	n, _ := rand.Int(rand.Reader, big.NewInt(int64(max)))
	return time.Duration(n.Int64())
}
