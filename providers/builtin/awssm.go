//go:build !no_awssm

package builtin

// The awssm provider; -tags no_awssm leaves it (and its SDK) out of the binary.
import _ "github.com/keyward/keyward/providers/aws"
