//go:build !no_vault

package builtin

// The vault provider; -tags no_vault leaves it (and its SDK) out of the binary.
import _ "github.com/keyward/keyward/providers/vault"
