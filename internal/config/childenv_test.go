package config

import (
	"maps"
	"testing"
)

func TestEnvVars(t *testing.T) {
	t.Parallel()
	const secrets = "version: 1\nsecrets:\n  A: file:/s.yaml#a\n  B: file:/s.yaml#b\n"
	tests := []struct {
		name, env string
		want      map[string]string
	}{
		{"no env section: every secret under its own name", "", map[string]string{"A": "A", "B": "B"}},
		{"null env section: the same", "env:\n", map[string]string{"A": "A", "B": "B"}},
		{"env entries: exactly those", "env:\n  X: A\n", map[string]string{"X": "A"}},
		{"empty env section: none", "env: {}\n", map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte(secrets+tt.env), "/etc/kw/keyward.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if got := c.EnvVars(); !maps.Equal(got, tt.want) {
				t.Errorf("EnvVars() = %v, want %v", got, tt.want)
			}
		})
	}
	if got := (*Config)(nil).EnvVars(); len(got) != 0 {
		t.Errorf("nil config: %v", got)
	}
}
