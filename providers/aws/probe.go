package aws

import (
	"context"
	"fmt"
	"slices"
	"sort"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyward/keyward/providers"
)

// ProbeVersion returns the version id ref currently resolves to, without
// reading the value: one DescribeSecret call, whose VersionIdsToStages
// gives the version holding ?version-stage= (AWSCURRENT by default). A
// ?version-id= reference is pinned: its id is returned while that version
// exists. The result is comparable with Secret.Version from Fetch.
//
// When IAM denies DescribeSecret, the provider logs it once and from then
// on probes with GetSecretValue (a full read) instead. Errors follow
// Fetch's rules; a stage no version holds wraps providers.ErrNotFound.
func (p *Provider) ProbeVersion(ctx context.Context, ref providers.Ref) (string, error) {
	const op = "DescribeSecret"
	if err := CheckRef(ref); err != nil {
		return "", err
	}
	t := targetOf(ref)
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("%s %s: %w", op, t, err)
	}
	client, region, err := p.getClient(ctx)
	if err != nil {
		return "", err
	}
	if p.describeDenied.Load() {
		return p.probeByRead(ctx, client, region, t)
	}
	if err := needRegion(op, t, region); err != nil {
		return "", err
	}
	att := p.retries.Call(op, t.String())
	out, err := client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: awssdk.String(t.id)}, append(callOptions(t, region), p.observe(att))...)
	if err != nil {
		if isCode(err, "AccessDeniedException", "AccessDenied") {
			if p.describeDenied.CompareAndSwap(false, true) {
				p.log.Warn("DescribeSecret is denied; probing versions with GetSecretValue from now on (grant secretsmanager:DescribeSecret for cheaper rotation checks)")
			}
			return p.probeByRead(ctx, client, region, t)
		}
		return "", p.apiError(ctx, op, t.String(), err, att)
	}
	if t.version != "" {
		stages, ok := out.VersionIdsToStages[t.version]
		if !ok {
			return "", fmt.Errorf("%s %s: no such version: %w", op, t, providers.ErrNotFound)
		}
		if t.stage != "" && !slices.Contains(stages, t.stage) {
			return "", fmt.Errorf("%s %s: the version does not hold that stage: %w", op, t, providers.ErrNotFound)
		}
		return t.version, nil
	}
	stage := t.stage
	if stage == "" {
		stage = StageCurrent
	}
	// Sorted, so that a (malformed) answer giving one stage to two
	// versions still yields a stable result.
	ids := make([]string, 0, len(out.VersionIdsToStages))
	for id := range out.VersionIdsToStages {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if slices.Contains(out.VersionIdsToStages[id], stage) {
			return id, nil
		}
	}
	return "", fmt.Errorf("%s %s: no version holds stage %s: %w", op, t, stage, providers.ErrNotFound)
}

// probeByRead learns t's version id by reading it.
func (p *Provider) probeByRead(ctx context.Context, client api, region string, t target) (string, error) {
	s, err := p.get(ctx, client, region, t)
	if err != nil {
		return "", err
	}
	return s.Version, nil
}
