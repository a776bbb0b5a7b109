package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/vault/api"

	"github.com/keyward/keyward/providers"
)

// mount is what Vault says of the secrets engine a path is under.
type mount struct {
	path string // "secret/", with a trailing slash; "" when unknown
	typ  string // "kv", "generic", "database", "pki", …
	kv   int    // KV version 1 or 2; 0 for other engines
}

func (m mount) describe() string {
	if m.path == "" {
		return "the path"
	}
	return m.path
}

// mountCache remembers the mounts seen, so a path costs one
// sys/internal/ui/mounts lookup per mount, not per secret. Concurrent
// lookups that may concern the same mount (same first path segment) wait
// for one another instead of all asking Vault.
type mountCache struct {
	mu       sync.Mutex
	known    []mount
	inflight map[string]chan struct{}
}

// match returns the known mount with the longest path that prefixes path.
func (c *mountCache) match(path string) (mount, bool) {
	best, ok := mount{}, false
	for _, m := range c.known {
		if strings.HasPrefix(path+"/", m.path) && len(m.path) > len(best.path) {
			best, ok = m, true
		}
	}
	return best, ok
}

// forget drops a cached mount (it was disabled or moved).
func (c *mountCache) forget(m mount) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, k := range c.known {
		if k.path == m.path {
			c.known = append(c.known[:i], c.known[i+1:]...)
			return
		}
	}
}

// mountOf returns the mount path is under, looking it up once per mount.
func (p *Provider) mountOf(ctx context.Context, path string) (mount, error) {
	c := &p.mounts
	key, _, _ := strings.Cut(path, "/")
	for {
		c.mu.Lock()
		if m, ok := c.match(path); ok {
			c.mu.Unlock()
			return m, nil
		}
		if wait, busy := c.inflight[key]; busy {
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return mount{}, fmt.Errorf("vault read %s: %w", path, ctx.Err())
			}
		}
		done := make(chan struct{})
		c.inflight[key] = done
		c.mu.Unlock()

		m, cache, err := p.lookupMount(ctx, path)

		c.mu.Lock()
		delete(c.inflight, key)
		close(done)
		if err == nil && cache {
			if _, dup := c.match(path); !dup {
				c.known = append(c.known, m)
			}
		}
		c.mu.Unlock()
		return m, err
	}
}

// lookupMount asks Vault which mount path is under (the preflight request
// of `vault kv get`). cache is false for an answer that is not about a
// mount (an old Vault without the endpoint).
func (p *Provider) lookupMount(ctx context.Context, path string) (m mount, cache bool, err error) {
	sec, err := p.call(ctx, request{method: http.MethodGet, path: "sys/internal/ui/mounts/" + path})
	if err != nil {
		if ctx.Err() == nil {
			switch statusOf(err) {
			case http.StatusNotFound:
				// A Vault older than 0.10 has no such endpoint: read the
				// path as it is, as the CLI does.
				return mount{}, false, nil
			case http.StatusForbidden:
				return mount{}, false, fmt.Errorf("vault read %s: permission denied: no secrets engine is mounted there, or the policies of the token (%s) grant nothing under its mount (%s): %w",
					path, p.tokenSource(), providers.ClipMessage(p.scrubbed(vaultMessage(responseError(err)))), providers.ErrPermissionDenied)
			}
		}
		return mount{}, false, p.apiError(ctx, "look up the mount of", path, err, "")
	}
	if sec == nil || sec.Data == nil {
		return mount{}, false, nil
	}
	m.path, _ = sec.Data["path"].(string)
	m.typ, _ = sec.Data["type"].(string)
	if m.path == "" {
		return mount{}, false, nil
	}
	if !strings.HasSuffix(m.path, "/") {
		m.path += "/"
	}
	if m.typ == "kv" || m.typ == "generic" {
		m.kv = 1
		if opts, ok := sec.Data["options"].(map[string]any); ok {
			if v, _ := opts["version"].(string); v == "2" {
				m.kv = 2
			}
		}
	}
	p.log.Debug("vault mount", "provider", p.name, "mount", m.path, "type", m.typ, "kv", m.kv)
	return m, true, nil
}

// kvPath splits a KV v2 reference path into the secret's path below the
// mount, dropping the data/ of the API path when the reference has it
// (vault:secret/data/app, as bank-vaults and Vault Agent templates write).
func kvPath(path string, m mount) (rest string, hadData bool) {
	rest = strings.TrimPrefix(path, m.path)
	if r, ok := strings.CutPrefix(rest, "data/"); ok {
		return r, true
	}
	return rest, false
}

