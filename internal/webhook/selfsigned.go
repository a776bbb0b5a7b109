package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync/atomic"
	"time"

	admregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keyward/keyward/internal/backoff"
)

// Defaults of the self-generated certificate's lifetime and renewal margin.
const (
	DefaultCertLifetime    = 365 * 24 * time.Hour
	DefaultCertRenewBefore = 30 * 24 * time.Hour
)

// Keys of the shared Secret beside tls.crt and tls.key (the pair every
// replica serves).
const (
	// secretKeyCA holds every CA the caBundle trusts: the one that signed
	// tls.crt and, during a renewal, the one that signed next.crt.
	secretKeyCA = "ca.crt"
	// secretKeyNextCert and secretKeyNextKey hold the staged pair: signed
	// by a CA already in ca.crt, served once the caBundle trusts it.
	secretKeyNextCert = "next.crt"
	secretKeyNextKey  = "next.key"
)

// syncAttempts bounds how often one check starts over after another
// replica changed the Secret or the webhook configuration under it.
const syncAttempts = 5

// SelfSigned configures Kube.Bootstrap.
type SelfSigned struct {
	// Namespace and SecretName locate the kubernetes.io/tls Secret that
	// holds the CAs, certificate and key shared by every replica.
	Namespace, SecretName string
	// DNSNames and IPs are the serving certificate's names (the Service's
	// DNS names; 127.0.0.1 in tests).
	DNSNames []string
	IPs      []net.IP
	// WebhookConfig is the MutatingWebhookConfiguration whose webhooks'
	// clientConfig.caBundle is kept equal to the Secret's ca.crt; ""
	// leaves it alone.
	WebhookConfig string
	// Lifetime of each generated CA and certificate; 0 means
	// DefaultCertLifetime.
	Lifetime time.Duration
	// RenewBefore is how long before the served certificate expires a new
	// CA and certificate are made; 0 means DefaultCertRenewBefore. At
	// most half of Lifetime.
	RenewBefore time.Duration
}

// Validate reports what is wrong with o: a missing Secret or name, a
// negative duration, or a renewal margin over half the lifetime.
func (o SelfSigned) Validate() error {
	_, err := o.withDefaults()
	return err
}

// withDefaults fills in zero durations and checks o.
func (o SelfSigned) withDefaults() (SelfSigned, error) {
	if o.Lifetime < 0 {
		return o, fmt.Errorf("webhook certificate: negative lifetime %v", o.Lifetime)
	}
	if o.RenewBefore < 0 {
		return o, fmt.Errorf("webhook certificate: negative renewal margin %v", o.RenewBefore)
	}
	if o.Lifetime == 0 {
		o.Lifetime = DefaultCertLifetime
	}
	if o.RenewBefore == 0 {
		o.RenewBefore = min(DefaultCertRenewBefore, o.Lifetime/2)
	}
	switch {
	case o.Namespace == "" || o.SecretName == "":
		return o, errors.New("webhook certificate: no Secret namespace or name")
	case len(o.DNSNames) == 0 && len(o.IPs) == 0:
		return o, errors.New("webhook certificate: no DNS name or IP")
	case o.RenewBefore > o.Lifetime/2:
		return o, fmt.Errorf("webhook certificate: renewal margin %v is more than half the lifetime %v", o.RenewBefore, o.Lifetime)
	case o.checkEvery() <= 0:
		return o, fmt.Errorf("webhook certificate: renewal margin %v is too short", o.RenewBefore)
	}
	return o, nil
}

// promoteAfter is how long a staged pair waits, its CA already in the
// caBundle, before it is served: time for the API server to load the
// new caBundle.
func (o SelfSigned) promoteAfter() time.Duration { return min(o.RenewBefore/4, 10*time.Minute) }

// checkEvery is how often each replica reads the Secret: the delay after
// which it serves a pair another replica promoted.
func (o SelfSigned) checkEvery() time.Duration { return min(o.RenewBefore/10, time.Minute) }

// certState is what the shared Secret holds.
type certState struct {
	cas  []*x509.Certificate // ca.crt
	cur  *servingPair        // tls.crt, tls.key
	next *servingPair        // next.crt, next.key
}

func readState(s *corev1.Secret) certState {
	if s == nil {
		return certState{}
	}
	return certState{
		cas:  parseBundle(s.Data[secretKeyCA]),
		cur:  parsePair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]),
		next: parsePair(s.Data[secretKeyNextCert], s.Data[secretKeyNextKey]),
	}
}

func (st certState) data() map[string][]byte {
	d := map[string][]byte{secretKeyCA: encodeBundle(st.cas)}
	if st.cur != nil {
		d[corev1.TLSCertKey], d[corev1.TLSPrivateKeyKey] = st.cur.certPEM, st.cur.keyPEM
	}
	if st.next != nil {
		d[secretKeyNextCert], d[secretKeyNextKey] = st.next.certPEM, st.next.keyPEM
	}
	return d
}

