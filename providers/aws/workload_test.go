package aws

import (
	"context"
	"errors"
	"html"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/smithy-go"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/providertest"
)

// TestActAsRefusals: a provider acting as a pod refuses the options that
// name keyward's own credentials, and needs a region and a token source.
func TestActAsRefusals(t *testing.T) {
	w := &providers.Workload{Namespace: "ns", ServiceAccount: "sa", Token: func(string) (string, error) { return "t", nil }}
	for name, c := range map[string]struct {
		opts Options
		w    *providers.Workload
		want string
	}{
		"profile":  {Options{Region: "us-east-1", Profile: "admin"}, w, "profile"},
		"region":   {Options{}, w, "region"},
		"no token": {Options{Region: "us-east-1"}, &providers.Workload{}, "no ServiceAccount token"},
	} {
		p, err := New(c.opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.actAs(c.w); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", name, err, c.want)
		}
	}
	p, _ := New(Options{Region: "us-east-1"})
	if err := p.actAs(w); err != nil || p.opts.Audience != DefaultWebIdentityAudience {
		t.Fatalf("actAs: %v, audience %q", err, p.opts.Audience)
	}
}

// TestWebIdentityRole: the role is the instance's role_arn, else the
// ServiceAccount's annotation read at each retrieval; neither, or an
// annotation that is no role ARN, is refused as permission denied
// without asking STS.
func TestWebIdentityRole(t *testing.T) {
	var stsCalls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stsCalls.Add(1)
		http.Error(w, "", http.StatusTeapot)
	}))
	defer srv.Close()
	ann := map[string]string{}
	w := &providers.Workload{Namespace: "ns", ServiceAccount: "sa", Token: func(string) (string, error) { return "tok", nil },
		Annotations: func(context.Context) (map[string]string, error) { return ann, nil }}
	p, _ := New(Options{Region: "us-east-1", STSEndpoint: srv.URL})
	if err := p.actAs(w); err != nil {
		t.Fatal(err)
	}
	wi := p.workloadConfig().Credentials
	long := strings.Repeat("not-an-arn ", 20000) // as long as an annotation may be
	for _, a := range []string{"", "not-an-arn", long} {
		ann[RoleARNAnnotation] = a
		_, err := wi.Retrieve(t.Context())
		if !errors.Is(err, providers.ErrPermissionDenied) || !strings.Contains(err.Error(), RoleARNAnnotation) {
			t.Errorf("annotation of %d bytes: %v, want permission denied naming the annotation", len(a), err)
		}
		if err != nil && len(err.Error()) > 1000 {
			t.Errorf("annotation of %d bytes: an error of %d bytes, want the annotation clipped", len(a), len(err.Error()))
		}
	}
	if n := stsCalls.Load(); n != 0 {
		t.Errorf("STS asked %d times without a role", n)
	}
	ann[RoleARNAnnotation] = "arn:aws:iam::123456789012:role/app"
	if _, err := wi.Retrieve(t.Context()); err == nil || stsCalls.Load() == 0 {
		t.Errorf("with a role: %v after %d STS calls, want STS's refusal", err, stsCalls.Load())
	}
}

// TestSessionName: keyward-NAMESPACE-NAME, within STS's alphabet and 64
// characters.
func TestSessionName(t *testing.T) {
	if got := sessionName(&providers.Workload{Namespace: "team-a", ServiceAccount: "web"}); got != "keyward-team-a-web" {
		t.Errorf("session name %q", got)
	}
	long := sessionName(&providers.Workload{Namespace: strings.Repeat("n", 60), ServiceAccount: "x:y"})
	if len(long) != 64 || strings.ContainsAny(long, ":") {
		t.Errorf("long session name %q", long)
	}
}