// readKV2 reads a KV v2 secret: MOUNT/data/PATH[?version=N].
func (p *Provider) readKV2(ctx context.Context, ref providers.Ref, m mount) (providers.Secret, error) {
	for k := range ref.Params {
		if k != ParamVersion {
			return providers.Secret{}, fmt.Errorf("vault %s: %s is a KV mount, which takes no write parameters (%s): %w", ref.Path, m.path, k, providers.ErrInvalidReference)
		}
	}
	rest, hadData := kvPath(ref.Path, m)
	if rest == "" || strings.HasSuffix(rest, "/") {
		return providers.Secret{}, fmt.Errorf("vault %s names a KV v2 mount or folder, not a secret: %w", ref.Path, providers.ErrInvalidReference)
	}
	apiPath := m.path + "data/" + rest
	version := ref.Params[ParamVersion]
	sec, err := p.call(ctx, request{method: http.MethodGet, path: apiPath, query: queryOf(version)})
	hint := p.kv2Hint(m, rest, hadData)
	if err != nil {
		if ctx.Err() == nil && statusOf(err) == http.StatusNotFound {
			return providers.Secret{}, kv2NotFound(apiPath, version, sec, hint)
		}
		p.forgetOnNoRoute(m, err)
		return providers.Secret{}, p.apiError(ctx, "read", apiPath, err, hint)
	}
	if sec == nil {
		return providers.Secret{}, kv2NotFound(apiPath, version, nil, hint)
	}
	data, ok := sec.Data["data"].(map[string]any)
	if !ok {
		return providers.Secret{}, kv2NotFound(apiPath, version, sec, hint)
	}
	out := providers.Secret{Data: data}
	if md, ok := sec.Data["metadata"].(map[string]any); ok {
		out.Version = kvVersion(numberString(md["version"]), md["created_time"])
	}
	return out, nil
}

// kvVersion is the identity of a KV v2 version: its number and, after an
// "@", its created_time as Vault reports it. The number alone does not
// identify it: after a delete of the secret's metadata, the next write is
// version 1 again. Without a created_time it is the number alone.
func kvVersion(n string, created any) string {
	if t, ok := created.(string); ok && t != "" && n != "" {
		return n + "@" + t
	}
	return n
}

// kv2Hint explains how a KV v2 reference path was mapped to the API path.
func (p *Provider) kv2Hint(m mount, rest string, hadData bool) string {
	if hadData {
		return fmt.Sprintf(" (%s is KV v2 and the data/ in the reference was taken as the API's: the secret read is %s%s, as `vault kv get %s%s` would)", m.path, m.path, rest, m.path, rest)
	}
	return fmt.Sprintf(" (%s is KV v2: vault://%s%s is read at %sdata/%s; write the path without data/, as for `vault kv get`)", m.path, m.path, rest, m.path, rest)
}

// kv2NotFound builds the not-found error of a KV v2 read, telling a
// deleted or destroyed version from a missing one.
func kv2NotFound(apiPath, version string, sec *api.Secret, hint string) error {
	what := "no secret at " + apiPath
	if version != "" {
		what = "no version " + version + " of " + apiPath
	}
	if sec != nil {
		data, _ := sec.Data["data"].(map[string]any)
		if md, ok := sec.Data["metadata"].(map[string]any); ok && data == nil {
			v := numberString(md["version"])
			if d, _ := md["destroyed"].(bool); d {
				return fmt.Errorf("vault read %s: version %s was destroyed: %w", apiPath, v, providers.ErrNotFound)
			}
			if t, _ := md["deletion_time"].(string); t != "" {
				return fmt.Errorf("vault read %s: version %s was deleted at %s: %w", apiPath, v, t, providers.ErrNotFound)
			}
		}
	}
	return fmt.Errorf("vault read %s: %s%s: %w", apiPath, what, hint, providers.ErrNotFound)
}

// readKV1 reads a KV v1 secret at its path.
func (p *Provider) readKV1(ctx context.Context, ref providers.Ref, m mount) (providers.Secret, error) {
	if len(ref.Params) > 0 {
		if _, ok := ref.Params[ParamVersion]; ok {
			return providers.Secret{}, fmt.Errorf("vault %s: %s is a KV version 1 mount, which keeps no versions: %w", ref.Path, m.path, providers.ErrInvalidReference)
		}
		return providers.Secret{}, fmt.Errorf("vault %s: %s is a KV mount, which takes no write parameters: %w", ref.Path, m.path, providers.ErrInvalidReference)
	}
	rest := strings.TrimPrefix(ref.Path, m.path)
	if rest == "" || strings.HasSuffix(rest, "/") {
		return providers.Secret{}, fmt.Errorf("vault %s names a KV mount or folder, not a secret: %w", ref.Path, providers.ErrInvalidReference)
	}
	hint := ""
	if r, ok := strings.CutPrefix(rest, "data/"); ok {
		hint = fmt.Sprintf(" (%s is KV version 1, whose paths have no data/: did you mean vault://%s%s?)", m.path, m.path, r)
	}
	sec, err := p.call(ctx, request{method: http.MethodGet, path: ref.Path})
	if err != nil {
		p.forgetOnNoRoute(m, err)
		return providers.Secret{}, p.apiError(ctx, "read", ref.Path, err, hint)
	}
	if sec == nil {
		return providers.Secret{}, fmt.Errorf("vault read %s: no secret at this path%s: %w", ref.Path, hint, providers.ErrNotFound)
	}
	data := sec.Data
	if data == nil {
		data = map[string]any{}
	}
	return providers.Secret{Data: data, Version: fingerprint(data)}, nil
}

