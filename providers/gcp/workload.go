package gcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/auth"
	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/keyward/keyward/providers"
)

// Workload identity federation of a pod (keyward csi-provider): the pod's
// ServiceAccount token is exchanged at Google's Security Token Service
// for a federated access token of the workload identity pool, which
// either reads Secret Manager itself (IAM bindings on the principal
// principal://iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/POOL/subject/system:serviceaccount:NS:NAME)
// or impersonates a Google service account (generateAccessToken, with
// roles/iam.workloadIdentityUser on it), as the GCP provider of the CSI
// driver does with the iam.gke.io/gcp-service-account annotation.
const (
	// DefaultSTSEndpoint is Google's token exchange.
	DefaultSTSEndpoint = "https://sts.googleapis.com/v1/token"
	// DefaultIAMCredentialsEndpoint is the IAM Credentials API.
	DefaultIAMCredentialsEndpoint = "https://iamcredentials.googleapis.com"
	// ServiceAccountAnnotation is the ServiceAccount annotation naming the
	// Google service account a pod impersonates, as on GKE.
	ServiceAccountAnnotation = "iam.gke.io/gcp-service-account"
	// WorkloadTokenLifetime bounds how long a pod's access token serves
	// its identity before it is obtained again with the pod's current
	// ServiceAccount token (and the annotation read again).
	WorkloadTokenLifetime = 15 * time.Minute
	// workloadPrefix starts the message of every failure to obtain a
	// pod's token, so that callError shows it (it never holds a token).
	workloadPrefix = "workload identity: "
)

var serviceAccountRe = regexp.MustCompile(`^[a-z0-9-]+@[a-z0-9.-]+\.iam\.gserviceaccount\.com$|^[a-z0-9-]+@[a-z0-9-]+\.[a-z.]+$`)

