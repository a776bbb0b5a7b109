// Package builtin links keyward's provider kinds into a binary: importing
// it registers each kind, or, for a kind that a build tag leaves out
// (no_vault, no_awssm, no_gcpsm, no_k8s), a registration saying that it is
// not in this build, so that its references fail with that message rather
// than as an unknown scheme. The file kind is always in.
//
// Each kind has two files here: KIND.go, which imports its package unless
// the tag is set, and KIND_disabled.go, which the tag selects.
package builtin

import _ "github.com/keyward/keyward/providers/file"
