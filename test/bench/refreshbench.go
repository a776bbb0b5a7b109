//go:build ignore

// refreshbench is the refresh-token soak (run by test/bench/refresh.sh,
// which `make bench` calls): keyward agent keeps a refresh_token grant
// fresh against oidc-provider with refresh-token rotation (3 s access
// tokens, so a rotation about every 2 s), the refresh token in a file it
// writes back to, and is killed with SIGKILL -n times at random moments,
// half of them aimed at the rotations, then started again. A refresh token
// is lost when the restarted agent's stored one is refused; the file must
// never be torn. It reports kills, rotations, losses, and how long each
// exchange is in flight.
//
// It runs twice: against oidc-provider's own rule (a consumed refresh token
// is refused and its reuse revokes the grant), where a kill in the window
// between the server's rotation and the write-back loses the refresh
// token with any client (the answer dies with the process); and with a
// 30 s reuse grace for consumed refresh tokens (as Okta's and Auth0's
// rotation settings offer), where the restarted agent's stored refresh
// token is still accepted, so none may be lost.
//
// Usage: go run test/bench/refreshbench.go -bin bin/keyward [-n 60]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/keyward/keyward/internal/testenv"
)

func main() {
	bin := flag.String("bin", "bin/keyward", "keyward binary")
	n := flag.Int("n", 60, "kills")
	flag.Parse()
	abs, err := filepath.Abs(*bin)
	check(err)
	for _, grace := range []int{0, 30} {
		if err := soak(abs, *n, grace); err != nil {
			fmt.Fprintln(os.Stderr, "refresh soak:", err)
			os.Exit(1)
		}
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

const resource = "urn:kw:opaque:3"

func soak(bin string, kills, grace int) error {
	ctx := context.Background()
	o, err := testenv.StartOAuth(ctx, nil)
	if err != nil {
		return err
	}
	defer o.Close()
	client := testenv.CodeClient("soak", "soak-client-secret-1")
	client.ReuseGrace = grace
	if err := o.SetClients([]testenv.OAuthClient{client}); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "refreshbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	rtFile := filepath.Join(dir, "refresh_token")
	grant := func() error {
		rt, _, err := o.AuthorizationCode(ctx, client, "read", resource)
		if err != nil {
			return err
		}
		return os.WriteFile(rtFile, []byte(rt), 0o600)
	}
	if err := grant(); err != nil {
		return err
	}
	creds, _ := json.Marshal(map[string]string{"id": client.ID, "secret": client.Secret})
	if err := os.WriteFile(filepath.Join(dir, "client.json"), creds, 0o600); err != nil {
		return err
	}
	conf := `version: 1
tokens:
  soak:
    token_url: ` + o.TokenURL + `
    grant: refresh_token
    refresh_token: file:refresh_token
    client_id: file:client.json#id
    client_secret: file:client.json#secret
    resource: ` + resource + `
    file: out/token
`
	if err := os.WriteFile(filepath.Join(dir, "keyward.yaml"), []byte(conf), 0o600); err != nil {
		return err
	}

	var (
		lost, torn, rotations, aimed int
		inflight                     []time.Duration
	)
	start := time.Now()
	for i := range kills {
		cmd := exec.Command(bin, "agent", "-c", "keyward.yaml", "--log-level", "debug", "--log-format", "json")
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		before, _ := os.ReadFile(rtFile)
		if err := cmd.Start(); err != nil {
			return err
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		// Until the first exchange of this run is done (the token file is
		// rewritten), or the agent exits because its refresh token was
		// refused.
		tokenFile := filepath.Join(dir, "out", "token")
		_ = os.Remove(tokenFile)
		ready, gone := false, false
		for deadline := time.Now().Add(15 * time.Second); !gone && time.Now().Before(deadline); {
			if _, err := os.Stat(tokenFile); err == nil {
				ready = true
				break
			}
			select {
			case <-exited:
				gone = true
			case <-time.After(20 * time.Millisecond):
			}
		}
		if !ready {
			if !gone {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
			}
			if !strings.Contains(stderr.String(), "refused the refresh token") {
				return fmt.Errorf("run %d: the agent did not start and no refresh token was refused:\n%s", i, stderr.String())
			}
			lost++
			if err := grant(); err != nil { // a person authorizes again
				return err
			}
			continue
		}
		// Kill at a random moment: every other kill aimed at the next
		// rotation (2/3 of 3 s ± 5%), the others anywhere in the cycle.
		d := time.Duration(rand.Int64N(int64(3 * time.Second)))
		if i%2 == 1 {
			aimed++
			d = 1850*time.Millisecond + time.Duration(rand.Int64N(int64(300*time.Millisecond)))
		}
		time.Sleep(d)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		after, err := os.ReadFile(rtFile)
		if err != nil || len(after) == 0 || bytes.ContainsAny(after, "\n\x00") {
			torn++
		}
		if !bytes.Equal(before, after) {
			rotations++
		}
		inflight = append(inflight, exchangeTimes(stderr.Bytes())...)
	}
	sort.Slice(inflight, func(a, b int) bool { return inflight[a] < inflight[b] })
	pct := func(p float64) time.Duration {
		if len(inflight) == 0 {
			return 0
		}
		return inflight[int(p*float64(len(inflight)-1))]
	}
	rule := "oidc-provider's rule (reuse of a consumed refresh token revokes the grant)"
	if grace > 0 {
		rule = fmt.Sprintf("a %d s reuse grace for consumed refresh tokens", grace)
	}
	fmt.Printf("refresh-token soak, %s: %d kills (%d aimed at a rotation) in %v, %d runs rotated the stored refresh token\n",
		rule, kills, aimed, time.Since(start).Round(time.Second), rotations)
	fmt.Printf("  lost refresh tokens: %d, torn files: %d\n", lost, torn)
	fmt.Printf("  exchange time, request and write-back included (bounds the loss window): p50 %v, p99 %v, max %v over %d exchanges\n",
		pct(0.5).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), pct(1).Round(10*time.Microsecond), len(inflight))
	if torn > 0 {
		return fmt.Errorf("%d torn refresh token files", torn)
	}
	if grace > 0 && lost > 0 {
		return fmt.Errorf("%d refresh tokens lost although the server accepts a consumed one for %d s", lost, grace)
	}
	return nil
}

// exchangeTimes returns the durations of the exchanges in an agent's JSON
// log (the debug line "token refreshed" carries took: the client
// credential reads, the request and the write-back).
func exchangeTimes(log []byte) []time.Duration {
	var out []time.Duration
	for _, line := range bytes.Split(log, []byte("\n")) {
		var r struct {
			Msg  string `json:"msg"`
			Took int64  `json:"took"` // nanoseconds, as slog's JSON handler writes a Duration
		}
		if json.Unmarshal(line, &r) != nil || r.Msg != "token refreshed" || r.Took <= 0 {
			continue
		}
		out = append(out, time.Duration(r.Took))
	}
	return out
}
