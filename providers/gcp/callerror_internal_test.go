package gcp

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/providertest"
)

// TestWorkloadMessageClipped: a status message holding the workload
// identity prefix, which an endpoint chosen in a SecretProviderClass can
// send, is clipped like any other server message, in the error and in the
// retry log's text.
func TestWorkloadMessageClipped(t *testing.T) {
	long := "workload identity: " + strings.Repeat("x", 16<<10)
	for _, code := range []codes.Code{codes.PermissionDenied, codes.Unavailable} {
		err := status.Error(code, "upstream said: "+long)
		got := callError(context.Background(), "access", "projects/p/secrets/s", err, &providers.Attempts{}, providers.Scrubber{}).Error()
		if len(got) > 2*providers.MaxServerMessage {
			t.Errorf("%v: error of %d bytes, want the message clipped to %d", code, len(got), providers.MaxServerMessage)
		}
		if text := statusText(err, providers.Scrubber{}); len(text) > 2*providers.MaxServerMessage {
			t.Errorf("%v: status text of %d bytes, want the message clipped", code, len(text))
		}
	}
}

// TestCallErrorScrubsToken: a status whose message echoes the access token
// the client sent (raw, base64'd, percent-encoded or cut short) leaves it
// in no form in the error of the call or in the retry log's text, for
// every code whose message an error quotes.
func TestCallErrorScrubsToken(t *testing.T) {
	token := providertest.Credential(t)
	scrub := providers.NewScrubber(token)
	for form, echo := range providertest.Echoes(token) {
		for _, c := range []struct {
			code codes.Code
			msg  string
		}{
			{codes.PermissionDenied, "workload identity: caller " + echo + " refused"},
			{codes.Unavailable, "upstream " + echo + " down"},
			{codes.FailedPrecondition, "version DISABLED for " + echo},
			{codes.InvalidArgument, "bad request from " + echo},
			{codes.Internal, "token " + echo + " broke it"},
		} {
			err := status.Error(c.code, c.msg)
			got := callError(context.Background(), "access", "projects/p/secrets/s", err, &providers.Attempts{}, scrub).Error()
			providertest.AssertRedacted(t, got, []byte(token))
			providertest.AssertRedacted(t, statusText(err, scrub), []byte(token))
			if c.code != codes.PermissionDenied && !strings.Contains(got, c.code.String()) {
				t.Errorf("%v, echo %s: the error does not name the code", c.code, form)
			}
		}
	}
}
