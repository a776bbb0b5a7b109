//go:build !no_k8s

package builtin

// The k8s provider; -tags no_k8s leaves it (and its SDK) out of the binary.
import _ "github.com/keyward/keyward/providers/kubernetes"
