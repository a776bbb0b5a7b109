package webhook

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxReviewBytes bounds an AdmissionReview body (the API server sends at
// most a few hundred KiB for a pod).
const maxReviewBytes = 4 << 20

// Handler serves POST /mutate (admission.k8s.io/v1 AdmissionReview of
// Pods) and GET /healthz. It is safe for concurrent use.
type Handler struct {
	m       *Mutator
	logger  *slog.Logger
	metrics *Metrics
	mux     *http.ServeMux
}

// NewHandler returns the webhook's HTTP handler around m, counting
// admissions in metrics (nil: not counted).
func NewHandler(m *Mutator, logger *slog.Logger, metrics *Metrics) *Handler {
	h := &Handler{m: m, logger: logger, metrics: metrics, mux: http.NewServeMux()}
	h.mux.HandleFunc("POST /mutate", h.mutate)
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) mutate(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(io.LimitReader(r.Body, maxReviewBytes)).Decode(&review); err != nil || review.Request == nil {
		h.metrics.observe(ResultBadRequest, time.Since(start))
		http.Error(w, "body is not an admission.k8s.io/v1 AdmissionReview with a request", http.StatusBadRequest)
		return
	}
	req := review.Request
	resp, result := h.review(r.Context(), req)
	defer func() { h.metrics.observe(result, time.Since(start)) }()
	resp.UID = req.UID
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
	if out.APIVersion == "" {
		out.APIVersion, out.Kind = "admission.k8s.io/v1", "AdmissionReview"
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// review answers one admission request, and says how (a Result word).
func (h *Handler) review(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, string) {
	allow := &admissionv1.AdmissionResponse{Allowed: true}
	if req.Kind.Kind != "Pod" || req.Kind.Group != "" || req.Operation != admissionv1.Create {
		return allow, ResultSkipped
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return denied(http.StatusBadRequest, "object is not a Pod"), ResultBadRequest
	}
	name := pod.Name
	if name == "" {
		name = pod.GenerateName + "*"
	}
	patch, err := h.m.Mutate(ctx, req.Namespace, &pod)
	var d *Denial
	switch {
	case errors.As(err, &d):
		h.logger.Info("denied", "namespace", req.Namespace, "pod", name, "reason", d.Msg)
		return denied(http.StatusForbidden, "keyward: "+d.Msg), ResultDenied
	case err != nil:
		h.logger.Error("admission failed", "namespace", req.Namespace, "pod", name, "err", err)
		return denied(http.StatusInternalServerError, "keyward: "+err.Error()), ResultError
	case patch == nil:
		return allow, ResultSkipped
	}
	h.logger.Info("injected", "namespace", req.Namespace, "pod", name)
	pt := admissionv1.PatchTypeJSONPatch
	allow.Patch, allow.PatchType = patch, &pt
	return allow, ResultInjected
}

func denied(code int32, msg string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{Status: metav1.StatusFailure, Code: code, Message: msg}}
}

// FileCertificate serves a certificate and key from PEM files (mounted
// from a cert-manager Secret) and reloads them when their modification
// time changes, so a renewal needs no restart. It is safe for concurrent
// use.
type FileCertificate struct {
	certFile, keyFile string

	mu    sync.Mutex
	mtime time.Time
	cert  *tls.Certificate
}

// NewFileCertificate loads the pair once, returning its error.
func NewFileCertificate(certFile, keyFile string) (*FileCertificate, error) {
	f := &FileCertificate{certFile: certFile, keyFile: keyFile}
	if _, err := f.GetCertificate(nil); err != nil {
		return nil, err
	}
	return f, nil
}

// GetCertificate is for tls.Config.GetCertificate: the current pair,
// reloaded when either file changed; on a reload error the previous pair
// keeps being served.
func (f *FileCertificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	var mtime time.Time
	for _, p := range []string{f.certFile, f.keyFile} {
		if st, err := os.Stat(p); err == nil && st.ModTime().After(mtime) {
			mtime = st.ModTime()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cert != nil && !mtime.After(f.mtime) {
		return f.cert, nil
	}
	c, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
	if err != nil {
		if f.cert != nil {
			return f.cert, nil
		}
		return nil, fmt.Errorf("load webhook certificate: %w", err)
	}
	f.cert, f.mtime = &c, mtime
	return f.cert, nil
}

// Serve serves h over TLS on ln with getCert until ctx is done, then
// shuts down gracefully (at most 10 s) and returns nil; it returns the
// server's error otherwise.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: getCert},
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve webhook: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	if err != nil {
		return fmt.Errorf("shut down webhook: %w", err)
	}
	return nil
}
