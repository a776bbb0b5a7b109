package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/keyward/keyward/providers"
)

// A kind registered in this build: its Params and CheckRef apply to the
// references of its instances.
func init() {
	providers.Register(providers.Kind{
		Name:   "cfgtest",
		Params: []string{"version"},
		CheckRef: func(r providers.Ref) error {
			if strings.HasPrefix(r.Path, "/") {
				return errors.New("path must be relative")
			}
			return nil
		},
		New: func(providers.Instance) (providers.Provider, error) { return nil, errors.New("unused") },
	})
}

func TestRegisteredKindChecksReferences(t *testing.T) {
	t.Parallel()
	src := `version: 1
providers:
  ct: {kind: cfgtest}
secrets:
  A: ct://a/b?version=2#f
  B: ct://a/b?stage=x
  C: ct:///abs
`
	_, err := Parse([]byte(src), "keyward.yaml")
	checkProblems(t, err, []want{
		{6, `secrets.B: unknown option "stage" for provider kind cfgtest (allowed: version)`},
		{7, "secrets.C: path must be relative"},
	})
}
