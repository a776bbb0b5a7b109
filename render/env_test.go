package render

import (
	"slices"
	"testing"

	"github.com/keyward/keyward/providers"
)

func values(kv map[string]string) map[string]providers.Value {
	if kv == nil {
		return nil
	}
	m := make(map[string]providers.Value, len(kv))
	for k, v := range kv {
		m[k] = providers.StringValue(v)
	}
	return m
}

func TestEnv(t *testing.T) {
	t.Parallel()
	parent := []string{
		"PATH=/bin",
		"DB_PASSWORD=vault://secret/db#password",
		"VAULT_TOKEN=hvs.parent",
		"KEYWARD_CONFIG=/etc/kw.yaml",
		"KEYWARD_LOG=debug",
		"HOME=/root",
		"HOME=/home/app", // duplicate: first position, last value
		"NOEQUALS",
		"EMPTY=",
	}
	tests := []struct {
		name            string
		replaced, added map[string]string
		keep            []string
		want            []string
	}{
		{
			name:     "replace, scrub, add sorted",
			replaced: map[string]string{"DB_PASSWORD": "pw\nline2"},
			added:    map[string]string{"Z_KEY": "z", "A_KEY": "a=b"},
			want:     []string{"PATH=/bin", "DB_PASSWORD=pw\nline2", "HOME=/home/app", "EMPTY=", "A_KEY=a=b", "Z_KEY=z"},
		},
		{
			name: "keep",
			keep: []string{"VAULT_TOKEN", "KEYWARD_LOG"},
			want: []string{"PATH=/bin", "DB_PASSWORD=vault://secret/db#password", "VAULT_TOKEN=hvs.parent", "KEYWARD_LOG=debug", "HOME=/home/app", "EMPTY="},
		},
		{
			name:     "added overrides in place and beats replaced; added scrubbed name passes",
			replaced: map[string]string{"DB_PASSWORD": "from-ref"},
			added:    map[string]string{"DB_PASSWORD": "from-env", "PATH": "/usr/bin", "VAULT_TOKEN": "child-token"},
			want:     []string{"PATH=/usr/bin", "DB_PASSWORD=from-env", "VAULT_TOKEN=child-token", "HOME=/home/app", "EMPTY="},
		},
		{
			name:     "replaced missing from parent is appended",
			replaced: map[string]string{"NEW": "n"},
			want:     []string{"PATH=/bin", "DB_PASSWORD=vault://secret/db#password", "HOME=/home/app", "EMPTY=", "NEW=n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for range 5 { // deterministic despite map iteration order
				got, err := Env(parent, values(tt.replaced), values(tt.added), tt.keep)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, tt.want) {
					t.Fatalf("got  %q\nwant %q", got, tt.want)
				}
			}
		})
	}
}

func TestEnvErrors(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t"
	tests := []struct {
		name            string
		replaced, added map[string]string
		want            string
	}{
		{"nul", map[string]string{"DB_PASSWORD": secret + "\x00tail"}, nil, "env DB_PASSWORD: value contains a NUL byte"},
		{"bad name", nil, map[string]string{"1BAD": secret}, `env "1BAD": not a valid environment variable name`},
		{"equals in name", nil, map[string]string{"A=B": secret}, `env "A=B": not a valid environment variable name`},
		{"all listed", map[string]string{"B": "\x00"}, map[string]string{"A": "\x00" + secret},
			"env B: value contains a NUL byte; env A: value contains a NUL byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Env([]string{"PATH=/bin"}, values(tt.replaced), values(tt.added), nil)
			if err == nil || err.Error() != tt.want || got != nil {
				t.Fatalf("Env = %q, %v; want error %q", got, err, tt.want)
			}
			assertNoLeak(t, err, secret)
		})
	}
}
