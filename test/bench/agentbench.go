//go:build ignore

// agentbench measures keyward agent with the built binary (run by
// test/bench/agent.sh, which `make bench` calls):
//
//   - propagation latency of a rotated file secret to the rendered file and
//     to the child's SIGHUP, p50/p99 over -n rotations, with the default
//     debounce;
//   - idle resident memory and CPU of an agent holding 100 secrets rendered
//     into 20 files, over -idle.
//
// Usage: go run test/bench/agentbench.go -bin bin/keyward [-n 200] [-idle 60s]
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

func main() {
	if os.Getenv("AGENTBENCH_CHILD") == "1" {
		child()
		return
	}
	bin := flag.String("bin", "bin/keyward", "keyward binary")
	n := flag.Int("n", 200, "rotations for the latency benchmark")
	idle := flag.Duration("idle", 60*time.Second, "idle measurement window")
	flag.Parse()
	abs, err := filepath.Abs(*bin)
	check(err)
	if err := latency(abs, *n); err != nil {
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(1)
	}
	if err := idleCost(abs, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "idle:", err)
		os.Exit(1)
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// child is the workload: on each SIGHUP it prints the time and the content
// of the rendered file.
func child() {
	hup := make(chan os.Signal, 16)
	signal.Notify(hup, syscall.SIGHUP)
	fmt.Println("ready")
	for range hup {
		now := time.Now().UnixNano()
		b, _ := os.ReadFile("out/v")
		fmt.Printf("%d %s\n", now, b)
	}
}

// latency rotates a file secret n times and times the two propagations.
func latency(bin string, n int) error {
	dir, err := os.MkdirTemp("", "agentbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	secrets := filepath.Join(dir, "secrets.yaml")
	write := func(v int) error {
		tmp := secrets + ".tmp"
		if err := os.WriteFile(tmp, fmt.Appendf(nil, "v: rot-%d\n", v), 0o600); err != nil {
			return err
		}
		return os.Rename(tmp, secrets)
	}
	if err := write(0); err != nil {
		return err
	}
	conf := `version: 1
secrets:
  V: file:secrets.yaml#v
files:
  - {path: out/v, secret: V}
on_change: {signal: HUP}
watch: {interval: 1h}
server: {listen: "unix:kw.sock"}
`
	if err := os.WriteFile(filepath.Join(dir, "keyward.yaml"), []byte(conf), 0o600); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "agent", "-c", "keyward.yaml", "--log-level", "warn", "--", self)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "AGENTBENCH_CHILD=1")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	if l, err := next(lines); err != nil || l != "ready" {
		return fmt.Errorf("child: %q %v", l, err)
	}
	// Wait for the file watch (its first notification costs a second fetch).
	if err := waitMetric(dir, `keyward_provider_requests_total{op="fetch",provider="file",result="ok"}`, 2); err != nil {
		return err
	}

	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.Add(filepath.Join(dir, "out")); err != nil {
		return err
	}
	rendered := filepath.Join(dir, "out", "v")
	var toFile, toSignal []time.Duration
	for i := 1; i <= n; i++ {
		want := fmt.Sprintf("rot-%d", i)
		start := time.Now()
		if err := write(i); err != nil {
			return err
		}
		// The rendered file: wait for its events until it holds the value.
		deadline := time.After(10 * time.Second)
		for {
			if b, _ := os.ReadFile(rendered); string(b) == want {
				toFile = append(toFile, time.Since(start))
				break
			}
			select {
			case <-w.Events:
			case err := <-w.Errors:
				return err
			case <-deadline:
				return fmt.Errorf("rotation %d: rendered file not updated", i)
			}
		}
		l, err := next(lines)
		if err != nil {
			return fmt.Errorf("rotation %d: %w", i, err)
		}
		ts, content, _ := strings.Cut(l, " ")
		if content != want {
			return fmt.Errorf("rotation %d: the child read %q at its SIGHUP", i, content)
		}
		ns, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			return err
		}
		toSignal = append(toSignal, time.Unix(0, ns).Sub(start))
	}
	fmt.Printf("propagation over %d rotations of a watched file secret (default debounce %v):\n", n, 40*time.Millisecond)
	report("  secret file -> rendered file", toFile)
	report("  secret file -> child SIGHUP ", toSignal)
	return nil
}

