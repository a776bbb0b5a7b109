package gcpfake

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Federation stands in for Google's workload identity federation on a
// loopback listener: the Security Token Service's token exchange
// (sts.googleapis.com/v1/token, RFC 8693) and the IAM Credentials API's
// generateAccessToken (iamcredentials.googleapis.com), for tests of a
// workload's identity. No independent implementation of either can run
// here, so it checks what Google checks: the grant and token types, the
// audience (its one workload identity provider), the subject token (with
// Verify, standing for the provider's OIDC issuer), the scope, and for
// impersonation that the caller's federated token may act as the service
// account (AllowImpersonation, standing for roles/iam.workloadIdentityUser).
// The access tokens it issues are random; Principal says whose they are,
// for Server.Authenticate.
type Federation struct {
	// Audience is the workload identity provider it serves:
	// //iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/POOL/providers/PROVIDER.
	Audience string
	// Verify checks a subject token and returns its subject (for a
	// Kubernetes ServiceAccount token, system:serviceaccount:NS:NAME).
	Verify func(ctx context.Context, token string) (subject string, err error)
	// Lifetime is the lifetime of the tokens it issues (default an hour).
	Lifetime time.Duration

	lis    net.Listener
	scheme string // http or https
	srv    *http.Server
	done   chan struct{}

	mu            sync.Mutex
	tokens        map[string]string   // access token -> principal
	impersonators map[string][]string // service account email -> principals allowed
	exchanges     []Exchange
}

// Exchange is one token exchange the Federation granted or refused.
type Exchange struct {
	// Audience, Scope and Subject are what the request carried (Subject
	// as Verify read it, "" when it refused the token).
	Audience, Scope, Subject string
	// ServiceAccount is the account an impersonation asked for ("" for an
	// STS exchange).
	ServiceAccount string
	// Granted says whether a token was issued.
	Granted bool
}

// StartFederation serves a Federation for audience on a free port of
// 127.0.0.1, verifying subject tokens with verify. Stop it with Close.
func StartFederation(audience string, verify func(ctx context.Context, token string) (string, error)) (*Federation, error) {
	return startFederation(audience, verify, nil)
}

// StartFederationTLS is StartFederation serving HTTPS with cert.
func StartFederationTLS(audience string, verify func(ctx context.Context, token string) (string, error), cert tls.Certificate) (*Federation, error) {
	return startFederation(audience, verify, &cert)
}

func startFederation(audience string, verify func(ctx context.Context, token string) (string, error), cert *tls.Certificate) (*Federation, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("gcpfake: listen: %w", err)
	}
	scheme := "http"
	if cert != nil {
		lis = tls.NewListener(lis, &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12})
		scheme = "https"
	}
	f := &Federation{Audience: audience, Verify: verify, lis: lis, scheme: scheme, done: make(chan struct{}),
		tokens: map[string]string{}, impersonators: map[string][]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/token", f.exchange)
	mux.HandleFunc("POST /v1/projects/-/serviceAccounts/{account}", f.generateAccessToken)
	f.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(f.done)
		_ = f.srv.Serve(lis)
	}()
	return f, nil
}

// STSEndpoint is the URL of its token exchange (for sts.googleapis.com/v1/token).
func (f *Federation) STSEndpoint() string {
	return f.scheme + "://" + f.lis.Addr().String() + "/v1/token"
}

// IAMCredentialsEndpoint is the base URL of its IAM Credentials API
// (for https://iamcredentials.googleapis.com).
func (f *Federation) IAMCredentialsEndpoint() string { return f.scheme + "://" + f.lis.Addr().String() }

// Close stops the server.
func (f *Federation) Close() error {
	err := f.srv.Close()
	<-f.done
	return err
}

// FederatedPrincipal is the principal of the federated tokens of subject:
// principal://iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/POOL/subject/SUBJECT.
func (f *Federation) FederatedPrincipal(subject string) string {
	pool := strings.TrimPrefix(f.Audience, "//iam.googleapis.com/")
	if i := strings.Index(pool, "/providers/"); i >= 0 {
		pool = pool[:i]
	}
	return "principal://iam.googleapis.com/" + pool + "/subject/" + subject
}

// ServiceAccountPrincipal is the principal of the tokens of a service
// account: serviceAccount:EMAIL.
func ServiceAccountPrincipal(email string) string { return "serviceAccount:" + email }

// AllowImpersonation lets principal (a FederatedPrincipal) obtain tokens
// of the service account email.
func (f *Federation) AllowImpersonation(email, principal string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.impersonators[email] = append(f.impersonators[email], principal)
}

