package config

// Warnings returns what c allows but an operator should know about, each
// with its line, in line order: a file whose mode lets the members of its
// group, or every user, read the secrets in it. Like Problems, messages
// name keys and paths, never a value. The CLI logs them when it loads a
// config.
func (c *Config) Warnings() []Problem {
	var w problems
	for i, f := range c.Files {
		path := join(index("files", i), "mode")
		line := c.lineOf(path, f.Line)
		switch perm := f.Mode.Perm(); {
		case perm&0o004 != 0:
			w.add(line, path, "mode %s lets every user of the machine read %s", modeString(f.Mode), f.Path)
		case perm&0o040 != 0:
			w.add(line, path, "mode %s lets the members of the file's group read %s", modeString(f.Mode), f.Path)
		}
	}
	if e, ok := w.err(c.Path).(*Error); ok {
		return e.Problems
	}
	return nil
}
