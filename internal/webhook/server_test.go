package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
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
	h := NewHandler(NewMutator(Options{Namespace: "keyward"}, testConfigMaps()), slog.New(slog.DiscardHandler), nil)
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

func TestFileCertificateReloads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	write := func(mtime time.Time) []byte {
		_, cert, key, err := GenerateCertificate([]string{"a"}, nil, time.Now(), time.Hour)
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
	ca, certPEM, keyPEM, err := GenerateCertificate(nil, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Now(), time.Hour)
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
	h := NewHandler(NewMutator(Options{}, testConfigMaps()), slog.New(slog.DiscardHandler), nil)
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
