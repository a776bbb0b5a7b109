package gcp_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/gcp"
	"github.com/keyward/keyward/providers/gcp/gcpfake"
	"github.com/keyward/keyward/providers/providertest"
)

// TestConformance runs the provider conformance suite with the real client
// library against the fake Secret Manager over a loopback socket.
func TestConformance(t *testing.T) {
	ref := func(t *testing.T, s string) providers.Ref { return mustParse(t, s) }
	providertest.Run(t, providertest.Harness{
		Kind: gcp.KindName,
		New: func(t *testing.T) providers.Provider {
			p, err := gcp.New(gcp.Options{Endpoint: shared.fake.Addr(), Insecure: true}, nil)
			if err != nil {
				t.Fatalf("gcp.New: %v", err)
			}
			return p
		},
		PutValue: func(t *testing.T, name string, value []byte) providers.Ref {
			shared.addVersion(t, testProject, name, value)
			return ref(t, "gcpsm://"+testProject+"/"+name)
		},
		PutObject: func(t *testing.T, name string, fields map[string]any) providers.Ref {
			b, err := json.Marshal(fields)
			if err != nil {
				t.Fatal(err)
			}
			shared.addVersion(t, testProject, name, b)
			// The secrets-init spelling, to cover it in the suite too.
			return ref(t, "gcp:secretmanager:projects/"+testProject+"/secrets/"+name)
		},
		BinarySafe: true,
		PutVersions: func(t *testing.T, name string, values [][]byte) providertest.Versions {
			for _, v := range values {
				shared.addVersion(t, testProject, name, v)
			}
			// Each pinned version in another spelling: ?version=, a
			// resource name with /versions/N, berglas #N.
			return providertest.Versions{
				Latest: ref(t, "gcpsm://"+testProject+"/"+name),
				Pinned: []providers.Ref{
					ref(t, "gcpsm://"+testProject+"/"+name+"?version=1"),
					ref(t, "gcpsm://projects/"+testProject+"/secrets/"+name+"/versions/2"),
					ref(t, "sm://"+testProject+"/"+name+"#3"),
				},
				Missing: ref(t, fmt.Sprintf("gcpsm://%s/%s?version=%d", testProject, name, len(values)+1)),
			}
		},
		Delete: func(t *testing.T, name string) {
			err := shared.admin.DeleteSecret(t.Context(), &secretmanagerpb.DeleteSecretRequest{Name: "projects/" + testProject + "/secrets/" + name})
			if err != nil {
				t.Fatalf("DeleteSecret %s: %v", name, err)
			}
		},
		Missing: func(t *testing.T, name string) providers.Ref {
			return ref(t, "gcpsm://"+testProject+"/"+name)
		},
		Denied: func(t *testing.T, name string, value []byte) providers.Ref {
			shared.addVersion(t, testProject, name, value)
			shared.fake.Deny(gcpfake.DenyRule{Project: testProject, Secret: name, Permissions: []string{gcpfake.PermVersionsAccess}})
			return ref(t, "gcpsm://"+testProject+"/"+name)
		},
		PutMalformed: func(t *testing.T, name string, value []byte) providers.Ref {
			// Not a JSON object, so a #field of it cannot be taken.
			shared.addVersion(t, testProject, name, append([]byte(`{"password": `), value...))
			return ref(t, "gcpsm://"+testProject+"/"+name+"#password")
		},
	})
}
