package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

func review(t testing.TB, kind metav1.GroupVersionKind, op admissionv1.Operation, obj any) []byte {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: types.UID("uid-1"), Kind: kind, Namespace: "app", Operation: op,
			Object: runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var podKind = metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}

func TestHandler(t *testing.T) {
	t.Parallel()
	h := NewHandler(NewMutator(Options{Namespace: "keyward"}, testConfigMaps()), slog.New(slog.DiscardHandler))
	tests := []struct {
		name      string
		body      []byte
		code      int
		allowed   bool
		patched   bool
		denyCode  int32
		denySub   string
		wantNoUID bool
	}{
		{name: "inject", body: review(t, podKind, admissionv1.Create, testPod(inject(nil))), code: 200, allowed: true, patched: true},
		{name: "untouched", body: review(t, podKind, admissionv1.Create, testPod(nil)), code: 200, allowed: true},
		{name: "update is not mutated", body: review(t, podKind, admissionv1.Update, testPod(inject(nil))), code: 200, allowed: true},
		{name: "other kind", body: review(t, metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, admissionv1.Create, map[string]any{}), code: 200, allowed: true},
		{name: "denied", body: review(t, podKind, admissionv1.Create, testPod(inject(map[string]string{AnnotationConfig: "nope"}))), code: 200, denyCode: 403, denySub: "keyward: annotation keyward.io/config: ConfigMap app/nope does not exist"},
		{name: "not a review", body: []byte(`{"hello":`), code: 400, wantNoUID: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/mutate", bytes.NewReader(tt.body)))
			if rec.Code != tt.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.code, rec.Body)
			}
			if tt.wantNoUID {
				return
			}
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
			r := out.Response
			if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || r == nil || r.UID != "uid-1" {
				t.Fatalf("response %+v", out)
			}
			if r.Allowed != tt.allowed || (len(r.Patch) > 0) != tt.patched {
				t.Errorf("allowed %v patch %s", r.Allowed, r.Patch)
			}
			if tt.patched && (r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch) {
				t.Errorf("patchType %v", r.PatchType)
			}
			if tt.denyCode != 0 && (r.Result == nil || r.Result.Code != tt.denyCode || !strings.Contains(r.Result.Message, tt.denySub)) {
				t.Errorf("result %+v, want code %d with %q", r.Result, tt.denyCode, tt.denySub)
			}
		})
	}
}

// fakeKube is an in-memory kubeAPI.
type fakeKube struct {
	configMaps map[string]*corev1.ConfigMap
	cmGets     int
	secrets    map[string]*corev1.Secret
	mwc        *admregv1.MutatingWebhookConfiguration
	winner     *corev1.Secret
	creates    int
	updates    int
}

var _ kubeAPI = (*fakeKube)(nil)

var secretGR = schema.GroupResource{Resource: "secrets"}

func (f *fakeKube) getConfigMap(_ context.Context, ns, name string) (*corev1.ConfigMap, error) {
	f.cmGets++
	if cm, ok := f.configMaps[ns+"/"+name]; ok {
		return cm.DeepCopy(), nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}

func TestConfigMapDataCache(t *testing.T) {
	t.Parallel()
	f := newFakeKube()
	now := time.Unix(1000, 0)
	k := &Kube{api: f, now: func() time.Time { return now }}
	ctx := context.Background()
	if _, err := k.ConfigMapData(ctx, "app", "kw"); !errors.Is(err, ErrConfigMapNotFound) {
		t.Fatalf("err = %v, want ErrConfigMapNotFound", err)
	}
	f.configMaps = map[string]*corev1.ConfigMap{"app/kw": {Data: map[string]string{ConfigKey: "v1"}}}
	steps := []struct {
		advance time.Duration
		set     string
		want    string
		gets    int
	}{
		{0, "", "v1", 2},                 // a miss is not cached
		{4 * time.Second, "v2", "v1", 2}, // within the TTL: cached
		{2 * time.Second, "", "v2", 3},   // expired: read again
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		if s.set != "" {
			f.configMaps["app/kw"].Data[ConfigKey] = s.set
		}
		d, err := k.ConfigMapData(ctx, "app", "kw")
		if err != nil || d[ConfigKey] != s.want || f.cmGets != s.gets {
			t.Errorf("step %d: %v %v, %d GETs; want %s, %d GETs", i, d, err, f.cmGets, s.want, s.gets)
		}
	}
}

func (f *fakeKube) getSecret(_ context.Context, ns, name string) (*corev1.Secret, error) {
	if s, ok := f.secrets[ns+"/"+name]; ok {
		return s.DeepCopy(), nil
	}
	return nil, apierrors.NewNotFound(secretGR, name)
}

func (f *fakeKube) createSecret(_ context.Context, s *corev1.Secret) error {
	f.creates++
	if f.winner != nil {
		f.secrets[s.Namespace+"/"+s.Name] = f.winner
		f.winner = nil
		return apierrors.NewAlreadyExists(secretGR, s.Name)
	}
	f.secrets[s.Namespace+"/"+s.Name] = s.DeepCopy()
	return nil
}

func (f *fakeKube) updateSecret(_ context.Context, s *corev1.Secret) error {
	f.secrets[s.Namespace+"/"+s.Name] = s.DeepCopy()
	return nil
}

func (f *fakeKube) getWebhookConfig(context.Context, string) (*admregv1.MutatingWebhookConfiguration, error) {
	return f.mwc.DeepCopy(), nil
}

func (f *fakeKube) updateWebhookConfig(_ context.Context, c *admregv1.MutatingWebhookConfiguration) error {
	f.updates++
	f.mwc = c.DeepCopy()
	return nil
}

func newFakeKube() *fakeKube {
	return &fakeKube{
		secrets: map[string]*corev1.Secret{},
		mwc: &admregv1.MutatingWebhookConfiguration{Webhooks: []admregv1.MutatingWebhook{
			{Name: "a.keyward.io"}, {Name: "b.keyward.io"},
		}},
	}
}

func verifies(t *testing.T, caPEM []byte, cert tls.Certificate, name string) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("caBundle is not PEM")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
		t.Errorf("certificate does not verify for %s: %v", name, err)
	}
}

