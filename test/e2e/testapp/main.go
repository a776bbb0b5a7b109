//go:build linux

// Command testapp stands for the application in keyward's end-to-end
// tests: it runs in a pod on the test node and reports, as JSON lines on
// stdout (read back through the pod's log), what it sees — its user and
// groups, each file's content digest, length, mode and owner (or why it
// cannot read it), each environment variable's digest, and every signal it
// gets. Values are reported only as SHA-256 digests, so no secret reaches
// a log. A file's report names its file system (tmpfs for an in-memory
// volume).
//
//	testapp -files /run/secrets/app/a,/run/secrets/app/b -env DB_PASSWORD \
//	        [-watch] [-exit-on-term 7] [-exit 3]
//
// With -watch it polls the files every -poll and reports each change (with
// the time it saw it). Without -watch and without -wait it exits after the
// first report with the code -exit; otherwise it runs until SIGTERM or
// SIGINT and then exits with -exit-on-term. SIGHUP and SIGUSR1 are
// reported and ignored.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Event is one line of the report.
type Event struct {
	Event  string `json:"event"`
	T      int64  `json:"t"`
	UID    int    `json:"uid,omitempty"`
	GID    int    `json:"gid,omitempty"`
	Groups []int  `json:"groups,omitempty"`
	Name   string `json:"name,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Len    int    `json:"len,omitempty"`
	Mode   string `json:"mode,omitempty"`
	FS     string `json:"fs,omitempty"`
	Owner  *int   `json:"owner,omitempty"`
	Group  *int   `json:"group,omitempty"`
	Set    bool   `json:"set,omitempty"`
	Err    string `json:"err,omitempty"`
	Code   *int   `json:"code,omitempty"`
}

var out = json.NewEncoder(os.Stdout)

func emit(e Event) {
	e.T = time.Now().UnixNano()
	_ = out.Encode(e)
}

func list(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func digest(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// file reports one file; it returns the digest ("" when unreadable).
func file(path string) (Event, string) {
	e := Event{Event: "file", Name: path}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		e.Err = err.Error()
		return e, ""
	}
	uid, gid := int(st.Uid), int(st.Gid)
	e.Mode, e.Owner, e.Group = fmt.Sprintf("%04o", st.Mode&0o7777), &uid, &gid
	var fs syscall.Statfs_t
	if syscall.Statfs(path, &fs) == nil {
		e.FS = fsName(fs.Type)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		e.Err = err.Error()
		return e, ""
	}
	e.SHA256, e.Len = digest(b), len(b)
	return e, e.SHA256
}

// fsName names the file systems the tests tell apart.
func fsName(magic int64) string {
	switch magic {
	case 0x01021994:
		return "tmpfs"
	case 0x794c7630:
		return "overlayfs"
	case 0xef53:
		return "ext4"
	}
	return fmt.Sprintf("0x%x", magic)
}

func main() {
	files := flag.String("files", "", "comma-separated files to report")
	env := flag.String("env", "", "comma-separated environment variables to report")
	watch := flag.Bool("watch", false, "keep polling the files and report each change")
	poll := flag.Duration("poll", 5*time.Millisecond, "polling interval of -watch")
	wait := flag.Bool("wait", false, "after the report, wait for SIGTERM or SIGINT")
	exitCode := flag.Int("exit", 0, "exit code after the report when neither -watch nor -wait is given")
	termCode := flag.Int("exit-on-term", 0, "exit code on SIGTERM or SIGINT")
	flag.Parse()

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1)

	groups, _ := os.Getgroups()
	emit(Event{Event: "start", UID: os.Getuid(), GID: os.Getgid(), Groups: groups})
	last := map[string]string{}
	for _, f := range list(*files) {
		e, d := file(f)
		emit(e)
		last[f] = d
	}
	for _, name := range list(*env) {
		v, ok := os.LookupEnv(name)
		e := Event{Event: "env", Name: name, Set: ok}
		if ok {
			e.SHA256, e.Len = digest([]byte(v)), len(v)
		}
		emit(e)
	}
	emit(Event{Event: "ready"})
	if !*watch && !*wait {
		emit(Event{Event: "exit", Code: exitCode})
		os.Exit(*exitCode)
	}
	var tick <-chan time.Time
	if *watch {
		t := time.NewTicker(*poll)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case s := <-sigs:
			emit(Event{Event: "signal", Name: s.String()})
			if s == syscall.SIGTERM || s == syscall.SIGINT {
				emit(Event{Event: "exit", Code: termCode})
				os.Exit(*termCode)
			}
		case <-tick:
			for _, f := range list(*files) {
				e, d := file(f)
				if d != last[f] {
					last[f] = d
					emit(e)
				}
			}
		}
	}
}
