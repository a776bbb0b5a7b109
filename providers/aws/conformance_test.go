package aws

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/aws/smithy-go"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/providertest"
)

// TestConformanceFake runs the conformance suite against the in-memory
// Secrets Manager behind the SDK seam, so that plain go test checks the
// provider against the contract; the integration tests run it against
// moto as well.
func TestConformanceFake(t *testing.T) {
	t.Parallel()
	f := newFake()
	var denied sync.Map
	f.errFor = func(op, id string) error {
		if _, ok := denied.Load(id); ok {
			return &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "User: arn:aws:sts::123456789012:assumed-role/app/keyward is not authorized to perform: secretsmanager:" + op}
		}
		return nil
	}
	ref := func(name string, params ...string) providers.Ref {
		r := providers.Ref{Scheme: KindName, Path: name}
		for i := 0; i+1 < len(params); i += 2 {
			if r.Params == nil {
				r.Params = map[string]string{}
			}
			r.Params[params[i]] = params[i+1]
		}
		return r
	}
	providertest.Run(t, providertest.Harness{
		Kind:       KindName,
		New:        func(t *testing.T) providers.Provider { return fakeProvider(t, f) },
		BinarySafe: true,
		PutValue: func(t *testing.T, name string, value []byte) providers.Ref {
			f.put(fakeRegion, name, value, false)
			return ref(name)
		},
		PutObject: func(t *testing.T, name string, fields map[string]any) providers.Ref {
			b, err := json.Marshal(fields)
			if err != nil {
				t.Fatal(err)
			}
			f.put(fakeRegion, name, b, true)
			return ref(name)
		},
		PutVersions: func(t *testing.T, name string, values [][]byte) providertest.Versions {
			var vs providertest.Versions
			for _, v := range values {
				vs.Pinned = append(vs.Pinned, ref(name, ParamVersionID, f.put(fakeRegion, name, v, false)))
			}
			vs.Latest = ref(name)
			vs.Missing = ref(name, ParamVersionID, fmt.Sprintf("%08d-ffff-ffff-ffff-%012d", 99999999, 0))
			return vs
		},
		Delete:  func(t *testing.T, name string) { f.remove(fakeRegion, name) },
		Missing: func(t *testing.T, name string) providers.Ref { return ref(name) },
		Denied: func(t *testing.T, name string, value []byte) providers.Ref {
			f.put(fakeRegion, name, value, false)
			denied.Store(name, true)
			return ref(name)
		},
		PutMalformed: func(t *testing.T, name string, value []byte) providers.Ref {
			f.put(fakeRegion, name, []byte(`{"password": "`+string(value)), true)
			r := ref(name)
			r.Field = "password"
			return r
		},
	})
}
