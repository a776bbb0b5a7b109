package gcp_test

import (
	"slices"
	"testing"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/gcp"
)

// TestOneReadForEverySpelling: through the provider set, the spellings of
// one secret (the instance's default project left out or spelt out, the
// resource name, berglas, secrets-init) are one AccessSecretVersion, and
// all their fields come from that one read; a pinned version is a read of
// its own, whether pinned by ?version= or in the resource name.
func TestOneReadForEverySpelling(t *testing.T) {
	t.Parallel()
	e := ownEnv(t)
	e.addVersion(t, testProject, "app-config", []byte(`{"user":"u1","pass":"p1"}`))
	e.addVersion(t, testProject, "app-config", []byte(`{"user":"u2","pass":"p2"}`))
	set := providers.NewSet(providers.Instance{}, []providers.Instance{{
		Name: gcp.KindName, Kind: gcp.KindName,
		Decode: func(into any) error {
			*into.(*gcp.Options) = gcp.Options{Project: testProject, Endpoint: e.fake.Addr(), Insecure: true}
			return nil
		},
	}})
	defer set.Close()
	refs := map[string]providers.Ref{}
	for name, s := range map[string]string{
		"USER":      "gcpsm://app-config#user",
		"PASS":      "gcpsm://" + testProject + "/app-config#pass",
		"WHOLE":     "gcpsm://projects/" + testProject + "/secrets/app-config",
		"BERGLAS":   "sm://" + testProject + "/app-config",
		"INIT":      "gcp:secretmanager:projects/" + testProject + "/secrets/app-config#user",
		"LATEST":    "gcpsm://app-config?version=latest#pass",
		"PINNED":    "gcpsm://app-config?version=1#user",
		"PINNED_RN": "gcpsm://projects/" + testProject + "/secrets/app-config/versions/1#pass",
	} {
		refs[name] = mustParse(t, s)
	}
	plan, failures := set.Plan(refs)
	if len(failures) > 0 {
		t.Fatalf("Plan: %v", failures)
	}
	var groups [][]string
	for _, s := range plan.Sources() {
		groups = append(groups, s.Names)
	}
	want := [][]string{{"BERGLAS", "INIT", "LATEST", "PASS", "USER", "WHOLE"}, {"PINNED", "PINNED_RN"}}
	if !slices.EqualFunc(groups, want, slices.Equal) {
		t.Errorf("secrets %v, want %v", groups, want)
	}
	got, err := set.Resolve(t.Context(), refs)
	if err != nil {
		t.Fatal(err)
	}
	if n := e.fake.Calls("AccessSecretVersion"); n != 2 {
		t.Errorf("%d AccessSecretVersion calls for one secret in six spellings and one pinned version in two, want 2", n)
	}
	for name, want := range map[string]string{"USER": "u2", "PASS": "p2", "INIT": "u2", "LATEST": "p2", "PINNED": "u1", "PINNED_RN": "p1"} {
		if got[name].Value.Reveal() != want {
			t.Errorf("%s is not the value of its version", name)
		}
	}
}
