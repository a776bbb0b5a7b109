package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/keyward/keyward/providers"
)

// responseError returns Vault's error answer inside err, or nil.
func responseError(err error) *api.ResponseError {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re
	}
	return nil
}

// statusOf returns the HTTP status of Vault's error answer in err, or 0.
func statusOf(err error) int {
	if re := responseError(err); re != nil {
		return re.StatusCode
	}
	return 0
}

var (
	multiErrorHead = regexp.MustCompile(`^\d+ errors? occurred:\s*`)
	space          = regexp.MustCompile(`\s+`)
)

// vaultMessage is Vault's error text on one line: "permission denied"
// rather than "1 error occurred:\n\t* permission denied\n\n". A body that
// was not Vault's JSON (a proxy's page) is cut short.
func vaultMessage(re *api.ResponseError) string {
	if re == nil {
		return ""
	}
	parts := make([]string, 0, len(re.Errors))
	for _, e := range re.Errors {
		e = multiErrorHead.ReplaceAllString(strings.TrimSpace(e), "")
		e = strings.ReplaceAll(e, "\n\t* ", "; ")
		e = strings.TrimPrefix(e, "* ")
		e = strings.TrimSpace(space.ReplaceAllString(e, " "))
		if e != "" {
			parts = append(parts, e)
		}
	}
	msg := strings.Join(parts, "; ")
	if msg == "" {
		msg = strings.ToLower(http.StatusText(re.StatusCode))
	}
	return msg
}

// scrubbed removes keyward's current token from a message of Vault's
// (Vault does not echo it, but a proxy in front of it might), in every
// form providers.Scrubber knows; not clipped.
func (p *Provider) scrubbed(msg string) string {
	p.mu.Lock()
	tok := p.tok.value
	p.mu.Unlock()
	return providers.NewScrubber(tok).Message(msg)
}

// notFoundText matches Vault's 400 answers that mean "no such role".
var notFoundText = regexp.MustCompile(`(?i)unknown role|role .*(not found|does not exist)|no role found|not found`)

// apiError turns the error of a Vault call into keyward's: op and path say
// what was done ("read secret/data/app"), Vault's message follows, then a
// hint. It wraps ctx's error after cancellation, ErrPermissionDenied for
// 403 (naming the token's source and the capability its policies need),
// ErrNotFound for 404 and for 400 answers about unknown roles. The hint is
// added to not-found and invalid-request errors. Transport
// errors are wrapped as they are (they were already retried).
func (p *Provider) apiError(ctx context.Context, op, path string, err error, hint string) error {
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(err, cerr) {
			// call's error: ctx's, with how the attempts failed.
			return fmt.Errorf("vault %s %s: %w", op, path, err)
		}
		return fmt.Errorf("vault %s %s: %w", op, path, cerr)
	}
	var tr *tokenRejected
	if errors.As(err, &tr) {
		return fmt.Errorf("vault %s %s: vault does not accept keyward's token (from %s): it was revoked, has expired, or belongs to another Vault: %w",
			op, path, tr.source, providers.ErrPermissionDenied)
	}
	re := responseError(err)
	if re == nil {
		return fmt.Errorf("vault %s %s: %w", op, path, err)
	}
	msg := providers.ClipMessage(p.scrubbed(vaultMessage(re)))
	switch re.StatusCode {
	case http.StatusForbidden:
		capability := "read"
		if op == "write" || strings.HasPrefix(op, "renew") {
			capability = "update"
		}
		detail := ""
		if msg != "permission denied" {
			detail = " (" + msg + ")"
		}
		return fmt.Errorf("vault %s %s: permission denied%s: the policies of the token from %s must grant %q on %q: %w",
			op, path, detail, p.tokenSource(), capability, path, providers.ErrPermissionDenied)
	case http.StatusNotFound:
		return fmt.Errorf("vault %s %s: not found%s: %w", op, path, hint, providers.ErrNotFound)
	case http.StatusBadRequest:
		if notFoundText.MatchString(msg) {
			return fmt.Errorf("vault %s %s: %s%s: %w", op, path, msg, hint, providers.ErrNotFound)
		}
		return fmt.Errorf("vault %s %s: invalid request (%s)%s", op, path, msg, hint)
	case http.StatusServiceUnavailable:
		return fmt.Errorf("vault %s %s: vault is unavailable or sealed (503 %s)", op, path, msg)
	case http.StatusTooManyRequests:
		return fmt.Errorf("vault %s %s: rate limited by vault (429 %s)", op, path, msg)
	}
	return fmt.Errorf("vault %s %s: %d %s%s", op, path, re.StatusCode, msg, hint)
}
