package config

import "maps"

// EnvVars returns the variables the config hands to a child process
// (keyward exec, keyward agent -- COMMAND) and to a CI job (keyward ci), as
// VARIABLE -> secret name. A config with an env: section hands over exactly
// its entries (env: {} hands over none). A config without one hands over
// every secret under its own name, as chamber exec and op run do, unless
// it writes files: then the files are how the workload gets its secrets,
// and a rotation rewrites them without touching the child's environment
// (which only a restart could change). A nil config hands over nothing.
// The map is the caller's to keep.
func (c *Config) EnvVars() map[string]string {
	if c == nil {
		return nil
	}
	if c.Env != nil {
		return maps.Clone(c.Env)
	}
	if len(c.Files) > 0 {
		return map[string]string{}
	}
	out := make(map[string]string, len(c.Secrets))
	for name := range c.Secrets {
		out[name] = name
	}
	return out
}

// EnvVarLine returns the config line that hands the variable name to the
// child (its env: entry, or its secret when there is no env: section and
// no files:); 0 when the config does not hand it over.
func (c *Config) EnvVarLine(name string) int {
	if c == nil || (c.Env == nil && len(c.Files) > 0) {
		return 0
	}
	if c.Env != nil {
		if _, ok := c.Env[name]; !ok {
			return 0
		}
		return c.lines[join("env", name)]
	}
	return c.Secrets[name].Line
}
