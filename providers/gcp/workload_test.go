package gcp_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/gcp"
	"github.com/keyward/keyward/providers/gcp/gcpfake"
	"github.com/keyward/keyward/providers/providertest"
)

const testPool = "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/kube/providers/cluster"

// workloadSet is a provider set acting as the pod of ServiceAccount
// ns/sa, whose token for any audience is token, with annotations.
func workloadSet(t *testing.T, opts map[string]any, ns, sa, token string, annotations map[string]string) *providers.Set {
	t.Helper()
	return workloadSetIn(t, "", opts, ns, sa, token, annotations)
}

// workloadSetIn is workloadSet with the config's directory baseDir.
func workloadSetIn(t *testing.T, baseDir string, opts map[string]any, ns, sa, token string, annotations map[string]string) *providers.Set {
	t.Helper()
	doc, err := yaml.Marshal(opts)
	if err != nil {
		t.Fatal(err)
	}
	var audiences []string
	w := &providers.Workload{Namespace: ns, ServiceAccount: sa,
		Token: func(audience string) (string, error) {
			audiences = append(audiences, audience)
			return token, nil
		},
		Annotations: func(context.Context) (map[string]string, error) { return annotations, nil },
	}
	set := providers.NewSet(providers.Instance{Getenv: func(string) string { return "" }, BaseDir: baseDir}, []providers.Instance{{
		Name: "gcpsm", Kind: gcp.KindName, Workload: w,
		Decode: func(into any) error { return yaml.Unmarshal(doc, into) },
	}})
	t.Cleanup(func() {
		set.Close()
		for _, a := range audiences {
			if a != testPool {
				t.Errorf("the pod's token was asked for audience %q, want the workload identity provider", a)
			}
		}
	})
	return set
}

// metadataTrap points the metadata server's address at a listener that
// fails the test when asked, and Application Default Credentials at
// nothing.
func metadataTrap(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "no", http.StatusForbidden)
	}))
	t.Cleanup(func() {
		srv.Close()
		if n := hits.Load(); n > 0 {
			t.Errorf("the metadata server was asked %d times: a credential lookup of keyward's own", n)
		}
	})
	t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(srv.URL, "http://"))
	t.Setenv("GCE_METADATA_IP", strings.TrimPrefix(srv.URL, "http://"))
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/adc.json")
}

