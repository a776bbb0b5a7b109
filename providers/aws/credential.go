package aws

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"

	"github.com/keyward/keyward/providers"
)

var _ providers.CredentialSource = (*Provider)(nil)

// Credential implements providers.CredentialSource: temporary AWS
// credentials for a workload, from the instance's credentials (the
// default chain, its profile and its own role_arn): with req.RoleARN, those
// of that role, assumed with STS AssumeRole (session name req.SessionName,
// default "keyward"); without it, the chain's own when they expire (web
// identity, SSO, container or instance roles), else temporary ones from
// STS GetSessionToken, so that long-lived keys never reach the workload.
// req.Duration is the DurationSeconds asked of STS.
//
// Value is the JSON a credential_process prints (Version 1, AccessKeyId,
// SecretAccessKey, SessionToken, Expiration); Data holds the same fields;
// Lease says when they expire. STS is reached at its regional endpoint
// (AWS_ENDPOINT_URL_STS and AWS_ENDPOINT_URL are honoured, as by the SDK).
func (p *Provider) Credential(ctx context.Context, req providers.CredentialRequest) (providers.Secret, error) {
	if len(req.Scopes) > 0 || req.Audience != "" {
		return providers.Secret{}, fmt.Errorf("aws credentials take no scopes or audience: %w", providers.ErrInvalidReference)
	}
	if req.RoleARN != "" && !roleARNRe.MatchString(req.RoleARN) {
		return providers.Secret{}, fmt.Errorf("role_arn %q is not an IAM role ARN: %w", req.RoleARN, providers.ErrInvalidReference)
	}
	if _, _, err := p.getClient(ctx); err != nil {
		return providers.Secret{}, err
	}
	p.mu.Lock()
	cfg := p.cfg
	p.mu.Unlock()
	var dur *int32
	if req.Duration > 0 {
		dur = awssdk.Int32(int32(req.Duration / time.Second))
	}
	var c awssdk.Credentials
	switch {
	case req.RoleARN != "":
		name := req.SessionName
		if name == "" {
			name = "keyward"
		}
		out, err := p.stsClient(cfg).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: awssdk.String(req.RoleARN), RoleSessionName: awssdk.String(name), DurationSeconds: dur})
		if err != nil {
			return providers.Secret{}, p.apiError(ctx, "AssumeRole", req.RoleARN, err, nil)
		}
		c = fromSTS(out.Credentials)
	default:
		got, err := cfg.Credentials.Retrieve(ctx)
		if err != nil {
			// causeOf: never a credential_process's output (the keys).
			return providers.Secret{}, fmt.Errorf("aws credentials: %w: %w", providers.ErrPermissionDenied, causeOf(err, p.sent.scrubber()))
		}
		c = got
		if !got.CanExpire || got.SessionToken == "" {
			out, err := p.stsClient(cfg).GetSessionToken(ctx, &sts.GetSessionTokenInput{DurationSeconds: dur})
			if err != nil {
				return providers.Secret{}, p.apiError(ctx, "GetSessionToken", "the default credentials", err, nil)
			}
			c = fromSTS(out.Credentials)
		}
	}
	if c.AccessKeyID == "" || c.SecretAccessKey == "" || !c.CanExpire {
		return providers.Secret{}, fmt.Errorf("aws credentials: STS answered without temporary credentials")
	}
	exp := c.Expires.UTC().Format(time.RFC3339)
	doc, _ := json.Marshal(map[string]any{"Version": 1, "AccessKeyId": c.AccessKeyID, "SecretAccessKey": c.SecretAccessKey,
		"SessionToken": c.SessionToken, "Expiration": exp})
	now := time.Now()
	return providers.Secret{
		Value: providers.NewValue(doc),
		Data: map[string]any{"AccessKeyId": c.AccessKeyID, "SecretAccessKey": c.SecretAccessKey,
			"SessionToken": c.SessionToken, "Expiration": exp},
		Lease: &providers.Lease{Duration: c.Expires.Sub(now), Obtained: now},
	}, nil
}

// fromSTS converts STS's credentials.
func fromSTS(c *ststypes.Credentials) awssdk.Credentials {
	if c == nil {
		return awssdk.Credentials{}
	}
	out := awssdk.Credentials{AccessKeyID: awssdk.ToString(c.AccessKeyId), SecretAccessKey: awssdk.ToString(c.SecretAccessKey),
		SessionToken: awssdk.ToString(c.SessionToken), Source: "STS"}
	if c.Expiration != nil {
		out.CanExpire, out.Expires = true, *c.Expiration
	}
	return out
}
