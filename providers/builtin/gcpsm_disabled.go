//go:build no_gcpsm

package builtin

import "github.com/keyward/keyward/providers"

func init() { providers.RegisterNotInBuild("gcpsm", "no_gcpsm") }