// TestWorkloadIdentityFederation: providers acting as two pods exchange
// each pod's own token at the STS (checked by the stand-in: grant, token
// types, audience, scope, subject) and impersonate the Google service
// account of the pod's annotation, or the instance's service_account, or
// use the federated token itself; Secret Manager (checking every call's
// token) lets each read only what its principal was granted. A refusal is
// PermissionDenied at once, and no error holds a token. Application
// Default Credentials and the metadata server are never asked. Not
// parallel: it sets the environment.
func TestWorkloadIdentityFederation(t *testing.T) {
	metadataTrap(t)
	e := ownEnv(t)
	tokens := map[string]string{"alice-kube-token": "system:serviceaccount:apps:alice", "bob-kube-token": "system:serviceaccount:apps:bob"}
	fed, err := gcpfake.StartFederation(testPool, func(_ context.Context, tok string) (string, error) {
		if s, ok := tokens[tok]; ok {
			return s, nil
		}
		return "", errors.New("unknown token")
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fed.Close() })
	const aliceGSA = "alice@kw-test-project.iam.gserviceaccount.com"
	fed.AllowImpersonation(aliceGSA, fed.FederatedPrincipal("system:serviceaccount:apps:alice"))
	e.addVersion(t, testProject, "alice-db", []byte("alice-pw"))
	e.addVersion(t, testProject, "bob-db", []byte("bob-pw"))
	e.fake.Authenticate(fed.Principal)
	e.fake.Grant(gcpfake.ServiceAccountPrincipal(aliceGSA), testProject, "alice-db")
	e.fake.Grant(fed.FederatedPrincipal("system:serviceaccount:apps:bob"), testProject, "bob-db")

	opts := map[string]any{"project": testProject, "endpoint": e.fake.Addr(), "insecure": true,
		"workload_identity_provider": testPool, "sts_endpoint": fed.STSEndpoint(), "iam_credentials_endpoint": fed.IAMCredentialsEndpoint()}
	read := func(set *providers.Set, secret string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		sec, err := set.Fetch(ctx, mustParse(t, "gcpsm://"+secret))
		if err != nil {
			for tok := range tokens {
				if strings.Contains(err.Error(), tok) {
					t.Errorf("leaked value of a pod's token in the error")
				}
			}
			return "", err
		}
		return sec.Value.Reveal(), nil
	}

	alice := workloadSet(t, opts, "apps", "alice", "alice-kube-token", map[string]string{gcp.ServiceAccountAnnotation: aliceGSA})
	if v, err := read(alice, "alice-db"); err != nil || v != "alice-pw" {
		t.Fatalf("alice reading her secret: %v", err)
	}
	if _, err := read(alice, "bob-db"); !errors.Is(err, providers.ErrPermissionDenied) {
		t.Errorf("alice reading bob's secret: %v, want permission denied", err)
	}
	bob := workloadSet(t, opts, "apps", "bob", "bob-kube-token", nil)
	if v, err := read(bob, "bob-db"); err != nil || v != "bob-pw" {
		t.Fatalf("bob reading his secret with the federated token: %v", err)
	}
	if _, err := read(bob, "alice-db"); !errors.Is(err, providers.ErrPermissionDenied) {
		t.Errorf("bob reading alice's secret: %v, want permission denied", err)
	}

	// Each pod's token was exchanged once (the provider keeps the access
	// token), for the pool's audience and cloud-platform; alice's then
	// impersonated her service account.
	var got []string
	for _, x := range fed.Exchanges() {
		if x.ServiceAccount != "" {
			got = append(got, "impersonate "+x.ServiceAccount+" as "+x.Subject)
			continue
		}
		if x.Audience != testPool || x.Scope != "https://www.googleapis.com/auth/cloud-platform" || !x.Granted {
			t.Errorf("exchange %+v", x)
		}
		got = append(got, "exchange "+x.Subject)
	}
	want := []string{"exchange system:serviceaccount:apps:alice", "impersonate " + aliceGSA + " as " + fed.FederatedPrincipal("system:serviceaccount:apps:alice"), "exchange system:serviceaccount:apps:bob"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("exchanges:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Naming another's service account gets the impersonation refused,
	// at once (not retried until the deadline).
	bobAsAlice := map[string]any{}
	for k, v := range opts {
		bobAsAlice[k] = v
	}
	bobAsAlice["service_account"] = aliceGSA
	start := time.Now()
	_, err = read(workloadSet(t, bobAsAlice, "apps", "bob", "bob-kube-token", nil), "alice-db")
	if !errors.Is(err, providers.ErrPermissionDenied) || !strings.Contains(err.Error(), "impersonating "+aliceGSA) {
		t.Errorf("bob impersonating alice's service account: %v, want permission denied naming the impersonation", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("a refused impersonation took %v: retried", d)
	}
	// A provider acting as a pod hands out no Application Default
	// Credentials as a token.
	prov, err := alice.Provider("gcpsm")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prov.(providers.CredentialSource).Credential(t.Context(), providers.CredentialRequest{}); !errors.Is(err, providers.ErrPermissionDenied) {
		t.Errorf("Credential acting as a pod: %v, want permission denied", err)
	}
	// A token the STS cannot verify is refused.
	_, err = read(workloadSet(t, opts, "apps", "mallory", "forged-token", nil), "bob-db")
	if !errors.Is(err, providers.ErrPermissionDenied) || !strings.Contains(err.Error(), "token exchange") || strings.Contains(err.Error(), "forged-token") {
		t.Errorf("a forged token: %v, want permission denied by the token exchange, without the token", err)
	}
}

// TestWorkloadOptions: a provider acting as a pod needs the workload
// identity provider; the workload options are refused outside
// csi-provider.
func TestWorkloadOptions(t *testing.T) {
	w := &providers.Workload{Token: func(string) (string, error) { return "t", nil }}
	for name, c := range map[string]struct {
		opts map[string]any
		w    *providers.Workload
		want string
	}{
		"no provider":     {map[string]any{"project": testProject}, w, "workload_identity_provider: required"},
		"bad account":     {map[string]any{"workload_identity_provider": testPool, "service_account": "root"}, w, "not a service account email"},
		"not in csi":      {map[string]any{"workload_identity_provider": testPool}, nil, "for keyward csi-provider"},
		"bad sts address": {map[string]any{"workload_identity_provider": testPool, "sts_endpoint": "ftp://x"}, w, "sts_endpoint"},
	} {
		doc, _ := yaml.Marshal(c.opts)
		set := providers.NewSet(providers.Instance{}, []providers.Instance{{Name: "gcpsm", Kind: gcp.KindName, Workload: c.w,
			Decode: func(into any) error { return yaml.Unmarshal(doc, into) }}})
		_, err := set.Provider("gcpsm")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, c.want)
		}
		set.Close()
	}
}

// TestWorkloadErrorRedacted: an answer of the token exchange that quotes
// the pod's token, or of the impersonation that quotes the federated
// token (each as long as a real one, beyond what an error keeps of a
// message), leaves no part of it in the error, which still says which
// step refused.
func TestWorkloadErrorRedacted(t *testing.T) {
	metadataTrap(t)
	e := ownEnv(t)
	kubeToken := "eyJhbGciOiJSUzI1NiJ9." + strings.Repeat("a3ViZS10b2tlbi1wYXJ0", 50)
	fedToken := "ya29.fed-" + strings.Repeat("ZmVkZXJhdGVkLXBhcnQ", 50)
	var refuseExchange atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/token") {
			_ = r.ParseForm()
			if refuseExchange.Load() {
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"token ` + r.PostForm.Get("subject_token") + ` rejected"}`))
				return
			}
			_, _ = w.Write([]byte(`{"access_token":"` + fedToken + `","expires_in":3600}`))
			return
		}
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"error":{"status":"PERMISSION_DENIED","message":"caller ` + r.Header.Get("Authorization") + ` may not impersonate"}}`))
	}))
	defer srv.Close()
	opts := map[string]any{"project": testProject, "endpoint": e.fake.Addr(), "insecure": true,
		"workload_identity_provider": testPool, "sts_endpoint": srv.URL + "/v1/token", "iam_credentials_endpoint": srv.URL,
		"service_account": "app@kw-test-project.iam.gserviceaccount.com"}
	for _, step := range []string{"token exchange", "impersonating"} {
		refuseExchange.Store(step == "token exchange")
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		_, err := workloadSet(t, opts, "apps", "app", kubeToken, nil).Fetch(ctx, mustParse(t, "gcpsm://db"))
		cancel()
		if !errors.Is(err, providers.ErrPermissionDenied) || !strings.Contains(err.Error(), step) {
			t.Errorf("%s refused: %v, want permission denied naming it", step, err)
		}
		if err != nil && (strings.Contains(err.Error(), "a3ViZS10b2tlbi1wYXJ0") || strings.Contains(err.Error(), "ZmVkZXJhdGVkLXBhcnQ")) {
			t.Errorf("%s refused: leaked value of a token (a part of it) in the error", step)
		}
	}
	// An annotation that is no service account email, as long as one may
	// be, is refused with a message of bounded length.
	delete(opts, "service_account")
	ann := map[string]string{gcp.ServiceAccountAnnotation: strings.Repeat("not-an-email ", 20000)}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := workloadSet(t, opts, "apps", "app", kubeToken, ann).Fetch(ctx, mustParse(t, "gcpsm://db"))
	if !errors.Is(err, providers.ErrPermissionDenied) || !strings.Contains(err.Error(), gcp.ServiceAccountAnnotation) {
		t.Errorf("a long annotation: %v, want permission denied naming it", err)
	}
	if err != nil && len(err.Error()) > 2000 {
		t.Errorf("a long annotation: an error of %d bytes, want the annotation clipped", len(err.Error()))
	}
}

