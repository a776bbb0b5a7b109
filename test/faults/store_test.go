//go:build integration

package faults

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	vaultapi "github.com/hashicorp/vault/api"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/keyward/keyward/internal/testenv"
)

// store is a real secret store the agent reads through a toxiproxy proxy.
type store struct {
	// upstream is the server's URL, which the proxy fronts.
	upstream string
	// config returns the providers: section (with the proxy's URL as the
	// store's address; files it needs written into dir) and the agent's
	// environment.
	config func(t *testing.T, dir, proxyURL string) (providers string, env []string)
	// ref returns the reference to one field of the test's secret.
	ref func(field string) string
	// set writes the test's secret directly at the server (not through
	// the proxy): a rotation.
	set func(ctx context.Context, fields map[string]string) error
}

// secretName is a name unique to this test run, usable in every store.
func secretName(t *testing.T) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	n := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-"))
	return strings.Trim(n, "-") + "-" + hex.EncodeToString(b)
}

func vaultStore(t *testing.T) store {
	v := vault(t)
	c, err := vaultapi.NewClient(&vaultapi.Config{Address: v.Addr})
	must(t, err)
	c.SetToken(testenv.VaultRootToken)
	path := "faults/" + secretName(t)
	return store{
		upstream: v.Addr,
		config: func(t *testing.T, dir, proxyURL string) (string, []string) {
			// A request timeout of 2s (the default is 30s) lets a store
			// that hangs show within the test's phases.
			return fmt.Sprintf("  vault: {kind: vault, address: %q, timeout: 2s}\n", proxyURL),
				[]string{"VAULT_TOKEN=" + testenv.VaultRootToken}
		},
		ref: func(field string) string { return "vault://secret/" + path + "#" + field },
		set: func(ctx context.Context, fields map[string]string) error {
			data := map[string]any{}
			for k, v := range fields {
				data[k] = v
			}
			_, err := c.KVv2("secret").Put(ctx, path, data)
			return err
		},
	}
}

func awsStore(t *testing.T) store {
	m := moto(t)
	c := secretsmanager.New(secretsmanager.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		BaseEndpoint: awssdk.String(m.Endpoint),
	})
	name := "faults/" + secretName(t)
	var created bool
	return store{
		upstream: m.Endpoint,
		config: func(t *testing.T, dir, proxyURL string) (string, []string) {
			return fmt.Sprintf("  awssm: {kind: awssm, region: us-east-1, endpoint: %q}\n", proxyURL), []string{
				"AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing",
				"AWS_EC2_METADATA_DISABLED=true",
				"AWS_CONFIG_FILE=" + filepath.Join(dir, "no-aws-config"),
				"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "no-aws-credentials"),
			}
		},
		ref: func(field string) string { return "awssm://" + name + "#" + field },
		set: func(ctx context.Context, fields map[string]string) error {
			b, err := json.Marshal(fields)
			if err != nil {
				return err
			}
			if !created {
				_, err = c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: &name, SecretString: awssdk.String(string(b))})
				var exists *smtypes.ResourceExistsException
				if err == nil || errors.As(err, &exists) {
					created = true
					if err == nil {
						return nil
					}
				} else {
					return err
				}
			}
			_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: &name, SecretString: awssdk.String(string(b))})
			return err
		},
	}
}

func kubeStore(t *testing.T) store {
	k := kube(t)
	dyn, err := dynamic.NewForConfig(&rest.Config{
		Host:            k.API.URL,
		BearerToken:     k.AdminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: k.CAData},
	})
	must(t, err)
	name := secretName(t)
	if len(name) > 60 {
		name = name[len(name)-60:]
		name = strings.TrimLeft(name, "-")
	}
	return store{
		upstream: k.API.URL,
		config: func(t *testing.T, dir, proxyURL string) (string, []string) {
			must(t, os.WriteFile(filepath.Join(dir, "kubeconfig"), k.Kubeconfig(proxyURL, k.AdminToken), 0o600))
			return "  k8s: {kind: k8s, kubeconfig: kubeconfig}\n", nil
		},
		ref: func(field string) string { return "k8s://default/" + name + "#" + field },
		set: func(ctx context.Context, fields map[string]string) error {
			data := map[string]any{}
			for k, v := range fields {
				data[k] = v
			}
			s := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "v1", "kind": "Secret",
				"metadata":   map[string]any{"name": name, "namespace": "default"},
				"stringData": data,
			}}
			secrets := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "secrets"}).Namespace("default")
			_, err := secrets.Update(ctx, s, metav1.UpdateOptions{})
			if apierrors.IsNotFound(err) {
				_, err = secrets.Create(ctx, s, metav1.CreateOptions{})
			}
			return err
		},
	}
}

