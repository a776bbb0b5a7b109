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
		{"no env section but files: none, the files carry them", "files:\n  - {path: /run/s/a, format: raw, secret: A}\n", map[string]string{}},
		{"env entries and files: exactly the entries", "env:\n  X: B\nfiles:\n  - {path: /run/s/a, format: raw, secret: A}\n", map[string]string{"X": "B"}},
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

// TestEnvVarLine: the line that hands each variable over, in either form
// of the config, and 0 for one it does not.
func TestEnvVarLine(t *testing.T) {
	t.Parallel()
	const secrets = "version: 1\nsecrets:\n  B: file:/s.yaml#b\n  A: file:/s.yaml#a\n"
	c, err := Parse([]byte(secrets), "/etc/kw/keyward.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if a, b, x := c.EnvVarLine("A"), c.EnvVarLine("B"), c.EnvVarLine("X"); a != 4 || b != 3 || x != 0 {
		t.Errorf("without env: A %d B %d X %d, want 4 3 0", a, b, x)
	}
	c, err = Parse([]byte(secrets+"env:\n  Z_VAR: A\n  A_VAR: B\n"), "/etc/kw/keyward.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if z, a, s := c.EnvVarLine("Z_VAR"), c.EnvVarLine("A_VAR"), c.EnvVarLine("A"); z != 6 || a != 7 || s != 0 {
		t.Errorf("with env: Z_VAR %d A_VAR %d A %d, want 6 7 0", z, a, s)
	}
}
