//go:build !no_awssm

package main

// The awssm provider. Build with -tags no_awssm to leave it (and its SDK) out of
// the binary: a smaller file that starts faster, for images that never
// use it. References to it then fail with "provider awssm is not available in
// this build".
import _ "github.com/keyward/keyward/providers/aws"
