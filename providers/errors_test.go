package providers

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestRedact: an error quoting a token is rewritten without it, and still
// reports the sentinels it wrapped.
func TestRedact(t *testing.T) {
	const tok = "eyJhbGciOi.secret-part.sig"
	err := Redact(fmt.Errorf("STS said %s is bad: %w", tok, ErrPermissionDenied), tok)
	if strings.Contains(err.Error(), tok) {
		t.Fatal("leaked value of the token in the error")
	}
	if !errors.Is(err, ErrPermissionDenied) || errors.Is(err, ErrNotFound) {
		t.Fatalf("%v: sentinels not kept as they were", err)
	}
	plain := errors.New("other")
	if Redact(plain, tok) != plain {
		t.Fatal("an error without the token was rewritten")
	}
}
