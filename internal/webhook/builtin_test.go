package webhook

// The provider kinds, as the keyward binary (which serves this webhook)
// links them: configs in the tests are checked against them.
import _ "github.com/keyward/keyward/providers/builtin"
