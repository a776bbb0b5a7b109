package gcp

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/keyward/keyward/providers"
)

// TestWorkloadMessageClipped: a status message holding the workload
// identity prefix, which an endpoint chosen in a SecretProviderClass can
// send, is clipped like any other server message, in the error and in the
// retry log's text.
func TestWorkloadMessageClipped(t *testing.T) {
	long := "workload identity: " + strings.Repeat("x", 16<<10)
	for _, code := range []codes.Code{codes.PermissionDenied, codes.Unavailable} {
		err := status.Error(code, "upstream said: "+long)
		got := callError(context.Background(), "access", "projects/p/secrets/s", err, &providers.Attempts{}).Error()
		if len(got) > 2*providers.MaxServerMessage {
			t.Errorf("%v: error of %d bytes, want the message clipped to %d", code, len(got), providers.MaxServerMessage)
		}
		if text := statusText(err); len(text) > 2*providers.MaxServerMessage {
			t.Errorf("%v: status text of %d bytes, want the message clipped", code, len(text))
		}
	}
}
