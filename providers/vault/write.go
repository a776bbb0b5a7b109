package vault

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"

	"github.com/keyward/keyward/providers"
)

var _ providers.Writer = (*Provider)(nil)

// Write stores value in the field ref names of a KV v2 secret, keeping its
// other fields, with check-and-set on the version from (as Fetch reported
// it): Vault refuses the write if the secret has a newer version. A field
// the secret does not have yet is added. Only top-level fields are
// written (a field name with dots is one key), and only on KV v2: KV v1
// has no check-and-set, so keyward refuses to write there
// (errors.ErrUnsupported), as for a pinned ?version= or a reference
// without a field. The token needs the create and update capabilities on
// MOUNT/data/PATH (and read, as for Fetch).
func (p *Provider) Write(ctx context.Context, ref providers.Ref, value []byte, from string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("vault write %s: %w", ref.Path, err)
	}
	if err := CheckRef(ref); err != nil {
		return "", err
	}
	if len(ref.Params) > 0 {
		return "", fmt.Errorf("vault write %s: a reference with parameters (a pinned version) cannot be written: %w", ref.Path, errors.ErrUnsupported)
	}
	if ref.Field == "" {
		return "", fmt.Errorf("vault write %s: a KV secret holds fields: reference the one to write (#name): %w", ref.Path, errors.ErrUnsupported)
	}
	m, err := p.mountOf(ctx, ref.Path)
	if err != nil {
		return "", err
	}
	if m.kv != 2 {
		return "", fmt.Errorf("vault write %s: %s is no KV version 2 mount, which alone has check-and-set: %w", ref.Path, m.describe(), errors.ErrUnsupported)
	}
	n, _, _ := strings.Cut(from, "@")
	cas, err := strconv.Atoi(n)
	if err != nil || cas < 1 {
		return "", fmt.Errorf("vault write %s: %q is no KV v2 version: %w", ref.Path, from, providers.ErrConflict)
	}
	// The data of the version read, to keep its other fields.
	at := ref.Whole()
	at.Params = map[string]string{ParamVersion: n}
	base, err := p.readKV2(ctx, at, m)
	if err != nil {
		return "", err
	}
	if base.Version != from {
		// Version n is another secret's (deleted and re-created since).
		return p.settled(ctx, ref, m, value)
	}
	data := maps.Clone(base.Data)
	data[ref.Field] = string(value)
	rest, _ := kvPath(ref.Path, m)
	apiPath := m.path + "data/" + rest
	sec, err := p.call(ctx, request{method: http.MethodPut, path: apiPath, body: map[string]any{
		"options": map[string]any{"cas": cas},
		"data":    data,
	}})
	if err != nil {
		if ctx.Err() == nil && statusOf(err) == http.StatusBadRequest && strings.Contains(vaultMessage(responseError(err)), "check-and-set") {
			return p.settled(ctx, ref, m, value)
		}
		return "", p.apiError(ctx, "write", apiPath, err, "")
	}
	if sec == nil || sec.Data == nil {
		return "", fmt.Errorf("vault write %s: no version in Vault's answer", apiPath)
	}
	return kvVersion(numberString(sec.Data["version"]), sec.Data["created_time"]), nil
}

// settled handles a secret that moved on from the version a write was
// based on: if it already holds value at ref's field (the write was done
// and its answer lost), the current version is returned; otherwise the
// error wraps providers.ErrConflict.
func (p *Provider) settled(ctx context.Context, ref providers.Ref, m mount, value []byte) (string, error) {
	cur, err := p.readKV2(ctx, ref.Whole(), m)
	if err != nil {
		return "", err
	}
	if s, ok := cur.Data[ref.Field].(string); ok && s == string(value) {
		return cur.Version, nil
	}
	return "", fmt.Errorf("vault write %s: %w", ref.Path, providers.ErrConflict)
}
