//go:build integration

package render

import "testing"

// Under the integration tag (make test), the node dialect's reader is
// installed when missing, and its absence is a failure.
func init() { installNodeDotenv = true }

func TestDotenvNode(t *testing.T) {
	t.Parallel()
	checkDialect(t, DialectNode, nodeReader(t))
}