// TestWorkloadWithoutToken: a pod without a token for the audience is
// refused as permission denied, naming the audience, before any request
// reaches STS or Secrets Manager.
func TestWorkloadWithoutToken(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "", http.StatusTeapot)
	}))
	defer srv.Close()
	w := &providers.Workload{Namespace: "ns", ServiceAccount: "sa",
		Token: func(audience string) (string, error) { return "", errors.New("no token for audience " + audience) }}
	p, _ := New(Options{Region: "us-east-1", RoleARN: "arn:aws:iam::123456789012:role/app", Endpoint: srv.URL, STSEndpoint: srv.URL})
	if err := p.actAs(w); err != nil {
		t.Fatal(err)
	}
	_, err := p.Fetch(t.Context(), providers.Ref{Scheme: KindName, Path: "app-db"})
	if !errors.Is(err, providers.ErrPermissionDenied) || !strings.Contains(err.Error(), DefaultWebIdentityAudience) {
		t.Errorf("%v, want permission denied naming the audience", err)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests sent without the pod's token", n)
	}
}

// TestWebIdentityErrorRedacted: an STS answer that quotes the pod's token
// (as long as a real ServiceAccount token, beyond what an error keeps of
// a message) leaves no part of it in the error, which still says the
// token was refused.
func TestWebIdentityErrorRedacted(t *testing.T) {
	token := "eyJhbGciOiJSUzI1NiJ9." + strings.Repeat("c2VjcmV0LXRva2Vu", 60)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>Token ` +
			r.PostForm.Get("WebIdentityToken") + ` is not valid</Message></Error><RequestId>1</RequestId></ErrorResponse>`))
	}))
	defer srv.Close()
	w := &providers.Workload{Namespace: "ns", ServiceAccount: "sa", Token: func(string) (string, error) { return token, nil }}
	p, _ := New(Options{Region: "us-east-1", RoleARN: "arn:aws:iam::123456789012:role/app", Endpoint: srv.URL, STSEndpoint: srv.URL})
	if err := p.actAs(w); err != nil {
		t.Fatal(err)
	}
	_, retrieveErr := p.workloadConfig().Credentials.Retrieve(t.Context())
	_, fetchErr := p.Fetch(t.Context(), providers.Ref{Scheme: KindName, Path: "app-db"})
	for what, err := range map[string]error{"Retrieve": retrieveErr, "Fetch": fetchErr} {
		if !errors.Is(err, providers.ErrPermissionDenied) || err == nil || !strings.Contains(err.Error(), "InvalidIdentityToken") {
			t.Errorf("%s: %v, want permission denied naming InvalidIdentityToken", what, err)
		}
		for e := err; e != nil; e = errors.Unwrap(e) {
			var ae smithy.APIError
			if strings.Contains(e.Error(), "c2VjcmV0LXRva2Vu") || (errors.As(e, &ae) && strings.Contains(ae.ErrorMessage(), "c2VjcmV0LXRva2Vu")) {
				t.Fatalf("%s: leaked value of the pod's token (a part of it) in the error or an error it wraps", what)
			}
		}
	}
}

// TestWebIdentityErrorScrubbed: an STS refusal that echoes the pod's token
// raw, base64'd, percent-encoded or cut short leaves it in no form in the
// error of Retrieve or of a Fetch.
func TestWebIdentityErrorScrubbed(t *testing.T) {
	token := providertest.Credential(t)
	for form, echo := range providertest.Echoes(token) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>Token ` +
				html.EscapeString(echo) + ` is not valid</Message></Error><RequestId>1</RequestId></ErrorResponse>`))
		}))
		w := &providers.Workload{Namespace: "ns", ServiceAccount: "sa", Token: func(string) (string, error) { return token, nil }}
		p, _ := New(Options{Region: "us-east-1", RoleARN: "arn:aws:iam::123456789012:role/app", Endpoint: srv.URL, STSEndpoint: srv.URL})
		if err := p.actAs(w); err != nil {
			t.Fatal(err)
		}
		_, retrieveErr := p.workloadConfig().Credentials.Retrieve(t.Context())
		_, fetchErr := p.Fetch(t.Context(), providers.Ref{Scheme: KindName, Path: "app-db"})
		srv.Close()
		for what, err := range map[string]error{"Retrieve": retrieveErr, "Fetch": fetchErr} {
			if !errors.Is(err, providers.ErrPermissionDenied) || !strings.Contains(err.Error(), "InvalidIdentityToken") {
				t.Errorf("%s, echo %s: %v, want permission denied naming InvalidIdentityToken", what, form, err)
				continue
			}
			t.Run(what+" "+form, func(t *testing.T) { providertest.AssertErrorRedacted(t, err, []byte(token)) })
		}
	}
}
