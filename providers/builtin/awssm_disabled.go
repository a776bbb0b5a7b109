//go:build no_awssm

package builtin

import "github.com/keyward/keyward/providers"

func init() { providers.RegisterNotInBuild("awssm", "no_awssm") }
