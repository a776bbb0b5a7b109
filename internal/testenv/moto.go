package testenv

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Moto is a moto_server (the AWS emulator) started by StartMoto on a free
// 127.0.0.1 port. Start it once per test package, in TestMain.
type Moto struct {
	// Endpoint is the server's base URL, http://127.0.0.1:PORT, for an
	// SDK client's BaseEndpoint or AWS_ENDPOINT_URL.
	Endpoint string

	proc *Process
	dir  string
}

// motoStartAttempts is how often StartMoto tries a new port when the
// server exits at once (another process took the port in between).
const motoStartAttempts = 3

// StartMoto runs test/servers/moto.sh to locate moto_server, starts it on
// a free loopback port and waits until it answers. A missing moto_server
// is an error, for the caller to fail loudly with. env is added to the
// server's environment (INITIAL_NO_AUTH_ACTION_COUNT=N makes moto check
// signatures and IAM policies after its first N requests). Stop the
// server with Stop.
func StartMoto(ctx context.Context, env ...string) (*Moto, error) {
	bin, err := Binary("moto.sh")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "keyward-moto-")
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range motoStartAttempts {
		port, err := FreePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		endpoint := "http://127.0.0.1:" + strconv.Itoa(port)
		proc, err := Start("moto", dir, []string{bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port)}, env)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		m := &Moto{Endpoint: endpoint, proc: proc, dir: dir}
		// /moto-api/reset answers GET with 400 once the server is up.
		lastErr = WaitHTTP(ctx, proc, endpoint+"/moto-api/reset", 60*time.Second, func(r *http.Response) bool { return r.StatusCode < 500 })
		if lastErr == nil {
			return m, nil
		}
		proc.Stop()
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("starting moto_server: %w", lastErr)
}

// Reset clears every resource of every emulated service (POST
// /moto-api/reset), including IAM users, so that a test starts from an
// empty account.
func (m *Moto) Reset(ctx context.Context) error {
	return m.post(ctx, "/moto-api/reset", "")
}

func (m *Moto) post(ctx context.Context, path, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.Endpoint+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("moto %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("moto %s: %s: %s", path, resp.Status, b)
	}
	return nil
}

// LogTail returns the end of the server's log, for failure messages.
func (m *Moto) LogTail() string { return m.proc.LogTail(4000) }

// Stop stops the server and removes its log directory.
func (m *Moto) Stop() {
	m.proc.Stop()
	os.RemoveAll(m.dir)
}
