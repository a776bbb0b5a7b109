package aws

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyward/keyward/providers"
)

var _ providers.Writer = (*Provider)(nil)

// writeAPI is the part of the Secrets Manager API that Write uses. The
// real client has it; a fake without it makes Write unsupported.
type writeAPI interface {
	PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
	UpdateSecretVersionStage(ctx context.Context, in *secretsmanager.UpdateSecretVersionStageInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error)
}

var _ writeAPI = (*secretsmanager.Client)(nil)

// PendingStage is the staging label of a version Write has stored but not
// yet made current. Secrets Manager moves a label to the version it is put
// on, so at most one version carries it.
const PendingStage = "KEYWARD_PENDING"

// Write stores value in the secret ref names (in its field, when ref has
// one: a top-level key of the JSON object the SecretString holds, the
// other keys kept) as a new version that becomes AWSCURRENT only if
// AWSCURRENT is still the version from.
//
// Secrets Manager has no conditional PutSecretValue, so Write does it in
// two steps: PutSecretValue stores the new version under PendingStage
// (not AWSCURRENT), with a fresh random ClientRequestToken (the SDK's
// retries resend it, so a retried put creates no second version); then
// UpdateSecretVersionStage moves AWSCURRENT to it with RemoveFromVersionId
// set to from, which Secrets Manager refuses when AWSCURRENT is on another
// version: that refusal is the compare-and-set. A version whose move was
// refused stays, labelled PendingStage until the next Write, and is never
// current. IAM: secretsmanager:GetSecretValue, PutSecretValue and
// UpdateSecretVersionStage on the secret.
//
// A reference with a version-id, or a version-stage other than AWSCURRENT,
// or to a binary secret's field, wraps errors.ErrUnsupported.
func (p *Provider) Write(ctx context.Context, ref providers.Ref, value []byte, from string) (string, error) {
	if err := CheckRef(ref); err != nil {
		return "", err
	}
	t := targetOf(ref)
	if (t.stage != "" && t.stage != "AWSCURRENT") || t.version != "" {
		return "", fmt.Errorf("write %s: a reference to a version, or to a stage other than AWSCURRENT, cannot be written: %w", t, errors.ErrUnsupported)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("write %s: %w", t, err)
	}
	client, region, err := p.getClient(ctx)
	if err != nil {
		return "", err
	}
	if err := needRegion("PutSecretValue", t, region); err != nil {
		return "", err
	}
	w, ok := client.(writeAPI)
	if !ok {
		return "", fmt.Errorf("write %s: this client cannot write: %w", t, errors.ErrUnsupported)
	}
	base := t
	base.version, base.stage = from, ""
	sec, err := p.get(ctx, client, region, base)
	if err != nil {
		return "", err
	}
	payload, err := replaced(sec, ref.Field, value)
	if err != nil {
		return "", fmt.Errorf("write %s: %w", t, err)
	}
	token := make([]byte, 16)
	if _, err := rand.Read(token); err != nil {
		return "", err
	}
	opts := callOptions(t, region)
	const putOp = "PutSecretValue"
	att := p.retries.Call(putOp, t.String())
	put, err := w.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId:           awssdk.String(t.id),
		SecretString:       awssdk.String(payload),
		ClientRequestToken: awssdk.String(hex.EncodeToString(token)),
		VersionStages:      []string{PendingStage},
	}, append(opts, p.observe(att))...)
	if err != nil {
		return "", p.apiError(ctx, putOp, t.String(), err, att)
	}
	next := awssdk.ToString(put.VersionId)
	const moveOp = "UpdateSecretVersionStage"
	att = p.retries.Call(moveOp, t.String())
	_, err = w.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId:            awssdk.String(t.id),
		VersionStage:        awssdk.String("AWSCURRENT"),
		MoveToVersionId:     awssdk.String(next),
		RemoveFromVersionId: awssdk.String(from),
	}, append(opts, p.observe(att))...)
	if err != nil {
		if ctx.Err() == nil && isCode(err, "InvalidParameterException", "InvalidRequestException") {
			return p.settled(ctx, client, region, t, ref.Field, value)
		}
		return "", p.apiError(ctx, moveOp, t.String(), err, att)
	}
	// The label has done its job; leaving it would only look odd.
	_, _ = w.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: awssdk.String(t.id), VersionStage: awssdk.String(PendingStage), RemoveFromVersionId: awssdk.String(next),
	}, opts...)
	return next, nil
}

// replaced returns sec's SecretString with value at field (the whole
// string when field is "").
func replaced(sec providers.Secret, field string, value []byte) (string, error) {
	if field == "" {
		return string(value), nil
	}
	if sec.Data == nil {
		return "", fmt.Errorf("the secret is no JSON object, so it has no field %q to write: %w", field, errors.ErrUnsupported)
	}
	obj := map[string]json.RawMessage{}
	d := json.NewDecoder(bytes.NewReader(sec.Value.Bytes()))
	if err := d.Decode(&obj); err != nil {
		return "", fmt.Errorf("the secret is no JSON object: %w", errors.ErrUnsupported)
	}
	v, _ := json.Marshal(string(value))
	obj[field] = v
	b, err := json.Marshal(obj)
	return string(b), err
}

// settled handles a refused move of AWSCURRENT: if the current version
// already holds value (at field), a write whose answer was lost, it is
// returned; otherwise the error wraps providers.ErrConflict.
func (p *Provider) settled(ctx context.Context, client api, region string, t target, field string, value []byte) (string, error) {
	cur, err := p.get(ctx, client, region, t)
	if err != nil {
		return "", err
	}
	var got providers.Value
	if field == "" {
		got = cur.Value
	} else if got, err = cur.Field(field); err != nil {
		got = providers.Value{}
	}
	if bytes.Equal(got.Bytes(), value) {
		return cur.Version, nil
	}
	return "", fmt.Errorf("write %s: AWSCURRENT moved since the version read: %w", t, providers.ErrConflict)
}
