// Package render turns resolved secrets into what a workload consumes: files
// in the raw, dotenv, JSON, YAML or text/template formats, written atomically
// with strict permissions (optionally swapped together with the kubelet's
// ..data symlink layout), and the environment of a child process.
//
// Rendering is all-or-nothing and synchronous: every file's content is built
// and every target checked before the first byte is written, and no function
// in this package starts a goroutine. Writes go through a descriptor of each
// target's directory opened without following a symlink, and the first write
// of a process into a directory removes the leftovers of interrupted writes
// there (dir.go, sweep.go). No error produced here ever carries a
// secret value; errors name paths, formats, secret names and template lines.
package render