func TestStoreFaultsVault(t *testing.T) {
	t.Parallel()
	runStoreFaults(t, vaultStore(t))
}

func TestStoreFaultsAWS(t *testing.T) {
	t.Parallel()
	runStoreFaults(t, awsStore(t))
}

func TestStoreFaultsKubernetes(t *testing.T) {
	t.Parallel()
	runStoreFaults(t, kubeStore(t))
}

// generations makes the values of each rotation: random, so that a value
// found in a file or a log can only have come from the store.
type generations struct {
	mu   sync.Mutex
	all  []string
	gens []map[string]string
}

func (g *generations) next() map[string]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := len(g.gens)
	v := map[string]string{}
	for _, f := range []string{"password", "api_key"} {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		v[f] = fmt.Sprintf("%s-g%d-%s", f, n, hex.EncodeToString(b))
		g.all = append(g.all, v[f])
	}
	g.gens = append(g.gens, v)
	return v
}

func (g *generations) values() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.all...)
}

// phaseTime is how long each fault lasts: several polling intervals
// (watch.interval is 1s), longer under KEYWARD_FAULTS_LONG.
func phaseTime() time.Duration {
	if long {
		return 30 * time.Second
	}
	return 6 * time.Second
}

// runStoreFaults runs an agent with a recording child against st through a
// proxy and puts it through latency, a store that hangs (toxiproxy
// timeout), connection resets and an outage of several intervals, with a
// rotation under latency, one during the resets and one during the
// outage. Throughout: the files keep the last good values byte for byte,
// the child is signalled once per rotation and never restarted, /readyz
// stays 200 (nothing has expired: the last good values are served), every
// failing phase shows in keyward_errors_total, the outage in
// keyward_secret_up, and the agent recovers by itself.
func runStoreFaults(t *testing.T, st store) {
	ctx := context.Background()
	tp := toxiproxy(t)
	p, err := tp.Proxy(strings.ToLower(strings.TrimPrefix(t.Name(), "TestStoreFaults")), st.upstream)
	must(t, err)
	t.Cleanup(func() { _ = p.Delete() })

	gens := &generations{}
	g1 := gens.next()
	mustf(t, st.set(ctx, g1), "writing the secret")

	dir := t.TempDir()
	provs, env := st.config(t, dir, p.URL(st.upstream))
	cfg := "version: 1\nproviders:\n" + provs + fmt.Sprintf(`secrets:
  DB_PASSWORD: %s
  API_KEY: %s
files:
  - {path: out/app.env, secrets: [DB_PASSWORD, API_KEY]}
  - {path: out/password, secret: DB_PASSWORD}
on_change: {signal: HUP}
# The child reads the files; its environment gets no secret (a rotated
# value could reach it only by a restart).
env: {}
watch: {interval: 1s, jitter: 0.1}
`, st.ref("password"), st.ref("api_key"))
	a := startAgent(t, dir, agentOptions{config: cfg, env: env, child: true, secrets: gens.values})
	a.waitReady()
	files := []string{filepath.Join(dir, "out", "app.env"), filepath.Join(dir, "out", "password")}
	rendered := func(v map[string]string) bool {
		pw := readFile(files[1])
		envf := string(readFile(files[0]))
		return string(pw) == v["password"] && strings.Contains(envf, v["password"]) && strings.Contains(envf, v["api_key"])
	}
	if !rendered(g1) {
		t.Fatal("the first render does not hold the store's values")
	}
	a.waitFor("the child to start", waitLong, func() bool { s, _ := a.childCounts(); return s == 1 })
	a.expectChild("after the first render", 0)

	var fig figures
	hups, counted := 0, 0
	secretUp := func() float64 { return sum(a.metrics(), "keyward_secret_up") }
	errorsNow := func() float64 {
		m := a.metrics()
		return sum(m, "keyward_errors_total", `stage="fetch"`) + sum(m, "keyward_errors_total", `stage="retry"`) +
			sum(m, "keyward_errors_total", `stage="watch"`)
	}

	// 1. Latency: a rotation still arrives, once.
	must(t, p.Latency(400*time.Millisecond, 100*time.Millisecond))
	g := gens.next()
	mustf(t, st.set(ctx, g), "rotating the secret")
	a.waitFor("the rotation through a slow store", waitLong, func() bool { return rendered(g) })
	hups++
	a.waitFor("the child's SIGHUP", waitLong, func() bool { _, s := a.childCounts(); return len(s) >= hups })
	fig.faults++
	good := snapshot(files)
	fig.lost += a.hold(t, "latency", phaseTime()/2, files, good)
	a.expectChild("under latency", hups)
	must(t, p.Heal())

	// 2-4. The store hangs, resets connections, is down; a rotation happens
	// during the outage.
	faults := []struct {
		name   string
		inject func() error
		rotate bool
	}{
		{"timeout", func() error { return p.Timeout(time.Second) }, false},
		// A rotation during the resets: an established watch the client
		// sends nothing on is not reset (toxiproxy resets a connection
		// when the client sends data), so without one a healthy watch
		// would see no failure to count; the fetch the change causes does.
		{"reset_peer", p.ResetPeer, true},
		{"down", p.Down, true},
	}
	for _, f := range faults {
		before := errorsNow()
		must(t, f.inject())
		var rotated map[string]string
		if f.rotate {
			rotated = gens.next()
			mustf(t, st.set(ctx, rotated), "rotating the secret during %s", f.name)
		}
		fig.faults++
		var sawDown bool
		fig.lost += a.holdWith(t, f.name, phaseTime(), files, good, func() {
			if secretUp() == 0 {
				sawDown = true
			}
		})
		after := errorsNow()
		a.expectChild("during "+f.name, hups)
		if after > before {
			counted++
		}
		// Every failing phase counts in keyward_errors_total within the
		// phase, from the first failed attempt: retries inside one
		// provider call and a watch that reconnects included.
		if after <= before {
			t.Errorf("%s: keyward_errors_total{stage=fetch|retry|watch} did not count the failing store (%v before, %v after %v)", f.name, before, after, phaseTime())
		}
		// An outage sets keyward_secret_up to 0, of a polled or a watched
		// store alike (a watch that cannot reconnect leaves its secrets
		// polled, and the polls fail).
		if f.name == "down" && !sawDown {
			t.Errorf("%s: keyward_secret_up never went to 0 while the store failed for %v", f.name, phaseTime())
		}
		must(t, p.Heal())
		if rotated != nil {
			a.waitFor("the rotation made during "+f.name+", after recovery", waitLong, func() bool { return rendered(rotated) })
			hups++
			a.waitFor("the child's SIGHUP after recovery", waitLong, func() bool { _, s := a.childCounts(); return len(s) >= hups })
			good = snapshot(files)
		}
		a.waitFor("keyward_secret_up 1 after "+f.name, waitLong, func() bool { return secretUp() == 2 })
		if c, body := a.readyz(); c != 200 {
			t.Errorf("after %s: /readyz %d %q", f.name, c, body)
		}
	}
	// No signal for nothing: wait a few intervals after the last recovery.
	fig.lost += a.hold(t, "after recovery", 3*time.Second, files, good)
	a.expectChild("at the end", hups)
	if code := a.stop(); code != 0 {
		t.Errorf("agent exit code %d after SIGTERM, want 0", code)
	}
	fig.note = fmt.Sprintf("rotations delivered: %d of %d, failing phases counted in keyward_errors_total: %d of %d", hups, len(gens.gens)-1, counted, len(faults))
	report(t, fig)
}

