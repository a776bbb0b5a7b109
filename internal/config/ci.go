package config

import (
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// CI is the ci: section, read by keyward ci.
type CI struct {
	// Outputs are secret names that keyward ci, under GitHub Actions, also
	// writes to $GITHUB_OUTPUT (as step outputs named after the secret).
	Outputs []string
	// Dotenv is the dotenv file keyward ci writes under GitLab CI and other
	// systems (and under GitHub Actions when given), absolute after Parse;
	// "" leaves the choice to the command.
	Dotenv string
	// Line is the line of the section.
	Line int
}

func (c *Config) decodeCI(d *decoder, n *yaml.Node) {
	ci := &CI{Line: deref(n).Line}
	keys, _ := d.object(n, "ci", "outputs", "dotenv")
	if v, ok := keys["outputs"]; ok {
		ci.Outputs, _ = d.strList(v, "ci.outputs")
	}
	if v, ok := keys["dotenv"]; ok {
		ci.Dotenv = c.resolve(d.filePath(v, "ci.dotenv"))
	}
	c.CI = ci
}

// ci checks that outputs names declared secrets, each once, and that the
// dotenv file is not also a rendered file.
func (v *validator) ci() {
	ci := v.c.CI
	if ci == nil {
		return
	}
	seen := map[string]bool{}
	for i, name := range ci.Outputs {
		path := index("ci.outputs", i)
		v.needSecret(path, ci.Line, name)
		if seen[name] {
			v.add(path, ci.Line, "secret %q listed twice", name)
		}
		seen[name] = true
	}
	if ci.Dotenv == "" {
		return
	}
	clean := filepath.Clean(ci.Dotenv)
	for i, f := range v.c.Files {
		if f.Path != "" && filepath.Clean(f.Path) == clean {
			v.add("ci.dotenv", ci.Line, "%s is also written by %s", clean, index("files", i))
		}
	}
}
