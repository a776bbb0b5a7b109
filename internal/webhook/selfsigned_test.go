package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var discard = slog.New(slog.DiscardHandler)

func testSelfSigned() SelfSigned {
	return SelfSigned{
		Namespace: "keyward", SecretName: "tls", WebhookConfig: "keyward",
		DNSNames: []string{"keyward-webhook.keyward.svc"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
}

// trusted returns nil when cert verifies, at now, against the PEM bundle
// as the API server would check it for name.
func trusted(bundle []byte, cert *tls.Certificate, name string, now time.Time) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		return errors.New("caBundle holds no certificate")
	}
	_, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, CurrentTime: now})
	return err
}

func served(t *testing.T, c *SelfSignedCertificate) *tls.Certificate {
	t.Helper()
	cert, err := c.GetCertificate(nil)
	if err != nil || cert == nil || cert.Leaf == nil {
		t.Fatalf("GetCertificate = %v, %v", cert, err)
	}
	return cert
}

func secretWith(o SelfSigned, ca, cert, key []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: o.Namespace, Name: o.SecretName, ResourceVersion: "1"},
		Data:       map[string][]byte{"ca.crt": ca, "tls.crt": cert, "tls.key": key},
	}
}

func TestBootstrap(t *testing.T) {
	t.Parallel()
	o := testSelfSigned()
	now := time.Now()
	name := o.DNSNames[0]

	t.Run("creates, then reuses", func(t *testing.T) {
		t.Parallel()
		f := newFakeKube()
		k := &Kube{api: f}
		c1, err := k.Bootstrap(context.Background(), o, discard)
		if err != nil {
			t.Fatal(err)
		}
		s := f.secret("keyward/tls")
		if s == nil || s.Type != corev1.SecretTypeTLS {
			t.Fatalf("secret %+v", s)
		}
		for _, w := range f.mwc.Webhooks {
			if !bytes.Equal(w.ClientConfig.CABundle, s.Data["ca.crt"]) {
				t.Errorf("webhook %s caBundle not set", w.Name)
			}
		}
		if err := trusted(f.caBundle(), served(t, c1), name, now); err != nil {
			t.Error(err)
		}
		if got := served(t, c1).Leaf.NotAfter.Sub(now); got < DefaultCertLifetime-time.Minute || got > DefaultCertLifetime+time.Minute {
			t.Errorf("lifetime %v, want %v", got, DefaultCertLifetime)
		}
		c2, err := k.Bootstrap(context.Background(), o, discard)
		if err != nil {
			t.Fatal(err)
		}
		if !served(t, c1).Leaf.Equal(served(t, c2).Leaf) || f.secretWrites != 1 || f.mwcUpdates != 1 {
			t.Errorf("second start: same cert %v, Secret writes %d, caBundle updates %d; want true, 1, 1",
				served(t, c1).Leaf.Equal(served(t, c2).Leaf), f.secretWrites, f.mwcUpdates)
		}
	})

	t.Run("another replica won the race", func(t *testing.T) {
		t.Parallel()
		ca, cert, key, err := GenerateCertificate(o.DNSNames, o.IPs, now, DefaultCertLifetime)
		if err != nil {
			t.Fatal(err)
		}
		f := newFakeKube()
		f.beforeSecretWrite = func() { f.secrets["keyward/tls"] = secretWith(o, ca, cert, key) }
		c, err := (&Kube{api: f}).Bootstrap(context.Background(), o, discard)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := tls.X509KeyPair(cert, key)
		if !bytes.Equal(served(t, c).Certificate[0], want.Certificate[0]) || !bytes.Equal(f.caBundle(), ca) {
			t.Error("did not adopt the winner's certificate and CA")
		}
	})

	t.Run("replaces an expired or mismatched certificate at once", func(t *testing.T) {
		t.Parallel()
		for name, gen := range map[string]func() ([]byte, []byte, []byte, error){
			"expired": func() ([]byte, []byte, []byte, error) {
				return GenerateCertificate(o.DNSNames, o.IPs, now.Add(-2*time.Hour), time.Hour)
			},
			"wrong name": func() ([]byte, []byte, []byte, error) {
				return GenerateCertificate([]string{"other"}, o.IPs, now, DefaultCertLifetime)
			},
		} {
			ca, cert, key, err := gen()
			if err != nil {
				t.Fatal(err)
			}
			f := newFakeKube()
			f.secrets["keyward/tls"] = secretWith(o, ca, cert, key)
			c, err := (&Kube{api: f}).Bootstrap(context.Background(), o, discard)
			if err != nil {
				t.Fatal(err)
			}
			if old, _ := tls.X509KeyPair(cert, key); bytes.Equal(served(t, c).Certificate[0], old.Certificate[0]) {
				t.Errorf("%s: kept the old certificate", name)
			}
			if err := trusted(f.caBundle(), served(t, c), o.DNSNames[0], now); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	})

	t.Run("stages a renewal of a certificate that expires soon and keeps serving it", func(t *testing.T) {
		t.Parallel()
		ca, cert, key, err := GenerateCertificate(o.DNSNames, o.IPs, now.Add(-350*24*time.Hour), DefaultCertLifetime)
		if err != nil {
			t.Fatal(err)
		}
		f := newFakeKube()
		f.secrets["keyward/tls"] = secretWith(o, ca, cert, key)
		c, err := (&Kube{api: f}).Bootstrap(context.Background(), o, discard)
		if err != nil {
			t.Fatal(err)
		}
		old, _ := tls.X509KeyPair(cert, key)
		if !bytes.Equal(served(t, c).Certificate[0], old.Certificate[0]) {
			t.Error("switched to the new certificate before the caBundle was known to trust it")
		}
		s := f.secret("keyward/tls")
		next := parsePair(s.Data["next.crt"], s.Data["next.key"])
		if next == nil {
			t.Fatal("no staged certificate in the Secret")
		}
		if got := len(parseBundle(f.caBundle())); got != 2 {
			t.Errorf("caBundle holds %d CAs, want the old and the new", got)
		}
		for _, p := range []*tls.Certificate{&old, &next.cert} {
			if err := trusted(f.caBundle(), p, o.DNSNames[0], now); err != nil {
				t.Error(err)
			}
		}
	})
}

func TestSelfSignedValidation(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		modify func(*SelfSigned)
		want   string
	}{
		{"renewal over half the lifetime", func(o *SelfSigned) { o.Lifetime, o.RenewBefore = time.Hour, 31*time.Minute }, "more than half the lifetime"},
		{"negative", func(o *SelfSigned) { o.Lifetime = -time.Hour }, "negative"},
		{"no names", func(o *SelfSigned) { o.DNSNames, o.IPs = nil, nil }, "no DNS name or IP"},
		{"no secret", func(o *SelfSigned) { o.SecretName = "" }, "no Secret"},
	} {
		o := testSelfSigned()
		tt.modify(&o)
		_, err := (&Kube{api: newFakeKube()}).Bootstrap(context.Background(), o, discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error with %q", tt.name, err, tt.want)
		}
	}
	o := testSelfSigned()
	o.Lifetime = 2 * time.Hour
	if o, err := o.withDefaults(); err != nil || o.RenewBefore != time.Hour {
		t.Errorf("a short lifetime's default renewal margin: %v %v, want half of it", o.RenewBefore, err)
	}
}

