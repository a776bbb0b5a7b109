package gcp

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials"
	"cloud.google.com/go/auth/credentials/idtoken"

	"github.com/keyward/keyward/providers"
)

var _ providers.CredentialSource = (*Provider)(nil)

// defaultScope is the scope of an access token asked for without scopes.
const defaultScope = "https://www.googleapis.com/auth/cloud-platform"

// Credential implements providers.CredentialSource: a Google OAuth2
// access token for req.Scopes (default cloud-platform), or with
// req.Audience an ID token for that audience (to call Cloud Run or IAP),
// from Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS (a
// service account key, workload identity federation), gcloud's
// application default credentials, else the metadata server. Each call
// reads the credentials afresh and makes one token request (no cache, no
// background refresh: keyward's token loop decides when). Lease says when
// the token expires.
func (p *Provider) Credential(ctx context.Context, req providers.CredentialRequest) (providers.Secret, error) {
	switch {
	case p.workload:
		return providers.Secret{}, fmt.Errorf("gcp credentials: not available when acting as a pod (they would be Application Default Credentials, not the pod's): %w", providers.ErrPermissionDenied)
	case req.RoleARN != "" || req.SessionName != "" || req.Duration != 0:
		return providers.Secret{}, fmt.Errorf("gcp credentials take no role, session name or duration: %w", providers.ErrInvalidReference)
	case req.Audience != "" && len(req.Scopes) > 0:
		return providers.Secret{}, fmt.Errorf("gcp: an ID token (audience) has no scopes: %w", providers.ErrInvalidReference)
	}
	var (
		creds *auth.Credentials
		err   error
		what  = "access token"
	)
	if req.Audience != "" {
		what = "ID token"
		creds, err = idtoken.NewCredentials(&idtoken.Options{Audience: req.Audience})
	} else {
		scopes := req.Scopes
		if len(scopes) == 0 {
			scopes = []string{defaultScope}
		}
		creds, err = credentials.DetectDefault(&credentials.DetectOptions{Scopes: scopes, DisableAsyncRefresh: true})
	}
	if err != nil {
		return providers.Secret{}, fmt.Errorf("gcp %s: Application Default Credentials: %w", what, err)
	}
	tok, err := creds.Token(ctx)
	if err != nil {
		return providers.Secret{}, fmt.Errorf("gcp %s: %w", what, tokenError(err))
	}
	sec := providers.Secret{Value: providers.StringValue(tok.Value)}
	if !tok.Expiry.IsZero() {
		now := time.Now()
		sec.Lease = &providers.Lease{Duration: tok.Expiry.Sub(now), Obtained: now}
	}
	return sec, nil
}

// tokenError is err without the token endpoint's answer, which may echo
// what was sent (a signed assertion, a refresh token, a subject token) on
// several lines: a refusal says its HTTP status only.
func tokenError(err error) error {
	var ae *auth.Error
	if !errors.As(err, &ae) || ae.Response == nil {
		return err
	}
	return fmt.Errorf("the token endpoint refused it (HTTP %d; its answer is not shown, as it may quote the credentials sent)", ae.Response.StatusCode)
}
