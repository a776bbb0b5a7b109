//go:build !no_vault

package main

// The vault provider. Build with -tags no_vault to leave it (and its SDK) out of
// the binary: a smaller file that starts faster, for images that never
// use it. References to it then fail with "provider vault is not available in
// this build".
import _ "github.com/keyward/keyward/providers/vault"