// actAs makes p act as the pod w: its Secret Manager client authenticates
// with the pod's federated (or impersonated) token, never with
// Application Default Credentials (no environment, credentials file or
// metadata server of the node is read).
func (p *Provider) actAs(w *providers.Workload, o Options) error {
	switch {
	case o.WorkloadIdentityProvider == "":
		return errors.New("workload_identity_provider: required when acting as a pod (the audience of the token exchange, //iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER)")
	case o.ServiceAccount != "" && !serviceAccountRe.MatchString(o.ServiceAccount):
		return fmt.Errorf("service_account %q: not a service account email", o.ServiceAccount)
	case w.Token == nil:
		return errors.New("no ServiceAccount token for the pod")
	}
	for key, e := range map[string]string{"sts_endpoint": o.STSEndpoint, "iam_credentials_endpoint": o.IAMCredentialsEndpoint} {
		if e == "" {
			continue
		}
		if err := providers.CheckEndpoint(key, e); err != nil {
			return err
		}
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	var tlsOpts []option.ClientOption
	tr, err := o.TLS.Transport(context.Background())
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	if tr != nil {
		hc.Transport = tr
		tlsOpts = append(tlsOpts, option.WithGRPCDialOption(grpc.WithTransportCredentials(credentials.NewTLS(tr.TLSClientConfig))))
	}
	tp := &workloadTokens{w: w, opts: o, client: hc, log: p.logger}
	if tp.opts.TokenAudience == "" {
		tp.opts.TokenAudience = o.WorkloadIdentityProvider
	}
	if tp.opts.STSEndpoint == "" {
		tp.opts.STSEndpoint = DefaultSTSEndpoint
	}
	if tp.opts.IAMCredentialsEndpoint == "" {
		tp.opts.IAMCredentialsEndpoint = DefaultIAMCredentialsEndpoint
	}
	p.sent = tp.scrubber
	creds := auth.NewCredentials(&auth.CredentialsOptions{TokenProvider: auth.NewCachedTokenProvider(tp, &auth.CachedTokenProviderOptions{
		DisableAsyncRefresh: true, ExpireEarly: time.Minute,
	})})
	clientOpts := []option.ClientOption{option.WithLogger(slog.New(slog.DiscardHandler)), option.WithAuthCredentials(creds)}
	if o.Endpoint != "" {
		clientOpts = append(clientOpts, option.WithEndpoint(o.Endpoint))
	}
	if o.Insecure {
		// A loopback test server (New checked): plaintext, with the pod's
		// token all the same.
		clientOpts = append(clientOpts, option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	}
	clientOpts = append(clientOpts, tlsOpts...)
	p.dial = func(ctx context.Context) (secretClient, error) {
		return secretmanager.NewClient(ctx, clientOpts...)
	}
	p.workload = true
	return nil
}

// workloadTokens is the auth.TokenProvider of a pod: each Token is
// obtained afresh with the pod's current ServiceAccount token (the
// provider's auth.CachedTokenProvider keeps it until a minute before it
// expires, at most WorkloadTokenLifetime).
type workloadTokens struct {
	w      *providers.Workload
	opts   Options
	client *http.Client
	log    *slog.Logger

	mu    sync.Mutex
	last  string              // the access token last returned
	scrub *providers.Scrubber // of last, built on first use
}

// scrubber hides the access token last returned (which the Secret
// Manager client sends) in a server's message.
func (t *workloadTokens) scrubber() providers.Scrubber {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.scrub == nil {
		// Built once per token: every retried attempt's cause is scrubbed.
		sc := providers.NewScrubber(t.last)
		t.scrub = &sc
	}
	return *t.scrub
}

// Token returns the pod's access token. A refusal (of the pod's token,
// of the impersonation) is a PermissionDenied status, so that the call
// fails at once; other failures are retried by the call. No message
// holds a token.
func (t *workloadTokens) Token(ctx context.Context) (*auth.Token, error) {
	who := "ServiceAccount " + t.w.Namespace + "/" + t.w.ServiceAccount
	fail := func(err error, secrets ...string) error {
		err = providers.NewScrubber(secrets...).Error(err)
		msg := workloadPrefix + who + ": " + err.Error()
		if errors.Is(err, providers.ErrPermissionDenied) {
			return status.Error(codes.PermissionDenied, msg)
		}
		return errors.New(msg)
	}
	gsa, err := t.serviceAccount(ctx)
	if err != nil {
		return nil, fail(err)
	}
	subject, err := t.w.Token(t.opts.TokenAudience)
	if err != nil {
		return nil, fail(fmt.Errorf("%w: %w", err, providers.ErrPermissionDenied))
	}
	fed, exp, err := t.exchange(ctx, subject)
	if err != nil {
		return nil, fail(err, subject)
	}
	tok := &auth.Token{Value: fed, Type: "Bearer", Expiry: exp}
	if gsa != "" {
		at, exp, err := t.impersonate(ctx, fed, gsa)
		if err != nil {
			return nil, fail(err, subject, fed)
		}
		tok = &auth.Token{Value: at, Type: "Bearer", Expiry: exp}
	}
	if limit := time.Now().Add(WorkloadTokenLifetime); tok.Expiry.IsZero() || tok.Expiry.After(limit) {
		tok.Expiry = limit
	}
	t.mu.Lock()
	if tok.Value != t.last {
		t.last, t.scrub = tok.Value, nil
	}
	t.mu.Unlock()
	t.log.Debug("gcpsm: token obtained for a pod", "service_account", t.w.Namespace+"/"+t.w.ServiceAccount, "impersonated", gsa, "expires", tok.Expiry)
	return tok, nil
}

// serviceAccount is the Google service account to impersonate: the
// instance's service_account, else the annotation read now; "" for none.
func (t *workloadTokens) serviceAccount(ctx context.Context) (string, error) {
	if t.opts.ServiceAccount != "" || t.w.Annotations == nil {
		return t.opts.ServiceAccount, nil
	}
	ann, err := t.w.Annotations(ctx)
	if err != nil {
		return "", fmt.Errorf("reading the %s annotation: %w", ServiceAccountAnnotation, err)
	}
	gsa := strings.TrimSpace(ann[ServiceAccountAnnotation])
	if gsa != "" && !serviceAccountRe.MatchString(gsa) {
		return "", fmt.Errorf("annotation %s %q is not a service account email: %w", ServiceAccountAnnotation, providers.ClipMessage(gsa), providers.ErrPermissionDenied)
	}
	return gsa, nil
}

// exchange trades the pod's token at the STS for a federated access
// token of the workload identity pool.
func (t *workloadTokens) exchange(ctx context.Context, subject string) (string, time.Time, error) {
	form := url.Values{
		"grant_type":           {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"requested_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
		"subject_token_type":   {"urn:ietf:params:oauth:token-type:jwt"},
		"subject_token":        {subject},
		"audience":             {t.opts.WorkloadIdentityProvider},
		"scope":                {defaultScope},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.opts.STSEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", time.Time{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var out struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := t.call(req, "token exchange", subject, &out); err != nil {
		return "", time.Time{}, err
	}
	if out.AccessToken == "" {
		return "", time.Time{}, errors.New("token exchange: the answer holds no access token")
	}
	var exp time.Time
	if out.ExpiresIn > 0 {
		exp = time.Now().Add(time.Duration(out.ExpiresIn) * time.Second)
	}
	return out.AccessToken, exp, nil
}

// impersonate trades the federated token for an access token of the
// Google service account gsa.
func (t *workloadTokens) impersonate(ctx context.Context, federated, gsa string) (string, time.Time, error) {
	body, _ := json.Marshal(map[string]any{"scope": []string{defaultScope}, "lifetime": fmt.Sprintf("%ds", int(WorkloadTokenLifetime/time.Second))})
	u := strings.TrimSuffix(t.opts.IAMCredentialsEndpoint, "/") + "/v1/projects/-/serviceAccounts/" + url.PathEscape(gsa) + ":generateAccessToken"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(string(body)))
	if err != nil {
		return "", time.Time{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+federated)
	var out struct {
		AccessToken string    `json:"accessToken"`
		ExpireTime  time.Time `json:"expireTime"`
	}
	what := "impersonating " + gsa
	if err := t.call(req, what, federated, &out); err != nil {
		return "", time.Time{}, err
	}
	if out.AccessToken == "" {
		return "", time.Time{}, fmt.Errorf("%s: the answer holds no access token", what)
	}
	return out.AccessToken, out.ExpireTime, nil
}

// call sends req and decodes its JSON answer into out. A 400, 401, 403 or 404
// wraps providers.ErrPermissionDenied (Google refused the pod's
// identity); the error says the status and Google's error code and
// description, without sent (the token req carries), clipped.
func (t *workloadTokens) call(req *http.Request, what, sent string, out any) error {
	resp, err := t.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s: the answer is not JSON: %w", what, err)
		}
		return nil
	}
	// A refusal that quotes the token sent (in any form) loses it before
	// its message is clipped: an echo cut by the clip would escape the
	// caller's scrub.
	scrub := providers.NewScrubber(sent)
	var e struct {
		Error       json.RawMessage `json:"error"`
		Description string          `json:"error_description"`
	}
	_ = json.Unmarshal(data, &e)
	detail := e.Description
	var kind string
	if json.Unmarshal(e.Error, &kind) != nil {
		var g struct {
			Status  string `json:"status"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(e.Error, &g)
		kind, detail = g.Status, g.Message
	}
	msg := fmt.Sprintf("%s: HTTP %d", what, resp.StatusCode)
	if kind != "" {
		msg += " " + scrub.Clip(kind)
	}
	if detail != "" {
		msg += " (" + scrub.Clip(detail) + ")"
	}
	switch resp.StatusCode {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return fmt.Errorf("%s: %w", msg, providers.ErrPermissionDenied)
	}
	return errors.New(msg)
}
