//go:build !no_gcpsm

package main

// The gcpsm provider. Build with -tags no_gcpsm to leave it (and its SDK) out of
// the binary: a smaller file that starts faster, for images that never
// use it. References to it then fail with "provider gcpsm is not available in
// this build".
import _ "github.com/keyward/keyward/providers/gcp"