func TestBootstrap(t *testing.T) {
	t.Parallel()
	o := SelfSigned{Namespace: "keyward", SecretName: "tls", DNSNames: []string{"keyward-webhook.keyward.svc"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, WebhookConfig: "keyward"}
	logger := slog.New(slog.DiscardHandler)

	t.Run("creates, then reuses", func(t *testing.T) {
		t.Parallel()
		f := newFakeKube()
		k := &Kube{api: f}
		c1, err := k.Bootstrap(context.Background(), o, logger)
		if err != nil {
			t.Fatal(err)
		}
		s := f.secrets["keyward/tls"]
		if s == nil || s.Type != corev1.SecretTypeTLS {
			t.Fatalf("secret %+v", s)
		}
		for _, w := range f.mwc.Webhooks {
			if !bytes.Equal(w.ClientConfig.CABundle, s.Data["ca.crt"]) {
				t.Errorf("webhook %s caBundle not set", w.Name)
			}
		}
		verifies(t, s.Data["ca.crt"], c1, "keyward-webhook.keyward.svc")
		c2, err := k.Bootstrap(context.Background(), o, logger)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(c1.Certificate[0], c2.Certificate[0]) || f.creates != 1 || f.updates != 1 {
			t.Errorf("second start: new cert %v, creates %d, caBundle updates %d; want reuse, 1, 1", !bytes.Equal(c1.Certificate[0], c2.Certificate[0]), f.creates, f.updates)
		}
	})

	t.Run("another replica won the race", func(t *testing.T) {
		t.Parallel()
		ca, cert, key, err := GenerateCertificate(o.DNSNames, o.IPs, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		f := newFakeKube()
		f.winner = &corev1.Secret{Data: map[string][]byte{"ca.crt": ca, "tls.crt": cert, "tls.key": key}}
		got, err := (&Kube{api: f}).Bootstrap(context.Background(), o, logger)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := tls.X509KeyPair(cert, key)
		if !bytes.Equal(got.Certificate[0], want.Certificate[0]) || !bytes.Equal(f.mwc.Webhooks[0].ClientConfig.CABundle, ca) {
			t.Error("did not adopt the winner's certificate and CA")
		}
	})

	t.Run("replaces an expiring or mismatched certificate", func(t *testing.T) {
		t.Parallel()
		for name, gen := range map[string]func() ([]byte, []byte, []byte, error){
			"expiring": func() ([]byte, []byte, []byte, error) {
				return GenerateCertificate(o.DNSNames, o.IPs, time.Now().Add(-350*24*time.Hour))
			},
			"wrong name": func() ([]byte, []byte, []byte, error) {
				return GenerateCertificate([]string{"other"}, o.IPs, time.Now())
			},
		} {
			ca, cert, key, err := gen()
			if err != nil {
				t.Fatal(err)
			}
			f := newFakeKube()
			f.secrets["keyward/tls"] = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "keyward", Name: "tls"}, Data: map[string][]byte{"ca.crt": ca, "tls.crt": cert, "tls.key": key}}
			got, err := (&Kube{api: f}).Bootstrap(context.Background(), o, logger)
			if err != nil {
				t.Fatal(err)
			}
			if old, _ := tls.X509KeyPair(cert, key); bytes.Equal(got.Certificate[0], old.Certificate[0]) {
				t.Errorf("%s: kept the old certificate", name)
			}
			verifies(t, f.secrets["keyward/tls"].Data["ca.crt"], got, o.DNSNames[0])
		}
	})
}

func TestFileCertificateReloads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	write := func(mtime time.Time) []byte {
		_, cert, key, err := GenerateCertificate([]string{"a"}, nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for p, b := range map[string][]byte{certFile: cert, keyFile: key} {
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}
		blk, _ := pem.Decode(cert)
		return blk.Bytes
	}
	first := write(time.Now().Add(-time.Hour))
	fc, err := NewFileCertificate(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := fc.GetCertificate(nil); !bytes.Equal(c.Certificate[0], first) {
		t.Fatal("not the first certificate")
	}
	second := write(time.Now())
	if c, _ := fc.GetCertificate(nil); !bytes.Equal(c.Certificate[0], second) {
		t.Error("not reloaded after the files changed")
	}
	if err := os.WriteFile(keyFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(keyFile, time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	if c, err := fc.GetCertificate(nil); err != nil || !bytes.Equal(c.Certificate[0], second) {
		t.Errorf("a broken reload must keep the last pair: %v", err)
	}
	if _, err := NewFileCertificate(certFile, keyFile); err == nil {
		t.Error("NewFileCertificate accepted a broken key")
	}
}

func TestServeTLS(t *testing.T) {
	t.Parallel()
	ca, certPEM, keyPEM, err := GenerateCertificate(nil, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := tls.X509KeyPair(certPEM, keyPEM)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	h := NewHandler(NewMutator(Options{}, testConfigMaps()), slog.New(slog.DiscardHandler))
	go func() {
		done <- Serve(ctx, ln, h, func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil })
	}()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Post("https://"+ln.Addr().String()+"/mutate", "application/json", bytes.NewReader(review(t, podKind, admissionv1.Create, testPod(inject(nil)))))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	client.CloseIdleConnections()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"allowed":true`)) || !bytes.Contains(body, []byte(`"patch"`)) {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v after cancel, want nil", err)
	}
}
