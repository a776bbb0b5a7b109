package csiprovider

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers"
)

// TestServiceAccountAnnotations: the reader gets the ServiceAccount with
// the provider's own credential and returns its annotations; a name that
// could change the request's path is refused without a request, and a
// refusal says the status, not the answer's body.
func TestServiceAccountAnnotations(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.Header.Get("Authorization") != "Bearer own-token" {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/api/v1/namespaces/apps/serviceaccounts/web":
			_, _ = w.Write([]byte(`{"kind":"ServiceAccount","metadata":{"name":"web","annotations":{"eks.amazonaws.com/role-arn":"arn:aws:iam::111122223333:role/web"}}}`))
		default:
			http.Error(w, `{"message":"forbidden: body-detail-7f2"}`, http.StatusForbidden)
		}
	}))
	defer srv.Close()
	read, err := ServiceAccountAnnotations(srv.URL, nil, func() (string, error) { return "own-token", nil })
	if err != nil {
		t.Fatal(err)
	}
	ann, err := read(t.Context(), "apps", "web")
	if err != nil || ann["eks.amazonaws.com/role-arn"] != "arn:aws:iam::111122223333:role/web" {
		t.Fatalf("annotations %v, %v", ann, err)
	}
	_, err = read(t.Context(), "apps", "other")
	if err == nil || !strings.Contains(err.Error(), "HTTP 403") || strings.Contains(err.Error(), "body-detail") {
		t.Errorf("a refused read: %v, want HTTP 403 without the body", err)
	}
	// keyward's own refusal fails the mount at once (permission denied,
	// not retried), saying what to grant.
	if !errors.Is(err, providers.ErrPermissionDenied) || !strings.Contains(err.Error(), "readServiceAccounts") {
		t.Errorf("a refused read: %v, want permission denied naming csiProvider.readServiceAccounts", err)
	}
	before := requests.Load()
	for _, bad := range [][2]string{{"apps", "../../secrets/x"}, {"a/b", "web"}, {"", "web"}, {"apps", "Web"}} {
		if _, err := read(t.Context(), bad[0], bad[1]); err == nil {
			t.Errorf("ServiceAccount %q/%q: no error", bad[0], bad[1])
		}
	}
	if requests.Load() != before {
		t.Error("an invalid name was sent to the API server")
	}
}

// TestAnnotationsOfPod: a Server's workload reads the annotations of the
// pod's own ServiceAccount, and none without a reader or a name.
func TestAnnotationsOfPod(t *testing.T) {
	var asked string
	s := New(Options{Annotations: func(_ context.Context, ns, name string) (map[string]string, error) {
		asked = ns + "/" + name
		return map[string]string{"k": "v"}, nil
	}})
	f := s.annotations(Pod{Namespace: "apps", ServiceAccount: "web"})
	if ann, err := f(t.Context()); err != nil || ann["k"] != "v" || asked != "apps/web" {
		t.Fatalf("annotations %v %v of %q", ann, err, asked)
	}
	if s.annotations(Pod{Namespace: "apps"}) != nil || New(Options{}).annotations(Pod{Namespace: "apps", ServiceAccount: "web"}) != nil {
		t.Error("a reader for a pod without a ServiceAccount name, or a server without a reader")
	}
}