// generate makes a new CA and a serving pair signed by it.
func (o SelfSigned) generate(now time.Time) (*x509.Certificate, *servingPair, error) {
	caPEM, certPEM, keyPEM, err := GenerateCertificate(o.DNSNames, o.IPs, now, o.Lifetime)
	if err != nil {
		return nil, nil, err
	}
	cas := parseBundle(caPEM)
	p := parsePair(certPEM, keyPEM)
	if len(cas) != 1 || p == nil {
		return nil, nil, errors.New("generate certificate: cannot parse what was generated")
	}
	return cas[0], p, nil
}

// plan returns the state the Secret should hold at now and what changed
// (nothing when the state is right). published reports whether the
// API server's caBundle trusts a CA. The rules, which keep every pair a
// replica may serve trusted:
//   - a CA stays in ca.crt until it expires (with the last certificate
//     it signed, which lives exactly as long);
//   - when less than RenewBefore is left on the served pair, a new CA
//     and pair are staged: the CA joins ca.crt, the pair waits in next.*;
//   - the staged pair replaces tls.* once its CA has been in the
//     caBundle for promoteAfter (or at once if tls.* is unusable);
//   - with no usable pair at all (first start, expired, names changed),
//     a new CA and pair are served at once.
func (o SelfSigned) plan(st certState, now time.Time, published func(*x509.Certificate) bool) (certState, []string, error) {
	var events []string
	out := certState{cur: st.cur, next: st.next}
	for _, ca := range st.cas {
		if now.Before(ca.NotAfter) {
			out.cas = append(out.cas, ca)
		}
	}
	if len(out.cas) != len(st.cas) {
		events = append(events, "dropped an expired CA from the caBundle")
	}
	usable := func(p *servingPair) bool {
		return p != nil && now.Before(p.leaf().NotAfter) && p.covers(o.DNSNames, o.IPs) && p.issuer(out.cas) != nil
	}
	switch {
	case !usable(out.cur) && usable(out.next):
		out.cur, out.next = out.next, nil
		events = append(events, "served the staged certificate early: the current one is unusable")
	case !usable(out.cur):
		ca, p, err := o.generate(now)
		if err != nil {
			return st, nil, err
		}
		out.cas, out.cur, out.next = append(out.cas, ca), p, nil
		events = append(events, "generated a CA and certificate")
	case out.next != nil && !usable(out.next):
		out.next = nil
		events = append(events, "discarded an unusable staged certificate")
	case out.next != nil:
		stagedAt := out.next.leaf().NotBefore.Add(clockSkew)
		if !now.Before(stagedAt.Add(o.promoteAfter())) && published(out.next.issuer(out.cas)) {
			out.cur, out.next = out.next, nil
			events = append(events, "served the staged certificate: the caBundle trusts its CA")
		}
	}
	if out.next == nil && !now.Before(out.cur.leaf().NotAfter.Add(-o.RenewBefore)) {
		ca, p, err := o.generate(now)
		if err != nil {
			return st, nil, err
		}
		out.cas, out.next = append(out.cas, ca), p
		events = append(events, "staged a new CA and certificate; the caBundle trusts old and new")
	}
	return out, events, nil
}

// SelfSignedCertificate is the webhook's self-generated serving
// certificate, shared by the replicas through a Secret and renewed while
// running (Run): old and new CA are both in the caBundle during the
// overlap, and a replica serves a new certificate only once the caBundle
// trusts it. It is safe for concurrent use.
type SelfSignedCertificate struct {
	k   *Kube
	o   SelfSigned
	log *slog.Logger
	cur atomic.Pointer[tls.Certificate]
}