// TestWorkloadErrorScrubbed: a refusal of the token exchange that echoes
// the pod's token, or of the impersonation that echoes the federated
// token, raw, base64'd, percent-encoded or cut short, leaves neither in
// any form in the error.
func TestWorkloadErrorScrubbed(t *testing.T) {
	metadataTrap(t)
	e := ownEnv(t)
	kubeToken, fedToken := providertest.Credential(t), providertest.Credential(t)
	for _, step := range []string{"token exchange", "impersonating"} {
		sent := map[string]string{"token exchange": kubeToken, "impersonating": fedToken}[step]
		for form, echo := range providertest.Echoes(sent) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				quoted := func(s string) string { b, _ := json.Marshal(s); return string(b) }
				if strings.HasSuffix(r.URL.Path, "/token") {
					if step == "token exchange" {
						w.WriteHeader(http.StatusBadRequest)
						_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":` + quoted("token "+echo+" rejected") + `}`))
						return
					}
					_, _ = w.Write([]byte(`{"access_token":` + quoted(fedToken) + `,"expires_in":3600}`))
					return
				}
				w.WriteHeader(http.StatusForbidden)
				_, _ = w.Write([]byte(`{"error":{"status":"PERMISSION_DENIED","message":` + quoted("caller Bearer "+echo+" may not impersonate") + `}}`))
			}))
			opts := map[string]any{"project": testProject, "endpoint": e.fake.Addr(), "insecure": true,
				"workload_identity_provider": testPool, "sts_endpoint": srv.URL + "/v1/token", "iam_credentials_endpoint": srv.URL,
				"service_account": "app@kw-test-project.iam.gserviceaccount.com"}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			_, err := workloadSet(t, opts, "apps", "app", kubeToken, nil).Fetch(ctx, mustParse(t, "gcpsm://db"))
			cancel()
			srv.Close()
			if !errors.Is(err, providers.ErrPermissionDenied) || !strings.Contains(err.Error(), step) {
				t.Errorf("%s refused, echo %s: %v, want permission denied naming it", step, form, err)
				continue
			}
			t.Run(step+" "+form, func(t *testing.T) { providertest.AssertErrorRedacted(t, err, []byte(kubeToken), []byte(fedToken)) })
		}
	}
}
