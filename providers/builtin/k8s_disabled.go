//go:build no_k8s

package builtin

import "github.com/keyward/keyward/providers"

func init() { providers.RegisterNotInBuild("k8s", "no_k8s") }
