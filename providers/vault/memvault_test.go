package vault

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/providertest"
)

// memVault is an in-memory Vault behind the provider's vaultAPI seam, with
// the behaviour the conformance suite needs: a KV v2 mount at secret/
// with versions, created_time, soft-deleted versions and metadata delete
// (after which the next write is version 1 again); a policy denying
// secret/data/denied/*; a database mount whose creds are leased, and
// sys/leases/renew. The integration tests run the suite against a real
// Vault as well.
type memVault struct {
	t testing.TB

	mu     sync.Mutex
	kv     map[string][]kvRecord // path below secret/ → versions (version i+1 at i)
	leases map[string]bool       // lease IDs given out
	clock  time.Time
}

type kvRecord struct {
	data    map[string]any
	created string
}

func newMemVault(t testing.TB) *memVault {
	return &memVault{t: t, kv: map[string][]kvRecord{}, leases: map[string]bool{}, clock: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// put writes data as the next version of the secret at path.
func (m *memVault) put(path string, data map[string]any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clock = m.clock.Add(time.Millisecond + 123*time.Nanosecond)
	m.kv[path] = append(m.kv[path], kvRecord{data: maps.Clone(data), created: m.clock.Format(time.RFC3339Nano)})
}

// deleteAll deletes the secret at path with its metadata.
func (m *memVault) deleteAll(path string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.kv, path)
}

func (m *memVault) api() *fakeAPI { return &fakeAPI{handle: m.handle} }

func (m *memVault) handle(r request) (*api.Secret, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case strings.HasPrefix(r.path, "sys/internal/ui/mounts/secret/"):
		return mountAnswer(m.t, "secret/", "kv", "2"), nil
	case strings.HasPrefix(r.path, "sys/internal/ui/mounts/database/"):
		return mountAnswer(m.t, "database/", "database", ""), nil
	case strings.HasPrefix(r.path, "sys/internal/ui/mounts/"):
		return nil, vaultErr(http.StatusForbidden, "permission denied")
	case r.path == "auth/token/lookup-self":
		return lookupSelfOK(m.t), nil
	case strings.HasPrefix(r.path, "secret/data/denied/"):
		return nil, vaultErr(http.StatusForbidden, "1 error occurred:\n\t* permission denied\n\n")
	case strings.HasPrefix(r.path, "secret/data/") && r.method == http.MethodGet:
		return m.read(strings.TrimPrefix(r.path, "secret/data/"), r.query.Get("version"))
	case strings.HasPrefix(r.path, "secret/metadata/") && r.method == http.MethodGet:
		return m.metadata(strings.TrimPrefix(r.path, "secret/metadata/"))
	case strings.HasPrefix(r.path, "database/creds/") && r.method == http.MethodGet:
		id := r.path + "/" + randomID(m.t)
		m.leases[id] = true
		return &api.Secret{LeaseID: id, LeaseDuration: 3600, Renewable: true,
			Data: map[string]any{"username": "v-" + randomID(m.t), "password": randomID(m.t)}}, nil
	case r.path == "sys/leases/renew" && r.method == http.MethodPut:
		id, _ := r.body["lease_id"].(string)
		if !m.leases[id] {
			return nil, vaultErr(http.StatusBadRequest, "lease not found")
		}
		inc, _ := r.body["increment"].(int64)
		return &api.Secret{LeaseID: id, LeaseDuration: int(inc), Renewable: true}, nil
	}
	return nil, vaultErr(http.StatusNotFound)
}

func (m *memVault) read(path, version string) (*api.Secret, error) {
	vs := m.kv[path]
	if len(vs) == 0 {
		return nil, vaultErr(http.StatusNotFound)
	}
	n := len(vs)
	if version != "" {
		var err error
		if n, err = strconv.Atoi(version); err != nil || n < 1 || n > len(vs) {
			return nil, vaultErr(http.StatusNotFound)
		}
	}
	v := vs[n-1]
	return &api.Secret{Data: map[string]any{
		"data":     maps.Clone(v.data),
		"metadata": map[string]any{"version": n, "created_time": v.created, "deletion_time": "", "destroyed": false},
	}}, nil
}

func (m *memVault) metadata(path string) (*api.Secret, error) {
	vs := m.kv[path]
	if len(vs) == 0 {
		return nil, vaultErr(http.StatusNotFound)
	}
	versions := map[string]any{}
	for i, v := range vs {
		versions[strconv.Itoa(i+1)] = map[string]any{"created_time": v.created, "deletion_time": "", "destroyed": false}
	}
	return &api.Secret{Data: map[string]any{"current_version": len(vs), "versions": versions}}, nil
}

func randomID(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestConformanceFake runs the conformance suite against memVault, so that
// plain go test checks the provider against the contract.
func TestConformanceFake(t *testing.T) {
	t.Parallel()
	m := newMemVault(t)
	ref := func(path, field string, params ...string) providers.Ref {
		r := providers.Ref{Scheme: KindName, Path: path, Field: field}
		for i := 0; i+1 < len(params); i += 2 {
			if r.Params == nil {
				r.Params = map[string]string{}
			}
			r.Params[params[i]] = params[i+1]
		}
		return r
	}
	providertest.Run(t, providertest.Harness{
		Kind: KindName,
		New: func(t *testing.T) providers.Provider {
			p, _, _ := fakeProvider(t, m.api(), AuthOptions{}, map[string]string{envToken: "hvs.conformance"})
			p.now = time.Now
			return p
		},
		PutValue: func(t *testing.T, name string, value []byte) providers.Ref {
			m.put(name, map[string]any{"value": string(value)})
			return ref("secret/"+name, "value")
		},
		PutObject: func(t *testing.T, name string, fields map[string]any) providers.Ref {
			m.put(name, fields)
			return ref("secret/"+name, "")
		},
		PutVersions: func(t *testing.T, name string, values [][]byte) providertest.Versions {
			var vs providertest.Versions
			for i, v := range values {
				m.put(name, map[string]any{"value": string(v)})
				vs.Pinned = append(vs.Pinned, ref("secret/"+name, "value", ParamVersion, fmt.Sprint(i+1)))
			}
			vs.Latest = ref("secret/"+name, "value")
			vs.Missing = ref("secret/"+name, "value", ParamVersion, "99")
			return vs
		},
		Delete:  func(t *testing.T, name string) { m.deleteAll(name) },
		Missing: func(t *testing.T, name string) providers.Ref { return ref("secret/"+name, "") },
		Denied: func(t *testing.T, name string, value []byte) providers.Ref {
			m.put("denied/"+name, map[string]any{"value": string(value)})
			return ref("secret/denied/"+name, "value")
		},
		PutLeased: func(t *testing.T, name string) providers.Ref {
			return ref("database/creds/"+name, "")
		},
	})
}
