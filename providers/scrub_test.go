package providers_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/providertest"
)

// TestScrubberMessage: every form of echo of a credential is hidden, the
// rest of the message is kept, and a credential too short to recognise
// withholds the whole message.
func TestScrubberMessage(t *testing.T) {
	cred := providertest.Credential(t)
	s := providers.NewScrubber("", cred)
	for form, echo := range providertest.Echoes(cred) {
		got := s.Message("server says: " + echo + " is bad")
		providertest.AssertRedacted(t, got, []byte(cred))
		if !strings.HasPrefix(got, "server says: ") {
			t.Errorf("echo %s: the message around it was not kept", form)
		}
	}
	// Cut short at the very end of the message (fewer bytes than a fragment
	// would need once encoded).
	for _, end := range []string{cred[:7], base64.StdEncoding.EncodeToString([]byte(cred))[:7], url.QueryEscape(cred)[:7]} {
		if got := s.Message("ends with " + end); strings.HasSuffix(got, end) {
			t.Errorf("a message ending with the start of an echo kept it")
		}
	}
	if got := s.Message("nothing to hide"); got != "nothing to hide" {
		t.Errorf("a clean message was changed")
	}
	if got := providers.NewScrubber("abc").Message("abc is wrong"); got != providers.Withheld {
		t.Errorf("a credential shorter than the mask's minimum did not withhold the message")
	}
	if got := providers.NewScrubber(strings.Repeat("x", providers.MaxScrubbed+1)).Message("too long"); got != providers.Withheld {
		t.Errorf("a credential longer than MaxScrubbed did not withhold the message")
	}
	if got := (providers.Scrubber{}).Message("kept"); got != "kept" {
		t.Errorf("the zero Scrubber changed a message")
	}
}

// TestScrubberError: an error quoting a credential is rewritten without
// it and still reports the sentinels it wrapped; one that does not is
// returned as it is.
func TestScrubberError(t *testing.T) {
	cred := providertest.Credential(t)
	s := providers.NewScrubber(cred)
	err := s.Error(fmt.Errorf("STS said %s is bad: %w: %w", base64.StdEncoding.EncodeToString([]byte(cred)), providers.ErrPermissionDenied, context.Canceled))
	providertest.AssertErrorRedacted(t, err, []byte(cred))
	if !errors.Is(err, providers.ErrPermissionDenied) || !errors.Is(err, context.Canceled) || errors.Is(err, providers.ErrNotFound) {
		t.Fatalf("%v: sentinels not kept as they were", err)
	}
	plain := errors.New("other")
	if s.Error(plain) != plain {
		t.Fatal("an error without the credential was rewritten")
	}
}

// BenchmarkNewScrubber: the cost of a Scrubber of a credential of a
// pod token's size (1 KiB) and of the largest it recognises
// (MaxScrubbed), and of scrubbing one message with it.
func BenchmarkNewScrubber(b *testing.B) {
	for _, n := range []int{1 << 10, providers.MaxScrubbed} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			var cred strings.Builder
			for cred.Len() < n {
				cred.WriteString(providertest.Credential(b))
			}
			c := cred.String()[:n]
			for b.Loop() {
				_ = providers.NewScrubber(c).Message("login refused: " + c[:100])
			}
		})
	}
}
