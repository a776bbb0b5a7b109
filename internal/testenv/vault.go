package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"time"
)

// VaultRootToken is the root token of the dev servers StartVault runs.
const VaultRootToken = "root"

// Vault is a HashiCorp Vault dev server (in-memory storage, unsealed, root
// token VaultRootToken) started by StartVault.
type Vault struct {
	// Addr is the server's URL, http://127.0.0.1:PORT.
	Addr string
	// Port is the loopback port it listens on.
	Port int
	// Proc is the running server.
	Proc *Process

	bin, dir string
	starts   int
}

// StartVault builds or reuses the Vault binary (test/servers/vault.sh) and
// starts a dev server on a free loopback port, its log in dir, and waits
// until it answers /v1/sys/health. The caller stops it with Stop.
func StartVault(ctx context.Context, dir string) (*Vault, error) {
	bin, err := Binary("vault.sh")
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	v := &Vault{Addr: fmt.Sprintf("http://127.0.0.1:%d", port), Port: port, bin: bin, dir: dir}
	if err := v.start(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

func (v *Vault) start(ctx context.Context) error {
	v.starts++
	home := v.dir
	args := []string{
		v.bin, "server", "-dev",
		"-dev-root-token-id=" + VaultRootToken,
		"-dev-listen-address=127.0.0.1:" + strconv.Itoa(v.Port),
		"-dev-no-store-token",
	}
	// The server must not pick up a client configuration of the caller's.
	env := []string{"HOME=" + home, "VAULT_ADDR=", "VAULT_TOKEN=", "VAULT_NAMESPACE=", "SKIP_SETCAP=1"}
	p, err := Start(fmt.Sprintf("vault-%d", v.starts), v.dir, args, env)
	if err != nil {
		return err
	}
	v.Proc = p
	healthy := func(r *http.Response) bool { return r.StatusCode == http.StatusOK }
	if err := WaitHTTP(ctx, p, v.Addr+"/v1/sys/health", 60*time.Second, healthy); err != nil {
		p.Stop()
		return err
	}
	return nil
}

// Stop stops the server.
func (v *Vault) Stop() {
	if v.Proc != nil {
		v.Proc.Stop()
	}
}

// Restart stops the server and starts a new dev server on the same port:
// like a real Vault restart, clients lose their connections; unlike one,
// the in-memory data (mounts, secrets, tokens, leases) is gone, so the
// caller seeds it again.
func (v *Vault) Restart(ctx context.Context) error {
	v.Stop()
	return v.start(ctx)
}

var unsealKeyLine = regexp.MustCompile(`(?m)^Unseal Key: (\S+)\s*$`)

// UnsealKey returns the unseal key the dev server prints in its start-up
// banner (which may come a moment after it answers requests), for tests
// that seal and unseal it.
func (v *Vault) UnsealKey(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(v.Proc.log.Name())
		if err != nil {
			return "", err
		}
		if m := unsealKeyLine.FindSubmatch(b); m != nil {
			return string(m[1]), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("vault dev server log has no unseal key: %w", ctx.Err())
		case <-v.Proc.Exited():
			return "", fmt.Errorf("vault dev server exited: %s", v.Proc.LogTail(2000))
		case <-tick.C:
		}
	}
}
