package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestFromEnv(t *testing.T) {
	t.Parallel()
	known := func(s string) bool {
		return slices.Contains([]string{"vault", "awssm", "gcpsm", "k8s", "file", "vault-eu"}, s)
	}
	tests := []struct {
		name    string
		environ []string
		builtin bool              // pass known = nil
		want    map[string]string // name -> canonical reference
		errs    []string          // substrings of the problems, in name order
	}{
		{
			name:    "references and plain values",
			environ: []string{"DB=vault://secret/db#password", "PATH=/usr/bin:/bin", "HOME=/root", "URL=https://example.com/x", "K=k8s://ns/s#key", "EMPTY=", "NOEQ"},
			want:    map[string]string{"DB": "vault://secret/db#password", "K": "k8s://ns/s#key"},
		},
		{
			name:    "compatibility spellings",
			environ: []string{"A=arn:aws:secretsmanager:eu-west-1:1:secret:db:pw", "B=sm://p/s", "C=vault:secret/data/x#key"},
			want:    map[string]string{"A": "awssm://arn:aws:secretsmanager:eu-west-1:1:secret:db#pw", "B": "gcpsm://p/s", "C": "vault://secret/data/x#key"},
		},
		{
			name:    "declared instance and unknown scheme",
			environ: []string{"A=vault-eu://x#y", "B=postgres://u:pw@db/x", "C=redis:6379"},
			want:    map[string]string{"A": "vault-eu://x#y"},
		},
		{
			name:    "default known is the builtin kinds",
			environ: []string{"A=vault-eu://x#y", "B=file:dev.yaml#k"},
			builtin: true,
			want:    map[string]string{"B": "file:dev.yaml#k"},
		},
		{
			name:    "last duplicate wins",
			environ: []string{"A=plain", "A=vault://x#y"},
			want:    map[string]string{"A": "vault://x#y"},
		},
		{
			name:    "bad references reported together without their text",
			environ: []string{"Z=vault://", "OK=vault://x#y", "A=vault://secret/db?version=#topsecret", "M=k8s://x#"},
			errs:    []string{"A: invalid reference at position", "M: invalid reference at position 8: empty field", "Z: invalid reference at position 9: empty path"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k := known
			if tt.builtin {
				k = nil
			}
			refs, err := FromEnv(tt.environ, k)
			if tt.errs != nil {
				if err == nil {
					t.Fatalf("no error; refs %v", refs)
				}
				ps := problemsOf(t, err)
				if len(ps) != len(tt.errs) {
					t.Fatalf("problems %v, want %d", ps, len(tt.errs))
				}
				for i, w := range tt.errs {
					if !strings.Contains(ps[i].Msg, w) {
						t.Errorf("problem %d = %q, want %q", i, ps[i].Msg, w)
					}
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, EnvSource+": 3 problems: ") || strings.Contains(msg, "topsecret") || strings.Contains(msg, "vault://") {
					t.Errorf("Error() = %q", msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for name, r := range refs {
				got[name] = r.String()
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("FromEnv = %v, want %v", got, tt.want)
			}
			names := EnvNames(refs)
			if !slices.IsSorted(names) || len(names) != len(tt.want) {
				t.Errorf("EnvNames = %v", names)
			}
		})
	}
}
