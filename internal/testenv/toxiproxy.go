package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"
)

// Toxiproxy is a toxiproxy server (test/servers/toxiproxy.sh, the version
// go.mod pins) started by StartToxiproxy on a free 127.0.0.1 port: a TCP
// proxy that injects faults (latency, timeouts, connection resets, a store
// that is down) between keyward and a real server. Start one per test
// binary, in TestMain, and give each test its own proxies.
type Toxiproxy struct {
	// URL is the server's API, http://127.0.0.1:PORT.
	URL string
	// Client talks to the API.
	Client *toxiproxy.Client

	proc *Process
	dir  string

	mu    sync.Mutex
	names map[string]int // proxy name prefix -> proxies made with it
}

// StartToxiproxy builds or reuses the toxiproxy server and starts it on a
// free loopback port, waiting until its API answers. Stop it with Stop.
func StartToxiproxy(ctx context.Context) (*Toxiproxy, error) {
	bin, err := Binary("toxiproxy.sh")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "keyward-toxiproxy-")
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 { // a new port when another process took it in between
		port, err := FreePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		p, err := Start("toxiproxy", dir, []string{bin, "-host", "127.0.0.1", "-port", strconv.Itoa(port)}, nil)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		u := "http://127.0.0.1:" + strconv.Itoa(port)
		lastErr = WaitHTTP(ctx, p, u+"/version", 30*time.Second, func(r *http.Response) bool { return r.StatusCode == http.StatusOK })
		if lastErr == nil {
			return &Toxiproxy{URL: u, Client: toxiproxy.NewClient(u), proc: p, dir: dir, names: map[string]int{}}, nil
		}
		p.Stop()
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("starting toxiproxy: %w", lastErr)
}

// Stop stops the server (which closes every proxy) and removes its log.
func (t *Toxiproxy) Stop() {
	t.proc.Stop()
	os.RemoveAll(t.dir)
}

// LogTail returns the end of the server's log, for failure messages.
func (t *Toxiproxy) LogTail() string { return t.proc.LogTail(4000) }

// Proxy creates a proxy listening on a free 127.0.0.1 port in front of
// upstream (HOST:PORT, or a URL whose host and port are used). Its name is
// name with a number added when name is taken, so parallel tests may ask
// for the same one. Delete it with Proxy.Delete (or let Stop do it).
func (t *Toxiproxy) Proxy(name, upstream string) (*Proxy, error) {
	hostport, err := HostPort(upstream)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.names[name]++
	if n := t.names[name]; n > 1 {
		name = fmt.Sprintf("%s-%d", name, n)
	}
	t.mu.Unlock()
	p, err := t.Client.CreateProxy(name, "127.0.0.1:0", hostport)
	if err != nil {
		return nil, fmt.Errorf("toxiproxy: create proxy %s: %w", name, err)
	}
	return &Proxy{Proxy: p, Addr: p.Listen}, nil
}

// HostPort returns the HOST:PORT of a URL with an explicit port, or s
// itself when it already is HOST:PORT.
func HostPort(s string) (string, error) {
	if _, _, err := net.SplitHostPort(s); err == nil {
		return s, nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Port() == "" {
		return "", fmt.Errorf("%q is neither HOST:PORT nor a URL with a port", s)
	}
	return u.Host, nil
}

// Proxy is one toxiproxy proxy. The fault methods act on connections
// already open as well as on new ones; Heal removes every fault.
type Proxy struct {
	*toxiproxy.Proxy
	// Addr is where clients connect instead of the upstream:
	// 127.0.0.1:PORT. It stays the same while the proxy is down.
	Addr string
}

// URL returns u (an upstream URL) with its host and port replaced by the
// proxy's, so that a client configured with it goes through the proxy.
func (p *Proxy) URL(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return u
	}
	pu.Host = p.Addr
	return pu.String()
}

// Latency delays the data in both directions by d (± jitter).
func (p *Proxy) Latency(d, jitter time.Duration) error {
	for _, stream := range []string{"upstream", "downstream"} {
		if _, err := p.AddToxic("latency_"+stream, "latency", stream, 1, toxiproxy.Attributes{
			"latency": d.Milliseconds(), "jitter": jitter.Milliseconds(),
		}); err != nil {
			return err
		}
	}
	return nil
}

// Timeout stops all data from passing (a store that accepts connections and
// never answers), closing each connection after d; 0 keeps them open until
// Heal.
func (p *Proxy) Timeout(d time.Duration) error {
	_, err := p.AddToxic("timeout", "timeout", "upstream", 1, toxiproxy.Attributes{"timeout": d.Milliseconds()})
	return err
}

// ResetPeer resets every connection (TCP RST, "connection reset by peer")
// as soon as the client sends data.
func (p *Proxy) ResetPeer() error {
	_, err := p.AddToxic("reset_peer", "reset_peer", "upstream", 1, toxiproxy.Attributes{"timeout": 0})
	return err
}

// Down closes the listener and every open connection: clients get
// "connection refused" until Up.
func (p *Proxy) Down() error { return p.Disable() }

// Up opens the listener again on the same address.
func (p *Proxy) Up() error { return p.Enable() }

// Heal removes every toxic and brings the proxy up.
func (p *Proxy) Heal() error {
	toxics, err := p.Toxics()
	if err != nil {
		return err
	}
	for _, tx := range toxics {
		if err := p.RemoveToxic(tx.Name); err != nil {
			return err
		}
	}
	if !p.Enabled {
		return p.Up()
	}
	return nil
}
