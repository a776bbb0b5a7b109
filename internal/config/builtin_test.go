package config

import "github.com/keyward/keyward/providers"

// The provider kinds keyward knows, registered as not in this build: the
// tests here check the config's own rules, as before the kinds
// registered themselves, without each kind's reference checks (the kind
// test registers one with them).
func init() {
	for _, k := range []string{"vault", "awssm", "gcpsm", "k8s", "file"} {
		providers.RegisterNotInBuild(k, "config_tests")
	}
}