// TestIdentityBoundToServiceAccount: with a reviewer, a pod's tokens
// must be of the ServiceAccount the driver names for it (whose
// annotations its pooled providers read); a token of another one, as a
// SecretProviderClass could pass, is refused.
func TestIdentityBoundToServiceAccount(t *testing.T) {
	ids := &identities{now: time.Now, seen: map[[32]byte]reviewed{},
		review: func(_ context.Context, token, _ string) (string, error) {
			return map[string]string{"t-web": "system:serviceaccount:apps:web", "t-admin": "system:serviceaccount:kube-system:admin"}[token], nil
		}}
	own := Pod{Namespace: "apps", ServiceAccount: "web", Tokens: map[string]Token{"": {Token: "t-web"}}}
	if id, err := ids.identity(t.Context(), own); err != nil || id != "sa:system:serviceaccount:apps:web" {
		t.Fatalf("the pod's own token: identity %q, %v", id, err)
	}
	for _, pod := range []Pod{
		{Namespace: "apps", ServiceAccount: "web", Tokens: map[string]Token{"": {Token: "t-admin"}}},
		{Namespace: "apps", ServiceAccount: "other", Tokens: map[string]Token{"": {Token: "t-web"}}},
		{Namespace: "kube-system", ServiceAccount: "web", Tokens: map[string]Token{"": {Token: "t-web"}}},
	} {
		if id, err := ids.identity(t.Context(), pod); err == nil {
			t.Errorf("pod of %s/%s: identity %q from another ServiceAccount's token, want a refusal", pod.Namespace, pod.ServiceAccount, id)
		}
	}
}

// TestKubeCABundle: the API server's CA bundle is read as every CA of
// keyward is (internal/tlsclient): a bundle holding a private key besides
// the certificate is refused, naming the bundle and never its content.
func TestKubeCABundle(t *testing.T) {
	ca, err := testenv.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TokenReviewer("https://127.0.0.1:1", ca.PEM, nil); err != nil {
		t.Fatalf("a CA bundle of one certificate: %v", err)
	}
	certPEM, keyPEM, err := ca.Issue("127.0.0.1", true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = TokenReviewer("https://127.0.0.1:1", append(append([]byte{}, certPEM...), keyPEM...), nil)
	if err == nil || !strings.HasPrefix(err.Error(), "kube CA bundle: PEM block 2 is a PRIVATE KEY") {
		t.Fatalf("a CA bundle holding a private key: error %v, want it refused naming the bundle", err)
	}
	if strings.Contains(err.Error(), "MIG") {
		t.Fatal("leaked value of the CA bundle's key in the error")
	}
}

// TestIdentityRefusedOrUnavailable: a mount whose pod's token the reviewer
// refuses is PermissionDenied; one whose review could not be made (the
// API server unreachable, or answering 5xx) is Unavailable, to be retried,
// not reported as the pod's fault. keyward's own TokenReview permission
// refused is PermissionDenied, saying what to grant.
func TestIdentityRefusedOrUnavailable(t *testing.T) {
	var answer atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch code := int(answer.Load()); code {
		case http.StatusCreated:
			_, _ = w.Write([]byte(`{"status":{"authenticated":false}}`))
		default:
			http.Error(w, "body-detail-3a9", code)
		}
	}))
	defer srv.Close()
	review, err := TokenReviewer(srv.URL, nil, func() (string, error) { return "own-token", nil })
	if err != nil {
		t.Fatal(err)
	}
	cfg := "version: 1\nsecrets: {A: 'k8s://default/db#password'}\nfiles: [{path: a, secret: A}]\n"
	tokens := `{"":{"token":"pod-token-5e1"}}`
	for _, tc := range []struct {
		status int
		code   codes.Code
		want   string
	}{
		{http.StatusCreated, codes.PermissionDenied, "token is not valid"},
		{http.StatusForbidden, codes.PermissionDenied, "csiProvider.tokenReview"},
		{http.StatusServiceUnavailable, codes.Unavailable, "token review: HTTP 503"},
	} {
		answer.Store(int32(tc.status))
		c := serve(t, Options{APIServer: "https://127.0.0.1:1", Reviewer: review})
		_, err := c.Mount(context.Background(), &v1alpha1.MountRequest{Attributes: attributes(t, cfg, map[string]string{ServiceAccountTokens: tokens})})
		st, _ := status.FromError(err)
		if st.Code() != tc.code || !strings.Contains(st.Message(), tc.want) {
			t.Errorf("review answered %d: mount %v (%s), want %v saying %q", tc.status, st.Code(), st.Message(), tc.code, tc.want)
		}
		if strings.Contains(st.Message(), "pod-token-5e1") || strings.Contains(st.Message(), "body-detail") {
			t.Errorf("review answered %d: leaked value of the pod's token or the answer's body in the error", tc.status)
		}
	}
}