func TestStoreHangsAtShutdownVault(t *testing.T) {
	t.Parallel()
	runStoreHangsAtShutdown(t, vaultStore(t))
}

func TestStoreHangsAtShutdownAWS(t *testing.T) {
	t.Parallel()
	runStoreHangsAtShutdown(t, awsStore(t))
}

func TestStoreHangsAtShutdownKubernetes(t *testing.T) {
	t.Parallel()
	runStoreHangsAtShutdown(t, kubeStore(t))
}

// runStoreHangsAtShutdown runs an agent with a child against st through a
// proxy, makes the store hang (toxiproxy timeout: connections accepted and
// never answered, kept open) for a few polling intervals, and sends the
// agent SIGTERM while it still hangs. The agent must exit 0 within
// --stop-timeout plus --shutdown-timeout (plus slack for a loaded
// machine), its shutdown not cut short by the bound (its fetches and
// watches end with its context), with the files holding the last good
// values and nothing else in their directory. The store's own request
// timeout (Vault's 2s) is longer than --shutdown-timeout, so a fetch that
// ignored the context would show as a shutdown cut short.
func runStoreHangsAtShutdown(t *testing.T, st store) {
	const stopTimeout, shutdownTimeout, slack = time.Second, time.Second, 10 * time.Second
	ctx := context.Background()
	tp := toxiproxy(t)
	p, err := tp.Proxy(strings.ToLower(strings.TrimPrefix(t.Name(), "TestStoreHangsAtShutdown"))+"-shutdown", st.upstream)
	must(t, err)
	t.Cleanup(func() { _ = p.Delete() })

	gens := &generations{}
	g1 := gens.next()
	mustf(t, st.set(ctx, g1), "writing the secret")
	dir := t.TempDir()
	provs, env := st.config(t, dir, p.URL(st.upstream))
	cfg := "version: 1\nproviders:\n" + provs + fmt.Sprintf(`secrets:
  DB_PASSWORD: %s
  API_KEY: %s
files:
  - {path: out/app.env, secrets: [DB_PASSWORD, API_KEY]}
  - {path: out/password, secret: DB_PASSWORD}
env: {}
watch: {interval: 1s, jitter: 0.1}
`, st.ref("password"), st.ref("api_key"))
	a := startAgent(t, dir, agentOptions{config: cfg, env: env, child: true, secrets: gens.values,
		args: []string{"--stop-timeout", stopTimeout.String(), "--shutdown-timeout", shutdownTimeout.String()}})
	a.waitReady()
	files := []string{filepath.Join(dir, "out", "app.env"), filepath.Join(dir, "out", "password")}
	if pw := readFile(files[1]); string(pw) != g1["password"] {
		t.Fatal("the first render does not hold the store's values")
	}
	a.waitFor("the child to start", waitLong, func() bool { s, _ := a.childCounts(); return s == 1 })
	good := snapshot(files)

	var fig figures
	must(t, p.Timeout(0))
	fig.faults++
	// Several polling intervals: the agent's fetches (or its watch) hang
	// in the store when it is told to stop.
	fig.lost += a.hold(t, "store hanging", 3*time.Second, files, good)

	sent := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	bound := stopTimeout + shutdownTimeout + slack
	select {
	case <-a.exited:
		fig.note = fmt.Sprintf("exited %v after SIGTERM while the store hung", time.Since(sent).Round(time.Millisecond))
	case <-time.After(bound):
		t.Fatalf("the agent did not exit within --stop-timeout %v + --shutdown-timeout %v (+ %v slack) of SIGTERM while the store hung", stopTimeout, shutdownTimeout, slack)
	}
	if a.code != 0 {
		t.Errorf("agent exit code %d after SIGTERM while the store hung, want 0", a.code)
	}
	if strings.Contains(a.log.String(), "shutdown did not finish") {
		t.Error("the agent's shutdown was cut short by --shutdown-timeout: something it waited for ignored its context while the store hung")
	}
	if bad := diffSnapshot(files, good); len(bad) > 0 {
		fig.lost++
		t.Errorf("after the agent exited: %v no longer hold the last good values", bad)
	}
	left := unexpected(filepath.Join(dir, "out"), "app.env", "password")
	fig.leftovers = len(left)
	if len(left) > 0 {
		t.Errorf("left behind after shutdown: %v", left)
	}
	report(t, fig)
}

// hold watches the agent for d: the files must keep exactly the content
// good, /readyz must answer 200. It returns the number of observations
// that found a file changed, missing or partial (values lost).
func (a *agent) hold(t *testing.T, phase string, d time.Duration, files []string, good map[string][]byte) int {
	t.Helper()
	return a.holdWith(t, phase, d, files, good, nil)
}

func (a *agent) holdWith(t *testing.T, phase string, d time.Duration, files []string, good map[string][]byte, each func()) int {
	t.Helper()
	lost, notReady := 0, 0
	var lastBody string
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if bad := diffSnapshot(files, good); len(bad) > 0 {
			if lost == 0 {
				t.Errorf("%s: %v no longer hold the last good values", phase, bad)
			}
			lost++
		}
		if c, body := a.readyz(); c != 200 {
			notReady++
			lastBody = body
		}
		if each != nil {
			each()
		}
		select {
		case <-a.exited:
			t.Fatalf("%s: the agent exited (code %d)", phase, a.code)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if notReady > 0 {
		t.Errorf("%s: /readyz was not 200 in %d samples (%q) though nothing had expired", phase, notReady, lastBody)
	}
	return lost
}
