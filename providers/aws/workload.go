package aws

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keyward/keyward/providers"
)

// Web identity of a pod (keyward csi-provider): the pod's ServiceAccount
// token is exchanged with STS AssumeRoleWithWebIdentity for the
// credentials of its role, as EKS's IAM roles for service accounts do.
const (
	// DefaultWebIdentityAudience is the audience of the ServiceAccount
	// token presented to STS (the CSIDriver object's tokenRequests must
	// list it), as with IRSA.
	DefaultWebIdentityAudience = "sts.amazonaws.com"
	// RoleARNAnnotation is the ServiceAccount annotation naming the pod's
	// role when the instance has no role_arn, as with IRSA.
	RoleARNAnnotation = "eks.amazonaws.com/role-arn"
	// WorkloadCredentialLifetime is the lifetime asked of STS for a pod's
	// credentials (its minimum): they serve that pod's identity for at
	// most this long before the role is assumed again with its current
	// token (and the annotation read again).
	WorkloadCredentialLifetime = 15 * time.Minute
	// workloadExpiryWindow renews a pod's credentials this long before
	// they expire, so no request is signed with credentials about to end.
	workloadExpiryWindow = time.Minute
)

// actAs makes p act as the pod w: its credentials are those of the
// pod's role (the instance's role_arn, else the ServiceAccount's
// eks.amazonaws.com/role-arn annotation) assumed with the pod's
// ServiceAccount token, never keyward's own (no environment, shared
// config, profile or instance metadata is read).
func (p *Provider) actAs(w *providers.Workload) error {
	switch {
	case p.opts.Profile != "":
		return errors.New("profile: not available when acting as a pod (the pod's ServiceAccount token assumes its role)")
	case p.opts.Region == "":
		return errors.New("region: required when acting as a pod (the pod's role is assumed at the region's STS)")
	case w.Token == nil:
		return errors.New("no ServiceAccount token for the pod")
	}
	if p.opts.Audience == "" {
		p.opts.Audience = DefaultWebIdentityAudience
	}
	p.workload = w
	return nil
}

// workloadConfig is the AWS config of a provider acting as a pod: built
// from the instance's options alone, with the pod's web identity as its
// credentials, cached per provider (a provider serves one identity) for
// at most WorkloadCredentialLifetime.
func (p *Provider) workloadConfig() awssdk.Config {
	cfg := awssdk.NewConfig()
	cfg.Region = p.opts.Region
	cfg.HTTPClient = p.httpClient()
	wi := &webIdentity{sts: p.stsClient(*cfg), w: p.workload, role: p.opts.RoleARN, audience: p.opts.Audience,
		session: sessionName(p.workload)}
	cfg.Credentials = awssdk.NewCredentialsCache(wi, func(o *awssdk.CredentialsCacheOptions) {
		o.ExpiryWindow = workloadExpiryWindow
	})
	return *cfg
}

// webIdentity is an aws.CredentialsProvider of a pod's role, assumed
// with its current ServiceAccount token at each retrieval.
type webIdentity struct {
	sts      *sts.Client
	w        *providers.Workload
	role     string // the instance's role_arn, "" for the annotation's
	audience string
	session  string
}

// Retrieve assumes the pod's role with its token. Errors name the role
// and the ServiceAccount, never the token.
func (c *webIdentity) Retrieve(ctx context.Context) (awssdk.Credentials, error) {
	who := "ServiceAccount " + c.w.Namespace + "/" + c.w.ServiceAccount
	role, err := c.roleARN(ctx)
	if err != nil {
		return awssdk.Credentials{}, fmt.Errorf("%s: %w", who, err)
	}
	token, err := c.w.Token(c.audience)
	if err != nil {
		return awssdk.Credentials{}, fmt.Errorf("%s: %w: %w", who, err, providers.ErrPermissionDenied)
	}
	const op = "AssumeRoleWithWebIdentity"
	out, err := c.sts.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn: awssdk.String(role), RoleSessionName: awssdk.String(c.session), WebIdentityToken: awssdk.String(token),
		DurationSeconds: awssdk.Int32(int32(WorkloadCredentialLifetime / time.Second)),
	})
	if err != nil {
		scrub := providers.NewScrubber(token)
		return awssdk.Credentials{}, scrub.Error(fmt.Errorf("%s: %w", who, apiError(ctx, op, role, scrubService(err, scrub), nil)))
	}
	creds := fromSTS(out.Credentials)
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" || !creds.CanExpire {
		return awssdk.Credentials{}, fmt.Errorf("%s: %s %s: STS answered without temporary credentials", who, op, role)
	}
	if limit := time.Now().Add(WorkloadCredentialLifetime); creds.Expires.After(limit) {
		creds.Expires = limit
	}
	creds.Source = "WebIdentity"
	return creds, nil
}

// roleARN is the role the pod assumes: the instance's role_arn, else its
// ServiceAccount's annotation, read now (so that a changed annotation
// takes effect at the next renewal).
func (c *webIdentity) roleARN(ctx context.Context) (string, error) {
	if c.role != "" {
		return c.role, nil
	}
	if c.w.Annotations == nil {
		return "", fmt.Errorf("no IAM role: set the instance's role_arn (its ServiceAccount's %s annotation cannot be read here): %w", RoleARNAnnotation, providers.ErrPermissionDenied)
	}
	ann, err := c.w.Annotations(ctx)
	if err != nil {
		return "", fmt.Errorf("reading the %s annotation: %w", RoleARNAnnotation, err)
	}
	role := strings.TrimSpace(ann[RoleARNAnnotation])
	switch {
	case role == "":
		return "", fmt.Errorf("no IAM role: annotate the ServiceAccount with %s, or set the instance's role_arn: %w", RoleARNAnnotation, providers.ErrPermissionDenied)
	case !roleARNRe.MatchString(role):
		return "", fmt.Errorf("annotation %s %q is not an IAM role ARN: %w", RoleARNAnnotation, providers.ClipMessage(role), providers.ErrPermissionDenied)
	}
	return role, nil
}

var sessionNameBad = regexp.MustCompile(`[^\w+=,.@-]`)

// sessionName is the role session name of a pod's credentials, naming
// its ServiceAccount in CloudTrail: keyward-NAMESPACE-NAME, at most 64
// characters of those STS allows.
func sessionName(w *providers.Workload) string {
	s := sessionNameBad.ReplaceAllString("keyward-"+w.Namespace+"-"+w.ServiceAccount, "-")
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}
