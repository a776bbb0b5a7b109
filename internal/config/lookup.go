package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// LookupSecret returns the secret declared under secrets: as name. When
// there is none, the error names the config file and suggests the closest
// declared name, if one is close enough to be a likely typo.
func (c *Config) LookupSecret(name string) (Secret, error) {
	if s, ok := c.Secrets[name]; ok {
		return s, nil
	}
	msg := fmt.Sprintf("no secret %q under secrets: in %s", name, c.Path)
	lower := make([]string, 0, len(c.Secrets))
	byLower := map[string]string{}
	for n := range c.Secrets {
		lower = append(lower, strings.ToLower(n))
		byLower[strings.ToLower(n)] = n
	}
	sort.Strings(lower)
	if s := suggest(name, lower); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", byLower[s])
	}
	return Secret{}, errors.New(msg)
}
