//go:build no_vault

package builtin

import "github.com/keyward/keyward/providers"

func init() { providers.RegisterNotInBuild("vault", "no_vault") }