// forgetOnNoRoute drops a cached mount when Vault says no engine serves the
// path any more (the mount was disabled or moved).
func (p *Provider) forgetOnNoRoute(m mount, err error) {
	if re := responseError(err); re != nil && strings.Contains(strings.Join(re.Errors, " "), "no handler for route") {
		p.mounts.forget(m)
	}
}

// ProbeVersion returns the current version of a KV v2 secret from its
// metadata (MOUNT/metadata/PATH), which is cheaper than reading it and
// needs only "read" on the metadata path: the version's number and
// created_time, the identity Fetch reports as Secret.Version, so a secret
// deleted and written again (version 1 again) is seen as changed. A
// reference pinned with ?version=N returns the identity of version N. For
// a KV v1 or dynamic path it returns an error wrapping
// errors.ErrUnsupported (the caller fetches and compares Version instead).
// A deleted or destroyed version, or a pinned one that does not exist,
// wraps providers.ErrNotFound.
func (p *Provider) ProbeVersion(ctx context.Context, ref providers.Ref) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("vault probe %s: %w", ref.Path, err)
	}
	if err := CheckRef(ref); err != nil {
		return "", err
	}
	m, err := p.mountOf(ctx, ref.Path)
	if err != nil {
		return "", err
	}
	if m.kv != 2 {
		kind := "a KV version 1 mount"
		if m.kv == 0 {
			kind = "not a KV mount"
		}
		return "", fmt.Errorf("vault probe %s: %s is %s, which has no version metadata: %w", ref.Path, m.describe(), kind, errors.ErrUnsupported)
	}
	rest, hadData := kvPath(ref.Path, m)
	apiPath := m.path + "metadata/" + rest
	sec, err := p.call(ctx, request{method: http.MethodGet, path: apiPath})
	if err != nil {
		hint := p.kv2Hint(m, rest, hadData)
		if ctx.Err() == nil && statusOf(err) == http.StatusNotFound {
			return "", fmt.Errorf("vault read %s: no secret at this path%s: %w", apiPath, hint, providers.ErrNotFound)
		}
		return "", p.apiError(ctx, "read", apiPath, err, hint)
	}
	if sec == nil || sec.Data == nil {
		return "", fmt.Errorf("vault read %s: no secret at this path: %w", apiPath, providers.ErrNotFound)
	}
	which, want := "the current version", numberString(sec.Data["current_version"])
	if v, ok := ref.Params[ParamVersion]; ok {
		which, want = "version", v
	} else if want == "" || want == "0" {
		return "", fmt.Errorf("vault read %s: the secret has no versions: %w", apiPath, providers.ErrNotFound)
	}
	versions, _ := sec.Data["versions"].(map[string]any)
	v, ok := versions[want].(map[string]any)
	if !ok {
		return "", fmt.Errorf("vault read %s: %s %s does not exist: %w", apiPath, which, want, providers.ErrNotFound)
	}
	if d, _ := v["destroyed"].(bool); d {
		return "", fmt.Errorf("vault read %s: %s %s was destroyed: %w", apiPath, which, want, providers.ErrNotFound)
	}
	if t, _ := v["deletion_time"].(string); t != "" {
		return "", fmt.Errorf("vault read %s: %s %s was deleted at %s: %w", apiPath, which, want, t, providers.ErrNotFound)
	}
	return kvVersion(want, v["created_time"]), nil
}

// numberString formats a JSON number from Vault's answer ("3"); "" when
// v is not a number.
func numberString(v any) string {
	switch n := v.(type) {
	case json.Number:
		return n.String()
	case float64:
		return strconv.FormatFloat(n, 'f', -1, 64)
	case int:
		return strconv.Itoa(n)
	case int64:
		return strconv.FormatInt(n, 10)
	case string:
		return n
	}
	return ""
}

// fingerprint is the Version of a secret without versions: a short hash of
// its canonical JSON (map keys sorted), never the content.
func fingerprint(data map[string]any) string {
	b, err := json.Marshal(data)
	if err != nil {
		return ""
	}
	return providers.ContentVersion(b)
}
