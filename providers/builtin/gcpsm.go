//go:build !no_gcpsm

package builtin

// The gcpsm provider; -tags no_gcpsm leaves it (and its SDK) out of the binary.
import _ "github.com/keyward/keyward/providers/gcp"
