//go:build ignore

// buffering measures how real programs write to a pipe, which is what
// keyward exec --mask reads: the size of the writes of block-buffered
// programs (C stdio, Python, Perl, Go's bufio, Node, Java), and how far
// apart the pieces of one value arrive when an unbuffered program (a shell
// program) writes it in two write calls, on an idle machine and with
// every core busy. It reads like os/exec does (32 KiB reads), so a read is
// one write of the program unless the program outruns the reader.
//
// Usage: go run test/bench/buffering.go [-n 2000]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// A writer is a program that prints lines to stdout without flushing.
type writer struct {
	name  string
	build func(dir string) ([]string, error) // argv, after any compile step
}

const lines = 3000 // ~100 KB of output

func main() {
	n := flag.Int("n", 2000, "split values written by the shell, per run")
	flag.Parse()
	dir, err := os.MkdirTemp("", "keyward-buffering-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)

	line := `log line %d: user=42 action=refresh token=sk_live_4eC39HqLyjWDarjtT1zdp7dc\n`
	writers := []writer{
		{"C stdio (printf)", func(dir string) ([]string, error) {
			src := filepath.Join(dir, "w.c")
			os.WriteFile(src, []byte(fmt.Sprintf("#include <stdio.h>\nint main(void){for(int i=0;i<%d;i++)printf(\"%s\",i);return 0;}\n", lines, line)), 0o600)
			bin := filepath.Join(dir, "cw")
			return []string{bin}, run("cc", "-O2", "-o", bin, src)
		}},
		{"Python 3 (print)", func(string) ([]string, error) {
			return []string{"python3", "-c", fmt.Sprintf("for i in range(%d): print(%q %% i, end='')", lines, strings.ReplaceAll(line, `%d`, `%d`))}, nil
		}},
		{"Perl (print)", func(string) ([]string, error) {
			return []string{"perl", "-e", fmt.Sprintf(`for my $i (0..%d) { printf("%s", $i) }`, lines-1, strings.ReplaceAll(line, `$`, `\$`))}, nil
		}},
		{"Go (bufio.Writer)", func(dir string) ([]string, error) {
			src := filepath.Join(dir, "w.go")
			os.WriteFile(src, []byte(fmt.Sprintf("package main\nimport (\"bufio\";\"fmt\";\"os\")\nfunc main(){w:=bufio.NewWriter(os.Stdout);for i:=0;i<%d;i++{fmt.Fprintf(w,\"%s\",i)};w.Flush()}\n", lines, line)), 0o600)
			bin := filepath.Join(dir, "gow")
			return []string{bin}, run("go", "build", "-o", bin, src)
		}},
		{"Node (process.stdout.write)", func(string) ([]string, error) {
			return []string{"node", "-e", fmt.Sprintf("for (let i=0;i<%d;i++) process.stdout.write(`%s`.replace('%%d', i))", lines, strings.ReplaceAll(line, `\n`, `\n`))}, nil
		}},
		{"Java (System.out.print)", func(dir string) ([]string, error) {
			src := filepath.Join(dir, "W.java")
			os.WriteFile(src, []byte(fmt.Sprintf("public class W{public static void main(String[] a){for(int i=0;i<%d;i++)System.out.print(String.format(\"%s\",i));}}\n", lines, line)), 0o600)
			return []string{"java", src}, nil
		}},
	}
	fmt.Println("write sizes seen on a pipe (32 KiB reads), most frequent first:")
	for _, w := range writers {
		argv, err := w.build(dir)
		if err == nil {
			_, err = exec.LookPath(argv[0])
		}
		if err != nil {
			fmt.Printf("  %-28s skipped: %v\n", w.name, err)
			continue
		}
		sizes, _, err := reads(argv)
		if err != nil {
			fmt.Printf("  %-28s %v\n", w.name, err)
			continue
		}
		fmt.Printf("  %-28s %s\n", w.name, histogram(sizes))
	}

	// A program writing a value in two write calls, then pausing 2 ms (so
	// the reader waits on an empty pipe): how far apart the two halves
	// arrive, with and without every core busy.
	src := filepath.Join(dir, "split.c")
	os.WriteFile(src, []byte(fmt.Sprintf(`#include <unistd.h>
int main(void){for(int i=0;i<%d;i++){write(1,"token=sk_live_4eC3",18);write(1,"9HqLyjWDarjtT1zdp7dc\n",21);usleep(2000);}return 0;}
`, *n)), 0o600)
	split := filepath.Join(dir, "split")
	if err := run("cc", "-O2", "-o", split, src); err != nil {
		fatal(err)
	}
	for _, busy := range []bool{false, true} {
		stop := func() {}
		label := "idle machine"
		if busy {
			ctx, cancel := context.WithCancel(context.Background())
			for range runtime.NumCPU() * 2 {
				go func() {
					for ctx.Err() == nil {
					}
				}()
			}
			stop = cancel
			label = fmt.Sprintf("%d busy threads on %d cores", runtime.NumCPU()*2, runtime.NumCPU())
		}
		_, gaps, err := reads([]string{split})
		stop()
		if err != nil {
			fatal(err)
		}
		if len(gaps) == 0 {
			fmt.Printf("value in two write calls, %s: the halves always arrived together\n", label)
			continue
		}
		sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
		q := func(p float64) time.Duration { return gaps[min(len(gaps)-1, int(p*float64(len(gaps))))] }
		fmt.Printf("value in two write calls, %s: %d of %d split, gap p50 %v, p99 %v, p99.9 %v, max %v\n",
			label, len(gaps), *n, q(0.5).Round(time.Microsecond), q(0.99).Round(time.Microsecond), q(0.999).Round(time.Microsecond), gaps[len(gaps)-1].Round(time.Microsecond))
	}
}

// reads runs argv with stdout to a pipe and returns the size of each read
// and, for each read that starts with "9Hq", the time since the previous
// read.
func reads(argv []string) (sizes []int, gaps []time.Duration, err error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=") // measure Python's own buffering
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	buf := make([]byte, 32<<10)
	last := time.Now()
	for {
		n, rerr := out.Read(buf)
		now := time.Now()
		if n > 0 {
			sizes = append(sizes, n)
			if strings.HasPrefix(string(buf[:n]), "9Hq") {
				gaps = append(gaps, now.Sub(last))
			}
		}
		last = now
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, nil, rerr
		}
	}
	return sizes, gaps, cmd.Wait()
}

// histogram prints the most frequent sizes with their counts.
func histogram(sizes []int) string {
	count := map[int]int{}
	for _, s := range sizes {
		count[s]++
	}
	keys := make([]int, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return count[keys[i]] > count[keys[j]] || count[keys[i]] == count[keys[j]] && keys[i] < keys[j]
	})
	var parts []string
	for i, k := range keys {
		if i == 4 {
			parts = append(parts, fmt.Sprintf("… (%d sizes)", len(keys)))
			break
		}
		parts = append(parts, fmt.Sprintf("%d B ×%d", k, count[k]))
	}
	return fmt.Sprintf("%d writes: %s", len(sizes), strings.Join(parts, ", "))
}

func run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	return cmd.Run()
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "buffering:", err)
	os.Exit(1)
}