// TestRotationTwoReplicas runs two replicas sharing the Secret through
// several renewals (3 h certificates renewed 1 h ahead, on a fake clock)
// and checks after every tick of either replica that the certificate
// each serves is valid and trusted both by the caBundle stored at that
// moment and by the one an API server that loads the webhook
// configuration 5 minutes late would use (the webhook waits 10).
func TestRotationTwoReplicas(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		o := testSelfSigned()
		o.Lifetime, o.RenewBefore = 3*time.Hour, time.Hour
		f := newFakeKube()
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		var replicas []*SelfSignedCertificate
		start := func() {
			c, err := (&Kube{api: f}).Bootstrap(ctx, o, discard)
			if err != nil {
				t.Fatal(err)
			}
			replicas = append(replicas, c)
			wg.Go(func() { _ = c.Run(ctx) })
		}
		start()
		time.Sleep(25 * time.Second) // the second replica's ticks fall between the first's
		start()

		type check struct {
			serial string
			bundle string
		}
		checked := map[check]error{}
		seen := make([]map[string]bool, len(replicas))
		for i := range seen {
			seen[i] = map[string]bool{}
		}
		const step, span = 5 * time.Second, 11 * time.Hour
		for elapsed := time.Duration(0); elapsed < span; elapsed += step {
			time.Sleep(step)
			synctest.Wait()
			now := time.Now()
			bundle := f.caBundle()
			lagging := f.caBundleAsOf(now, 5*time.Minute)
			for i, c := range replicas {
				cert := served(t, c)
				serial := cert.Leaf.SerialNumber.String()
				seen[i][serial] = true
				if !now.Before(cert.Leaf.NotAfter) {
					t.Fatalf("at %v replica %d serves a certificate that expired at %v", elapsed, i, cert.Leaf.NotAfter)
				}
				for _, b := range [][]byte{bundle, lagging} {
					if b == nil {
						continue // the lagging API server's view before the first caBundle
					}
					k := check{serial, string(b)}
					err, ok := checked[k]
					if !ok {
						err = trusted(b, cert, o.DNSNames[0], now)
						checked[k] = err
					}
					if err != nil {
						t.Fatalf("at %v the API server would not trust replica %d: %v", elapsed, i, err)
					}
				}
			}
			if n := len(parseBundle(bundle)); n > 2 {
				t.Fatalf("at %v the caBundle holds %d CAs, want at most 2", elapsed, n)
			}
		}
		for i := range replicas {
			if n := len(seen[i]); n < 5 {
				t.Errorf("replica %d served %d certificates in %v, want at least 5 (a renewal every 2 h)", i, n, span)
			}
		}
		if a, b := served(t, replicas[0]), served(t, replicas[1]); !a.Leaf.Equal(b.Leaf) {
			t.Error("the replicas serve different certificates after a quiet minute")
		}
		cancel()
		wg.Wait()
	})
}

