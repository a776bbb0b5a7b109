package kubernetes

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/keyward/keyward/providers"
)

var _ providers.Writer = (*Provider)(nil)

// secretsWriter is the write call of the Kubernetes API that Write uses;
// restSecrets implements it (the read-only secretsAPI does not).
type secretsWriter interface {
	// Update replaces a Secret; the API server refuses it (409 Conflict)
	// unless s.ResourceVersion is the stored one.
	Update(ctx context.Context, namespace string, s *corev1.Secret) (*corev1.Secret, error)
}

// Update implements secretsWriter.
func (r *restSecrets) Update(ctx context.Context, namespace string, s *corev1.Secret) (*corev1.Secret, error) {
	out := &corev1.Secret{}
	err := r.c.Put().Namespace(namespace).Resource("secrets").Name(s.Name).Body(s).Do(ctx).Into(out)
	return out, err
}

// Write stores value under the key ref names in the Secret, keeping its
// other keys, with an update whose resourceVersion precondition is from
// (as Fetch reported it): the API server refuses it if the Secret changed
// since. A reference without a key is refused (errors.ErrUnsupported). It
// needs RBAC "update" on the Secret (besides "get").
func (p *Provider) Write(ctx context.Context, ref providers.Ref, value []byte, from string) (string, error) {
	ns, name, err := SplitRef(ref)
	if err != nil {
		return "", fmt.Errorf("%s: %w", ref.String(), err)
	}
	if ref.Field == "" {
		return "", fmt.Errorf("update secret %s/%s: a Secret holds keys: reference the one to write (#key): %w", ns, name, errors.ErrUnsupported)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("update secret %s/%s: %w", ns, name, err)
	}
	api, err := p.client()
	if err != nil {
		return "", err
	}
	w, ok := api.(secretsWriter)
	if !ok {
		return "", fmt.Errorf("update secret %s/%s: this client cannot write: %w", ns, name, errors.ErrUnsupported)
	}
	get := func() (*corev1.Secret, error) {
		var sec *corev1.Secret
		err := p.retry(ctx, "get", ns, name, func() (err error) {
			sec, err = api.Get(ctx, ns, name)
			return err
		})
		if err != nil {
			return nil, apiError(ctx, "get", ns, name, err)
		}
		return sec, nil
	}
	// settled: the Secret moved on; done if it holds value already.
	settled := func(sec *corev1.Secret) (string, error) {
		if bytes.Equal(sec.Data[ref.Field], value) {
			return sec.ResourceVersion, nil
		}
		return "", fmt.Errorf("update secret %s/%s: %w", ns, name, providers.ErrConflict)
	}
	sec, err := get()
	if err != nil {
		return "", err
	}
	if sec.ResourceVersion != from {
		return settled(sec)
	}
	upd := sec.DeepCopy()
	if upd.Data == nil {
		upd.Data = map[string][]byte{}
	}
	upd.Data[ref.Field] = value
	var out *corev1.Secret
	err = p.retry(ctx, "update", ns, name, func() (err error) {
		out, err = w.Update(ctx, ns, upd)
		return err
	})
	if apierrors.IsConflict(err) {
		if sec, err = get(); err != nil {
			return "", err
		}
		return settled(sec)
	}
	if err != nil {
		return "", apiError(ctx, "update", ns, name, err)
	}
	p.remember(ns+"/"+name, observed{present: true, rv: out.ResourceVersion})
	return out.ResourceVersion, nil
}