// Bootstrap reads the shared Secret (creating it, or a new pair in it,
// when it holds none usable for o's names), sets the caBundle of the
// webhook configuration, and returns the certificate to serve. Replicas
// starting together agree: writes are conditional, and the loser reads
// the winner's. Call Run to keep it fresh. Errors name objects, never key
// material.
func (k *Kube) Bootstrap(ctx context.Context, o SelfSigned, logger *slog.Logger) (*SelfSignedCertificate, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &SelfSignedCertificate{k: k, o: o, log: logger}
	if err := c.sync(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// GetCertificate is for tls.Config.GetCertificate: the pair to serve now
// (its Leaf is set).
func (c *SelfSignedCertificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cur.Load(), nil
}

// Run checks the Secret and the caBundle every minute (a tenth of the
// renewal margin when that is shorter), staging, promoting and pruning as
// plan says and serving what the Secret holds, until ctx is done; then it
// returns nil. A failed check keeps the current certificate, is logged at
// most once a minute and retried with backoff.
func (c *SelfSignedCertificate) Run(ctx context.Context) error {
	every := c.o.checkEvery()
	b := backoff.Backoff{Base: every / 4, Max: every}
	warn := backoff.Every{Interval: max(every, time.Minute)}
	delay := every
	for {
		if backoff.Wait(ctx, delay) != nil {
			return nil
		}
		err := c.sync(ctx)
		if err == nil {
			b.Reset()
			warn.Reset()
			delay = every
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		if ok, n := warn.Allow(); ok {
			leaf := c.cur.Load().Leaf
			c.log.Warn("webhook certificate check failed; serving the current certificate", "err", err,
				"not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "suppressed", n)
		}
		delay = b.Next()
	}
}

// sync brings the Secret and the caBundle to plan's state and serves the
// Secret's pair. It reads the webhook configuration before the Secret:
// every replica writes the Secret before the caBundle, so a caBundle it
// read is never newer than the Secret it reads next, and its conditional
// caBundle update can never take a trusted CA away from another
// replica's newer write.
func (c *SelfSignedCertificate) sync(ctx context.Context) error {
	o, api := c.o, c.k.api
	var err error
	for range syncAttempts {
		var mwc *admregv1.MutatingWebhookConfiguration
		published := func(*x509.Certificate) bool { return true }
		if o.WebhookConfig != "" {
			if mwc, err = api.getWebhookConfig(ctx, o.WebhookConfig); err != nil {
				return fmt.Errorf("get mutatingwebhookconfiguration %s: %w", o.WebhookConfig, err)
			}
			published = func(ca *x509.Certificate) bool {
				return len(mwc.Webhooks) > 0 && !slices.ContainsFunc(mwc.Webhooks, func(w admregv1.MutatingWebhook) bool {
					return !bundleHas(w.ClientConfig.CABundle, ca)
				})
			}
		}
		s, gerr := api.getSecret(ctx, o.Namespace, o.SecretName)
		if gerr != nil && !apierrors.IsNotFound(gerr) {
			return fmt.Errorf("get secret %s/%s: %w", o.Namespace, o.SecretName, gerr)
		}
		if gerr != nil {
			s = nil
		}
		want, events, perr := o.plan(readState(s), c.k.clock(), published)
		if perr != nil {
			return perr
		}
		if len(events) > 0 {
			if err = c.writeSecret(ctx, s, want); retryable(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("write secret %s/%s: %w", o.Namespace, o.SecretName, err)
			}
			for _, e := range events {
				c.log.Info("webhook certificate: "+e, "secret", o.Namespace+"/"+o.SecretName,
					"cas", len(want.cas), "not_after", want.cur.leaf().NotAfter.UTC().Format(time.RFC3339))
			}
		}
		if mwc != nil {
			if err = c.publish(ctx, mwc, encodeBundle(want.cas)); retryable(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("set caBundle of mutatingwebhookconfiguration %s: %w", o.WebhookConfig, err)
			}
		}
		c.serve(want.cur)
		return nil
	}
	return fmt.Errorf("webhook certificate: secret %s/%s or mutatingwebhookconfiguration %s kept changing: %w", o.Namespace, o.SecretName, o.WebhookConfig, err)
}

func retryable(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }

func (c *SelfSignedCertificate) writeSecret(ctx context.Context, s *corev1.Secret, st certState) error {
	if s == nil {
		return c.k.api.createSecret(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: c.o.Namespace, Name: c.o.SecretName, Labels: map[string]string{"app.kubernetes.io/managed-by": "keyward-webhook"}},
			Type:       corev1.SecretTypeTLS,
			Data:       st.data(),
		})
	}
	s = s.DeepCopy()
	s.Data = st.data()
	return c.k.api.updateSecret(ctx, s)
}

// publish sets every webhook's caBundle of mwc (as read) to bundle, with
// one update conditional on what was read.
func (c *SelfSignedCertificate) publish(ctx context.Context, mwc *admregv1.MutatingWebhookConfiguration, bundle []byte) error {
	mwc = mwc.DeepCopy()
	changed := false
	for i := range mwc.Webhooks {
		if !bytes.Equal(mwc.Webhooks[i].ClientConfig.CABundle, bundle) {
			mwc.Webhooks[i].ClientConfig.CABundle = bundle
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := c.k.api.updateWebhookConfig(ctx, mwc); err != nil {
		return err
	}
	c.log.Info("caBundle set", "mutatingwebhookconfiguration", c.o.WebhookConfig, "cas", len(parseBundle(bundle)))
	return nil
}

// serve makes p the pair GetCertificate returns.
func (c *SelfSignedCertificate) serve(p *servingPair) {
	if old := c.cur.Load(); old != nil && bytes.Equal(old.Certificate[0], p.cert.Certificate[0]) {
		return
	}
	cert := p.cert
	c.cur.Store(&cert)
	c.log.Info("serving webhook certificate", "serial", cert.Leaf.SerialNumber.Text(16),
		"not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
}
