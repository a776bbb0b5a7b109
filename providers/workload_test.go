package providers_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/keyward/keyward/providers"
)

// workloadSeen records the Workload each instance of the kind
// "fake-workload" was built with, by instance name.
var workloadSeen sync.Map

func init() {
	providers.Register(providers.Kind{
		Name: "fake-workload",
		New: func(in providers.Instance) (providers.Provider, error) {
			workloadSeen.Store(in.Name, in.Workload)
			return &fake{}, nil
		},
	})
}

// TestSetWorkloadNodeKinds: the instances of a set get its Workload,
// default and declared alike, except those of the kinds the Workload
// names in NodeKinds, which act with keyward's own identity.
func TestSetWorkloadNodeKinds(t *testing.T) {
	for _, c := range []struct {
		nodeKinds []string
		acts      bool
	}{{nil, true}, {[]string{"file"}, true}, {[]string{"fake-workload"}, false}} {
		w := &providers.Workload{Namespace: "ns", ServiceAccount: "sa", NodeKinds: c.nodeKinds,
			Token:       func(string) (string, error) { return "t", nil },
			Annotations: func(context.Context) (map[string]string, error) { return nil, nil }}
		set := providers.NewSet(providers.Instance{Workload: w}, []providers.Instance{{Name: "declared", Kind: "fake-workload", Workload: w}})
		for _, name := range []string{"fake-workload", "declared"} {
			if _, err := set.Provider(name); err != nil {
				t.Fatal(err)
			}
			got, _ := workloadSeen.Load(name)
			if acts := got.(*providers.Workload) == w; acts != c.acts {
				t.Errorf("node kinds %v: instance %s acts as the workload: %v, want %v", c.nodeKinds, name, acts, c.acts)
			}
		}
		set.Close()
	}
}

// TestCheckEndpoint: an endpoint option is an absolute http(s) URL without
// credentials or a fragment, and a refusal never quotes the URL (which may
// carry a password).
func TestCheckEndpoint(t *testing.T) {
	for _, ok := range []string{"https://sts.example.test", "http://127.0.0.1:4566/", "https://[::1]:8443/v1"} {
		if err := providers.CheckEndpoint("endpoint", ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"sts.example.test", "ftp://h", "https://", "https://user:pw-7f3c9a@h/", "https://h/#pw-7f3c9a", "%zz-pw-7f3c9a"} {
		err := providers.CheckEndpoint("sts_endpoint", bad)
		if err == nil {
			t.Errorf("endpoint %d of the bad list: accepted", len(bad))
			continue
		}
		if strings.Contains(err.Error(), "pw-7f3c9a") || strings.Contains(err.Error(), "example") || !strings.HasPrefix(err.Error(), "sts_endpoint: ") {
			t.Errorf("refusal %q quotes the URL or does not name the key", err)
		}
	}
}