func next(lines <-chan string) (string, error) {
	select {
	case l, ok := <-lines:
		if !ok {
			return "", errors.New("child output ended")
		}
		return l, nil
	case <-time.After(10 * time.Second):
		return "", errors.New("no line from the child")
	}
}

func report(name string, d []time.Duration) {
	sort.Slice(d, func(a, b int) bool { return d[a] < d[b] })
	q := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	fmt.Printf("%s  p50 %6.1fms  p99 %6.1fms  max %6.1fms\n", name, ms(q(0.50)), ms(q(0.99)), ms(d[len(d)-1]))
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func client(dir string) *http.Client {
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(dir, "kw.sock"))
	}}}
}

// waitMetric polls the agent's /metrics until the sample reaches min.
func waitMetric(dir, sample string, min float64) error {
	c := client(dir)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := c.Get("http://keyward/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, sample+" "); ok {
					if f, _ := strconv.ParseFloat(v, 64); f >= min {
						return nil
					}
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not reach %v", sample, min)
}

// idleCost runs an agent with 100 secrets (20 source files of 5 keys)
// rendered into 20 dotenv files, lets it settle, and measures its CPU time
// and resident memory over window.
func idleCost(bin string, window time.Duration) error {
	dir, err := os.MkdirTemp("", "agentbench-idle-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var conf strings.Builder
	conf.WriteString("version: 1\nsecrets:\n")
	files := "files:\n"
	for f := range 20 {
		var src strings.Builder
		var names []string
		for k := range 5 {
			fmt.Fprintf(&src, "k%d: value-%d-%d-%s\n", k, f, k, strings.Repeat("x", 24))
			name := fmt.Sprintf("S%02d_%d", f, k)
			names = append(names, name)
			fmt.Fprintf(&conf, "  %s: file:src/s%02d.yaml#k%d\n", name, f, k)
		}
		if err := os.MkdirAll(filepath.Join(dir, "src"), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "src", fmt.Sprintf("s%02d.yaml", f)), []byte(src.String()), 0o600); err != nil {
			return err
		}
		files += fmt.Sprintf("  - {path: out/f%02d.env, secrets: [%s]}\n", f, strings.Join(names, ", "))
	}
	conf.WriteString(files)
	conf.WriteString("server: {listen: \"unix:kw.sock\"}\n")
	if err := os.WriteFile(filepath.Join(dir, "keyward.yaml"), []byte(conf.String()), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(bin, "agent", "-c", "keyward.yaml", "--log-level", "warn")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	if err := waitMetric(dir, `keyward_provider_requests_total{op="fetch",provider="file",result="ok"}`, 40); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // settle: the initial watch fetches and GC
	pid := cmd.Process.Pid
	cpu0, err := cpuTime(pid)
	if err != nil {
		return err
	}
	start := time.Now()
	var maxRSS, lastRSS int64
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for time.Since(start) < window {
		<-tick.C
		rss, err := rssKiB(pid)
		if err != nil {
			return err
		}
		lastRSS, maxRSS = rss, max(maxRSS, rss)
	}
	cpu1, err := cpuTime(pid)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	fmt.Printf("idle agent, 100 secrets in 20 files (20 watched source files), over %v:\n", elapsed.Round(time.Second))
	fmt.Printf("  CPU %.3f ms per second (%v in total)\n", float64(cpu1-cpu0)/1e6/elapsed.Seconds(), (cpu1 - cpu0).Round(time.Microsecond))
	fmt.Printf("  RSS %.1f MiB at the end, %.1f MiB at most\n", float64(lastRSS)/1024, float64(maxRSS)/1024)
	return nil
}

// cpuTime sums the CPU time of every thread of pid (schedstat, ns).
func cpuTime(pid int) (time.Duration, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var total int64
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // the thread ended
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, err
		}
		total += ns
	}
	return time.Duration(total), nil
}

func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}
