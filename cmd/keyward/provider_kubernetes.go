//go:build !no_k8s

package main

// The k8s provider. Build with -tags no_k8s to leave it (and its SDK) out of
// the binary: a smaller file that starts faster, for images that never
// use it. References to it then fail with "provider k8s is not available in
// this build".
import _ "github.com/keyward/keyward/providers/kubernetes"
