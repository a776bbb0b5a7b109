package render

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/joho/godotenv"

	"github.com/keyward/keyward/internal/testenv"
)

// The readers of the dotenv dialects, each the real program where it runs
// here (bash, python-dotenv, godotenv, and node's dotenv under the
// integration tag), or, for docker, its rules implemented from its source.

// dotenvReader reads a dotenv file as one dialect's consumer does.
type dotenvReader func(path string) (map[string]string, error)

// coproc is a reader program kept running for many files: a path per line
// on its stdin, one answer per path on its stdout.
type coproc struct {
	mu  sync.Mutex
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startCoproc(tb testing.TB, env []string, name string, args ...string) *coproc {
	tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		in.Close()
		_ = cmd.Wait()
	})
	return &coproc{cmd: cmd, in: in, out: bufio.NewReader(out)}
}

// ask sends path and returns the answer, read by answer.
func (c *coproc) ask(path string, answer func(*bufio.Reader) (map[string]string, error)) (map[string]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := io.WriteString(c.in, path+"\n"); err != nil {
		return nil, err
	}
	return answer(c.out)
}

// bashReader sources the file in bash with set -a, as `set -a; . FILE`
// in an entrypoint does, and reads the exported variables back with
// env -0 (so they are what a child process gets).
func bashReader(tb testing.TB) dotenvReader {
	tb.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		tb.Skip("bash is not installed: the bash dialect is not tested")
	}
	c := startCoproc(tb, nil, "bash", "-c", `while IFS= read -r f; do ( set -a; . "$f"; env -0 ) 2>/dev/null; printf '\0'; done`)
	return func(path string) (map[string]string, error) {
		return c.ask(path, func(r *bufio.Reader) (map[string]string, error) {
			out := map[string]string{}
			for {
				tok, err := r.ReadBytes(0)
				if err != nil {
					return nil, err
				}
				if len(tok) == 1 {
					return out, nil
				}
				k, v, _ := strings.Cut(string(tok[:len(tok)-1]), "=")
				out[k] = v
			}
		})
	}
}

// jsonAnswer reads one line of JSON (an object of strings or nulls).
func jsonAnswer(r *bufio.Reader) (map[string]string, error) {
	line, err := r.ReadBytes('\n')
	if err != nil {
		return nil, err
	}
	var m map[string]*string
	if err := json.Unmarshal(line, &m); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range m {
		if k == "__error__" {
			return nil, fmt.Errorf("reader failed: %s", *v)
		}
		if v != nil {
			out[k] = *v
		}
	}
	return out, nil
}

// pythonReader reads the file with python-dotenv's dotenv_values, with its
// defaults (interpolate=True), as load_dotenv does.
func pythonReader(tb testing.TB) dotenvReader {
	tb.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		tb.Skip("python3 is not installed: the python-dotenv dialect is not tested")
	}
	if out, err := exec.Command("python3", "-c", "import dotenv").CombinedOutput(); err != nil {
		tb.Skipf("python-dotenv is not installed (and PyPI is out of reach here): the python-dotenv dialect is not tested: %s", bytes.TrimSpace(out))
	}
	c := startCoproc(tb, []string{"PYTHONUTF8=1"}, "python3", "-c", `import json, sys
from dotenv import dotenv_values
for line in sys.stdin:
    try:
        out = dotenv_values(line[:-1])
    except Exception as e:
        out = {"__error__": type(e).__name__}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
`)
	return func(path string) (map[string]string, error) { return c.ask(path, jsonAnswer) }
}

// installNodeDotenv says whether nodeReader installs the npm package
// (test/servers/dotenv.sh) when it is missing: under the integration tag.
// Otherwise a missing installation skips the node dialect's tests.
var installNodeDotenv = false

// nodeDotenvVersion is the version test/servers/dotenv.sh installs.
const nodeDotenvVersion = "18.0.10"

// nodeReader reads the file with dotenv.parse of the npm package, pinned
// in test/servers/dotenv/package-lock.json.
func nodeReader(tb testing.TB) dotenvReader {
	tb.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		if installNodeDotenv {
			tb.Fatal("node is not installed: the node dotenv dialect cannot be tested")
		}
		tb.Skip("node is not installed: the node dotenv dialect is not tested")
	}
	var script string
	if installNodeDotenv {
		var err error
		if script, err = testenv.Binary("dotenv.sh"); err != nil {
			tb.Fatal(err)
		}
	} else {
		cache, err := testenv.CacheDir()
		if err != nil {
			tb.Skipf("the node dotenv dialect is not tested: %v", err)
		}
		script = cache + "/dotenv-" + nodeDotenvVersion + "/read.cjs"
		if _, err := os.Stat(script); err != nil {
			tb.Skip("npm's dotenv is not installed (bash test/servers/dotenv.sh, or -tags integration, installs it): the node dotenv dialect is not tested")
		}
	}
	c := startCoproc(tb, nil, "node", script)
	return func(path string) (map[string]string, error) { return c.ask(path, jsonAnswer) }
}

// godotenvReader reads the file with github.com/joho/godotenv's Read.
func godotenvReader(path string) (map[string]string, error) { return godotenv.Read(path) }

// dockerReader reads the file by the rules of `docker run --env-file`,
// implemented here from docker/cli's source (pkg/kvfile/kvfile.go,
// parseKeyValueFile, as of August 2026; earlier releases had the same rules
// in opts/envfile.go) since no docker engine runs here: lines are read with
// a bufio.Scanner (ScanLines: split at \n, one trailing \r dropped, at most
// bufio.MaxScanTokenSize bytes), a line that is not valid UTF-8 fails the
// file, a BOM is removed from the first line, leading whitespace
// (unicode.IsSpace) is trimmed, empty lines and lines starting with # are
// skipped, the key is what precedes the first '=' and must not be empty or
// hold a space or tab, and the value is everything after it, as it is.
func dockerReader(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	out := map[string]string{}
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if !utf8.Valid(line) {
			return nil, fmt.Errorf("invalid utf8 bytes at line %d", n)
		}
		if n == 1 {
			line = bytes.TrimPrefix(line, []byte{0xef, 0xbb, 0xbf})
		}
		s := strings.TrimLeftFunc(string(line), unicode.IsSpace)
		if s == "" || s[0] == '#' {
			continue
		}
		k, v, hasValue := strings.Cut(s, "=")
		switch {
		case k == "":
			return nil, fmt.Errorf("no variable name on line %d", n)
		case strings.ContainsAny(k, " \t"):
			return nil, fmt.Errorf("variable on line %d contains whitespaces", n)
		case hasValue:
			out[k] = v
		}
	}
	return out, sc.Err()
}