// TestStaleReplicaNeverUntrustsANewCA: a replica whose reads straddle
// another replica's new CA (here: a replica with a new Service name,
// during a rollout) must not set the caBundle back to what it read first.
func TestStaleReplicaNeverUntrustsANewCA(t *testing.T) {
	t.Parallel()
	o := testSelfSigned()
	f := newFakeKube()
	ctx := context.Background()
	old, err := (&Kube{api: f}).Bootstrap(ctx, o, discard)
	if err != nil {
		t.Fatal(err)
	}
	renamed := o
	renamed.DNSNames = append([]string{"keyward-renamed.keyward.svc"}, o.DNSNames...)
	var fresh *SelfSignedCertificate
	f.onRead = func() {
		// Between the old replica's reads, a new replica starts and
		// replaces the pair (it lacks the new name).
		fresh, err = (&Kube{api: f}).Bootstrap(ctx, renamed, discard)
	}
	if err := old.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := trusted(f.caBundle(), served(t, fresh), renamed.DNSNames[0], time.Now()); err != nil {
		t.Errorf("the new replica is no longer trusted after the old replica's check: %v", err)
	}
	if err := trusted(f.caBundle(), served(t, old), o.DNSNames[0], time.Now()); err != nil {
		t.Errorf("the old replica is not trusted: %v", err)
	}
}

// TestRunKeepsServingThroughAnOutage: while the API server is
// unreachable, Run serves the current certificate, logs the failure at
// most once a minute, and renews once it is back.
func TestRunKeepsServingThroughAnOutage(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		o := testSelfSigned()
		o.Lifetime, o.RenewBefore = 3*time.Hour, time.Hour
		f := newFakeKube()
		var logs bytes.Buffer
		var logMu sync.Mutex
		logger := slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, &slog.HandlerOptions{Level: slog.LevelWarn}))
		ctx, cancel := context.WithCancel(t.Context())
		c, err := (&Kube{api: f}).Bootstrap(ctx, o, logger)
		if err != nil {
			t.Fatal(err)
		}
		first := served(t, c)
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()

		f.mu.Lock()
		f.err = apierrors.NewServiceUnavailable("etcd is down")
		f.mu.Unlock()
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		if !served(t, c).Leaf.Equal(first.Leaf) {
			t.Error("the served certificate changed during the outage")
		}
		logMu.Lock()
		warnings := strings.Count(logs.String(), "webhook certificate check failed")
		logMu.Unlock()
		if warnings == 0 || warnings > 31 {
			t.Errorf("%d warnings in a 30-minute outage, want 1 to 31", warnings)
		}
		f.mu.Lock()
		f.err = nil
		f.mu.Unlock()
		time.Sleep(2*time.Hour + 30*time.Minute) // into the renewal window, past promotion
		synctest.Wait()
		cur := served(t, c)
		if cur.Leaf.Equal(first.Leaf) {
			t.Error("no renewal after the outage")
		}
		if err := trusted(f.caBundle(), cur, o.DNSNames[0], time.Now()); err != nil {
			t.Error(err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v after cancel, want nil", err)
		}
	})
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
