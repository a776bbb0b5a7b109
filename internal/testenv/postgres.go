package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Postgres is a private PostgreSQL server started by StartPostgres: a fresh
// cluster in a temporary directory, listening on 127.0.0.1 only, with
// password (scram-sha-256) authentication for every connection.
type Postgres struct {
	// Port is the loopback port it listens on.
	Port int
	// User and Password are the superuser's credentials.
	User, Password string
	// Proc is the running server.
	Proc *Process

	binDir string
	root   string
}

// pgUID is the unprivileged user PostgreSQL runs as when the tests run as
// root (it refuses to run as root): nobody.
const pgUID, pgGID = 65534, 65534

// StartPostgres installs PostgreSQL if needed (test/servers/postgres.sh),
// creates a cluster with initdb and starts it on a free loopback port,
// waiting until it accepts connections. When the tests run as root, the
// cluster belongs to and runs as nobody. The caller stops it with Stop,
// which also removes the cluster.
func StartPostgres(ctx context.Context) (*Postgres, error) {
	bin, err := Binary("postgres.sh")
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "keyward-pg-")
	if err != nil {
		return nil, err
	}
	pg := &Postgres{Port: port, User: "keyward", Password: randomHex(16), binDir: filepath.Dir(bin), root: root}
	if err := pg.start(ctx); err != nil {
		pg.Stop()
		return nil, err
	}
	return pg, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// credential is the identity PostgreSQL's processes run as: nobody when
// the tests run as root, else the current user (nil).
func credential() *syscall.Credential {
	if os.Geteuid() != 0 {
		return nil
	}
	return &syscall.Credential{Uid: pgUID, Gid: pgGID}
}

func (pg *Postgres) start(ctx context.Context) error {
	cred := credential()
	data := filepath.Join(pg.root, "data")
	sock := filepath.Join(pg.root, "sock")
	pwfile := filepath.Join(pg.root, "pw")
	if err := os.Mkdir(sock, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(pwfile, []byte(pg.Password+"\n"), 0o600); err != nil {
		return err
	}
	if cred != nil {
		for _, p := range []string{pg.root, sock, pwfile} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return err
			}
		}
	}
	initdb := exec.CommandContext(ctx, filepath.Join(pg.binDir, "initdb"),
		"-D", data, "-U", pg.User, "--pwfile", pwfile, "--auth=scram-sha-256",
		"-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions")
	initdb.Dir = pg.root
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, out)
	}
	args := []string{filepath.Join(pg.binDir, "postgres"), "-D", data, "-p", strconv.Itoa(pg.Port),
		"-k", sock, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=50"}
	p, err := startAs("postgres", pg.root, args, cred)
	if err != nil {
		return err
	}
	pg.Proc = p
	deadline := time.Now().Add(60 * time.Second)
	for {
		ready := exec.CommandContext(ctx, filepath.Join(pg.binDir, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(pg.Port))
		if ready.Run() == nil {
			return nil
		}
		select {
		case <-p.Exited():
			return fmt.Errorf("postgres exited before it was ready: %s", p.LogTail(2000))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after 60s: %s", p.LogTail(2000))
		}
	}
}

// startAs is Start with the process running as cred (nil: as the caller).
func startAs(name, dir string, args []string, cred *syscall.Credential) (*Process, error) {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = dir
	cmd.SysProcAttr = serverProcAttr(cred)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, cmd: cmd, log: logf, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// TemplateURL returns the connection URL of the postgres database with
// Vault's {{username}} and {{password}} placeholders, as the database
// secrets engine's connection_url takes it (the credentials are passed
// beside it, not in it).
func (pg *Postgres) TemplateURL() string {
	return fmt.Sprintf("postgresql://{{username}}:{{password}}@127.0.0.1:%d/postgres?sslmode=disable", pg.Port)
}

// Query runs sql with psql as user/password and returns its unaligned,
// tuples-only output. An authentication failure is an error.
func (pg *Postgres) Query(ctx context.Context, user, password, sql string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(pg.binDir, "psql"),
		"-h", "127.0.0.1", "-p", strconv.Itoa(pg.Port), "-U", user, "-d", "postgres",
		"-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=10")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("psql as %s: %w: %s", user, err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// Stop stops the server and removes its cluster.
func (pg *Postgres) Stop() {
	if pg.Proc != nil {
		pg.Proc.Stop()
	}
	if pg.root != "" {
		os.RemoveAll(pg.root)
	}
}
