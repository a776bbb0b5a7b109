//go:build integration

package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testenv"
)

// tokenLifetime is the lifetime of the OAuth server's access tokens in
// this test (an opaque token, so that the server can say whether the one
// served is active).
const tokenLifetime = 10

// tokenFile is the agent's JSON token file.
type tokenFile struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// TestTokenFaults runs an agent keeping an OAuth2 client-credentials token
// fresh through a proxy in front of the real OAuth server, and puts it
// through latency, a server that hangs, connection resets, and an outage
// that outlasts the token. At every observation the token file is whole,
// the token endpoint serves the file's token while it is valid and never
// an expired one, and /readyz is 200 exactly while the token is valid (a
// tolerance of a second either side of expires_at); the outage keeps the
// last good token on disk byte for byte, failed refreshes are counted,
// and after the outage a new token arrives without a restart. The child is
// never signalled nor restarted: a token refresh is no secret rotation.
func TestTokenFaults(t *testing.T) {
	t.Parallel()
	o := oauth(t)
	tp := toxiproxy(t)
	p, err := tp.Proxy("oauth", o.URL)
	must(t, err)
	t.Cleanup(func() { _ = p.Delete() })

	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "creds.yaml"), []byte("id: "+oauthClientID+"\nsecret: "+oauthClientSecret+"\n"), 0o600))
	cfg := fmt.Sprintf(`version: 1
tokens:
  api:
    token_url: %s
    client_id: file:creds.yaml#id
    client_secret: file:creds.yaml#secret
    resource: "urn:kw:opaque:%d"
    file: out/token.json
    file_format: json
`, p.URL(o.TokenURL), tokenLifetime)
	var seenMu sync.Mutex
	seen := map[string]bool{} // every token observed
	secrets := func() []string {
		seenMu.Lock()
		defer seenMu.Unlock()
		out := []string{oauthClientSecret}
		for tok := range seen {
			out = append(out, tok)
		}
		return out
	}
	a := startAgent(t, dir, agentOptions{config: cfg, child: true, secrets: secrets})
	a.waitReady()
	path := filepath.Join(dir, "out", "token.json")
	read := func() (tokenFile, []byte, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return tokenFile{}, nil, err
		}
		var f tokenFile
		if err := json.Unmarshal(b, &f); err != nil || f.AccessToken == "" || f.ExpiresAt.IsZero() {
			return tokenFile{}, b, fmt.Errorf("token file is not a whole token: %v", err)
		}
		seenMu.Lock()
		seen[f.AccessToken] = true
		seenMu.Unlock()
		return f, b, nil
	}
	if _, _, err := read(); err != nil {
		t.Fatal(err)
	}
	a.waitFor("the child to start", waitLong, func() bool { s, _ := a.childCounts(); return s == 1 })

	var fig figures
	// check observes the agent once; frozen, when set, is the content the
	// token file must keep.
	var violations, validSamples, expiredSamples int
	check := func(phase string, frozen []byte) {
		f, b, err := read()
		if err != nil {
			violations++
			t.Errorf("%s: %v", phase, err)
			return
		}
		if frozen != nil && string(b) != string(frozen) {
			fig.lost++
			t.Errorf("%s: the token file changed while the OAuth server was unreachable", phase)
		}
		code, body := a.readyz()
		served, sok := a.servedToken()
		now := time.Now()
		if _, b2, err := read(); err != nil || string(b2) != string(b) {
			return // a refresh landed between the reads: no verdict on this sample
		}
		switch {
		case now.Before(f.ExpiresAt.Add(-time.Second)):
			validSamples++
			if code != 200 {
				violations++
				t.Errorf("%s: /readyz %d %q while the token is valid for %v more", phase, code, body, f.ExpiresAt.Sub(now).Round(time.Millisecond))
			}
			if !sok {
				violations++
				t.Errorf("%s: the endpoint serves no token while one is valid", phase)
			}
		case now.After(f.ExpiresAt.Add(time.Second)):
			expiredSamples++
			if code != 503 || !strings.Contains(body, "api expired") {
				violations++
				t.Errorf("%s: /readyz %d %q %v after the token expired, want 503 naming it", phase, code, body, now.Sub(f.ExpiresAt).Round(time.Millisecond))
			}
			if sok {
				violations++
				t.Errorf("%s: the endpoint serves a token after the last one expired", phase)
			}
		}
		if sok && frozen != nil && served != f.AccessToken {
			violations++
			t.Errorf("%s: the endpoint serves another token than the last good one", phase)
		}
	}
	observe := func(phase string, d time.Duration, frozen []byte) {
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			check(phase, frozen)
			select {
			case <-a.exited:
				t.Fatalf("%s: the agent exited (code %d)", phase, a.code)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	errorsNow := func() float64 {
		return sum(a.metrics(), "keyward_token_refreshes_total", `result="error"`)
	}
	okNow := func() float64 {
		return sum(a.metrics(), "keyward_token_refreshes_total", `result="ok"`)
	}
	heal := func(phase string) {
		t.Helper()
		must(t, p.Heal())
		// A fresh token after the fault, then the invariants hold again.
		before := okNow()
		a.waitFor("a token refresh after "+phase, waitLong, func() bool { return okNow() > before })
		a.waitReady()
	}

	// Latency, a hanging server and resets, each for more than a refresh
	// period's share: refreshes fail or succeed late, the token stays
	// valid or /readyz says it is not.
	faultTime := 4 * time.Second
	if long {
		faultTime = 20 * time.Second
	}
	for _, f := range []struct {
		name   string
		inject func() error
	}{
		{"latency", func() error { return p.Latency(400*time.Millisecond, 100*time.Millisecond) }},
		{"timeout", func() error { return p.Timeout(time.Second) }},
		{"reset_peer", p.ResetPeer},
	} {
		must(t, f.inject())
		fig.faults++
		observe(f.name, faultTime, nil)
		heal(f.name)
	}

	// An outage that outlasts the token.
	before := errorsNow()
	must(t, p.Down())
	fig.faults++
	time.Sleep(300 * time.Millisecond) // a refresh in flight fails, it does not land
	last, frozen, err := read()
	if err != nil {
		t.Fatal(err)
	}
	observe("down", time.Until(last.ExpiresAt)+3*time.Second, frozen)
	if after := errorsNow(); after <= before {
		t.Errorf("down: keyward_token_refreshes_total{result=error} did not count the failed refreshes (%v before, %v after)", before, after)
	}
	heal("down")
	f, _, err := read()
	if err != nil || f.AccessToken == last.AccessToken {
		t.Fatalf("after the outage: no new token in the file (%v)", err)
	}
	served, ok := a.servedToken()
	if !ok || served != f.AccessToken {
		t.Fatal("after the outage the endpoint does not serve the new token")
	}
	active, err := o.Active(context.Background(), testenv.OAuthClient{ID: oauthClientID, Secret: oauthClientSecret}, served)
	if err != nil || !active {
		t.Fatalf("the token served after the outage is not active at the server: %v %v", active, err)
	}
	observe("after recovery", 2*time.Second, nil)
	a.expectChild("at the end", 0)
	if code := a.stop(); code != 0 {
		t.Errorf("agent exit code %d after SIGTERM, want 0", code)
	}
	fig.lost += violations
	if expiredSamples == 0 {
		t.Error("no observation fell after the token's expiry: the outage did not outlast it")
	}
	fig.note = fmt.Sprintf("tokens seen: %d, observations while valid: %d, after expiry: %d (all checked)", len(seen), validSamples, expiredSamples)
	report(t, fig)
}

// servedToken returns the token GET /v1/tokens/api serves, if any.
func (a *agent) servedToken() (string, bool) {
	code, body, err := a.get("/v1/tokens/api")
	if err != nil || code != 200 {
		return "", false
	}
	var r struct {
		AccessToken string `json:"access_token"`
	}
	if json.Unmarshal([]byte(body), &r) != nil || r.AccessToken == "" {
		return "", false
	}
	return r.AccessToken, true
}