// Principal returns whose an access token the Federation issued is.
func (f *Federation) Principal(token string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.tokens[token]
	return p, ok
}

// Exchanges returns the exchanges it answered, in order.
func (f *Federation) Exchanges() []Exchange {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.exchanges)
}

func (f *Federation) record(e Exchange) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exchanges = append(f.exchanges, e)
}

// issue returns a new access token of principal and its lifetime.
func (f *Federation) issue(principal string) (string, time.Duration) {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	tok := "ya29.fake-" + hex.EncodeToString(b)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens[tok] = principal
	life := f.Lifetime
	if life <= 0 {
		life = time.Hour
	}
	return tok, life
}

// oauthError answers as Google's STS does: {"error", "error_description"}.
func oauthError(w http.ResponseWriter, code int, kind, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": kind, "error_description": desc})
}

const cloudPlatform = "https://www.googleapis.com/auth/cloud-platform"

// exchange serves the STS token exchange, form- or JSON-encoded.
func (f *Federation) exchange(w http.ResponseWriter, r *http.Request) {
	var get func(string) string
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var body map[string]string
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil {
			oauthError(w, 400, "invalid_request", "body is not a JSON object of strings")
			return
		}
		get = func(k string) string { return body[k] }
	} else {
		if err := r.ParseForm(); err != nil {
			oauthError(w, 400, "invalid_request", "bad form")
			return
		}
		get = r.PostForm.Get
	}
	e := Exchange{Audience: get("audience"), Scope: get("scope")}
	switch {
	case get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange":
		oauthError(w, 400, "unsupported_grant_type", "grant_type must be token-exchange")
	case get("requested_token_type") != "urn:ietf:params:oauth:token-type:access_token":
		oauthError(w, 400, "invalid_request", "requested_token_type must be access_token")
	case get("subject_token_type") != "urn:ietf:params:oauth:token-type:jwt" && get("subject_token_type") != "urn:ietf:params:oauth:token-type:id_token":
		oauthError(w, 400, "invalid_request", "subject_token_type must be jwt or id_token")
	case e.Audience != f.Audience:
		oauthError(w, 400, "invalid_target", "The target service indicated by the \"audience\" parameters is invalid.")
	case !slices.Contains(strings.Fields(e.Scope), cloudPlatform):
		oauthError(w, 400, "invalid_scope", "scope must include cloud-platform")
	default:
		subject, err := f.Verify(r.Context(), get("subject_token"))
		if err != nil || subject == "" {
			f.record(e)
			oauthError(w, 400, "invalid_grant", "The subject token could not be verified.")
			return
		}
		e.Subject, e.Granted = subject, true
		f.record(e)
		tok, life := f.issue(f.FederatedPrincipal(subject))
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
			"token_type": "Bearer", "expires_in": int(life / time.Second)})
		return
	}
	f.record(e)
}

// googleError answers as Google's JSON APIs do.
func googleError(w http.ResponseWriter, code int, st, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "status": st, "message": msg}})
}

// generateAccessToken serves
// POST /v1/projects/-/serviceAccounts/EMAIL:generateAccessToken.
func (f *Federation) generateAccessToken(w http.ResponseWriter, r *http.Request) {
	email, ok := strings.CutSuffix(r.PathValue("account"), ":generateAccessToken")
	if !ok || email == "" {
		googleError(w, 404, "NOT_FOUND", "no such method")
		return
	}
	e := Exchange{ServiceAccount: email}
	var body struct {
		Scope    []string `json:"scope"`
		Lifetime string   `json:"lifetime"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil {
		googleError(w, 400, "INVALID_ARGUMENT", "body is not a GenerateAccessTokenRequest")
		return
	}
	e.Scope = strings.Join(body.Scope, " ")
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	caller, known := f.Principal(token)
	e.Subject = caller
	f.mu.Lock()
	allowed := slices.Contains(f.impersonators[email], caller)
	f.mu.Unlock()
	switch {
	case !known:
		f.record(e)
		googleError(w, 401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
	case !allowed:
		f.record(e)
		googleError(w, 403, "PERMISSION_DENIED", "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).")
	case len(body.Scope) == 0:
		f.record(e)
		googleError(w, 400, "INVALID_ARGUMENT", "scope is required")
	default:
		e.Granted = true
		f.record(e)
		tok, life := f.issue(ServiceAccountPrincipal(email))
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"accessToken": tok, "expireTime": time.Now().Add(life).UTC().Format(time.RFC3339)})
	}
}

// Issued returns every access token it issued, for tests that check none
// of them leaked.
func (f *Federation) Issued() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.tokens))
	for tok := range f.tokens {
		out = append(out, tok)
	}
	return out
}
