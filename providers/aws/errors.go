package aws

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials/processcreds"
	"github.com/aws/smithy-go"

	"github.com/keyward/keyward/providers"
)

// APIError is an error answer of AWS Secrets Manager about one secret. Its
// message names the operation, the secret and the AWS error code; it never
// holds a secret value (the provider only reads, so no request it sends
// carries one for the service to echo).
//
// It unwraps to the providers sentinel its code maps to, if any, and to
// the SDK's error, so errors.Is(err, providers.ErrNotFound) and
// errors.As(err, **types.ResourceNotFoundException) both work.
type APIError struct {
	// Op is the API operation: GetSecretValue, BatchGetSecretValue or DescribeSecret.
	Op string
	// Secret names the secret (its id as referenced, and version selectors).
	Secret string
	// Code is the AWS error code, such as ResourceNotFoundException.
	Code string
	// Message is the service's message, cleaned of control characters
	// and shortened.
	Message string
	// Attempts is how many attempts were made when retries ran out; 0
	// when the error was not retried.
	Attempts int

	sentinel error
	err      error
}

// Error reads "OP SECRET: CODE[ after N attempts][ (message)][: sentinel]".
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteString(" ")
	b.WriteString(e.Secret)
	b.WriteString(": ")
	b.WriteString(e.Code)
	if e.Attempts > 0 {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	if e.Message != "" {
		b.WriteString(" (")
		b.WriteString(e.Message)
		b.WriteString(")")
	}
	if e.sentinel != nil {
		b.WriteString(": ")
		b.WriteString(e.sentinel.Error())
	}
	return b.String()
}

// Unwrap returns the providers sentinel (if the code maps to one) and the
// SDK's error.
func (e *APIError) Unwrap() []error {
	var out []error
	if e.sentinel != nil {
		out = append(out, e.sentinel)
	}
	if e.err != nil {
		out = append(out, e.err)
	}
	return out
}

// Throttled reports whether the error is AWS throttling (retries ran out).
func (e *APIError) Throttled() bool {
	_, ok := retry.DefaultThrottleErrorCodes[e.Code]
	return ok
}

// sentinelOf maps an AWS error code to a providers sentinel, or nil.
func sentinelOf(code string) error {
	switch code {
	case "ResourceNotFoundException":
		return providers.ErrNotFound
	case "AccessDeniedException", "AccessDenied",
		// KMS refused to decrypt the secret with the caller's credentials.
		"DecryptionFailure",
		// The credentials themselves are refused.
		"UnrecognizedClientException", "InvalidClientTokenId", "ExpiredTokenException",
		"ExpiredToken", "InvalidSignatureException", "SignatureDoesNotMatch", "IncompleteSignature",
		// STS refused a pod's web identity token (keyward csi-provider).
		"InvalidIdentityToken", "IDPRejectedClaim":
		return providers.ErrPermissionDenied
	}
	return nil
}

// apiError describes err, returned by op for the secret what. Service
// errors become *APIError; others (network, credentials) are wrapped as
// they are. When ctx ended during the call, the error wraps ctx's error
// and says how the attempts before it failed (from att), rather than only
// "context deadline exceeded".
func apiError(ctx context.Context, op, what string, err error, att *providers.Attempts) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s %s: %w", op, what, att.Expired(cerr))
	}
	if ctxErr := contextError(err); ctxErr != nil {
		// Attempts that each ran out of time (AttemptTimeout) with the
		// call's own context still live: the SDK's message says so.
		return fmt.Errorf("%s %s: no answer: %w", op, what, err)
	}
	var pe *processcreds.ProviderError
	if errors.As(err, &pe) {
		// credential_process errors can quote the process's output, which
		// holds the access keys: say what failed, never what it printed.
		return fmt.Errorf("%s %s: getting AWS credentials from credential_process failed (its output is not shown): %w", op, what, providers.ErrPermissionDenied)
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return fmt.Errorf("%s %s: %w", op, what, err)
	}
	e := &APIError{
		Op:       op,
		Secret:   what,
		Code:     ae.ErrorCode(),
		Message:  providers.ClipMessage(ae.ErrorMessage()),
		sentinel: sentinelOf(ae.ErrorCode()),
		err:      err,
	}
	var me *retry.MaxAttemptsError
	if errors.As(err, &me) {
		e.Attempts = me.Attempt
	}
	return e
}

// apiError is the package's apiError of err with the credentials the
// client signs with (the secret access key, the session token it sends)
// hidden in the service's message: a server (or a proxy in front of it)
// may echo them. The SDK's error stays wrapped, for errors.As of its
// types and attempts, unless its message quoted one (see scrubService):
// no error the result wraps holds a credential.
func (p *Provider) apiError(ctx context.Context, op, what string, err error, att *providers.Attempts) error {
	out := apiError(ctx, op, what, err, att)
	var e *APIError
	var ae smithy.APIError
	if errors.As(out, &e) && errors.As(err, &ae) {
		scrub := p.sent.scrubber()
		e.Message = scrub.Clip(ae.ErrorMessage())
		e.err = scrubService(err, scrub)
	}
	return out
}

// sentCredentials is the client's credentials provider, recording the
// last credentials it gave, so that errors can be scrubbed of them.
type sentCredentials struct {
	awssdk.CredentialsProvider

	mu    sync.Mutex
	last  awssdk.Credentials
	scrub *providers.Scrubber // of last, built on first use
}

// Retrieve implements aws.CredentialsProvider.
func (s *sentCredentials) Retrieve(ctx context.Context) (awssdk.Credentials, error) {
	c, err := s.CredentialsProvider.Retrieve(ctx)
	if err == nil {
		s.mu.Lock()
		if c.SecretAccessKey != s.last.SecretAccessKey || c.SessionToken != s.last.SessionToken {
			s.scrub = nil
		}
		s.last = c
		s.mu.Unlock()
	}
	return c, err
}

// scrubber hides the last credentials retrieved; the zero Scrubber when
// s is nil or none were.
func (s *sentCredentials) scrubber() providers.Scrubber {
	if s == nil {
		return providers.Scrubber{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.scrub == nil {
		// Built once per credentials: a Scrubber of a session token costs
		// milliseconds, and every retried attempt's cause is scrubbed.
		sc := providers.NewScrubber(s.last.SecretAccessKey, s.last.SessionToken)
		s.scrub = &sc
	}
	return *s.scrub
}

// scrubService is err with the credentials of scrub (a token the call
// sent) hidden in the service message that may quote them, before
// apiError clips the message: an echo cut by the clip would escape a
// later scrub. The service error then stands alone, so that no error err
// wrapped still holds a credential.
func scrubService(err error, scrub providers.Scrubber) error {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return err
	}
	msg := scrub.Message(ae.ErrorMessage())
	if msg == ae.ErrorMessage() {
		return err
	}
	return &smithy.GenericAPIError{Code: ae.ErrorCode(), Message: msg, Fault: ae.ErrorFault()}
}

// causeOf describes the error of one failed attempt for a log line and
// for the error of a call that runs out of time: the AWS error code and
// message, or the transport error (connection refused, a TLS handshake,
// a timeout); never the output of a credential_process, and the service
// message with the credentials of scrub hidden.
func causeOf(err error, scrub providers.Scrubber) error {
	var pe *processcreds.ProviderError
	if errors.As(err, &pe) {
		return errors.New("getting AWS credentials from credential_process failed (its output is not shown)")
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if m := scrub.Clip(ae.ErrorMessage()); m != "" {
			return fmt.Errorf("%s (%s)", ae.ErrorCode(), m)
		}
		return errors.New(ae.ErrorCode())
	}
	return err
}

// entryError describes one failed entry of a BatchGetSecretValue answer.
func entryError(what string, code, message *string) error {
	c, m := "UnknownError", ""
	if code != nil && *code != "" {
		c = *code
	}
	if message != nil {
		m = *message
	}
	return &APIError{
		Op:       "BatchGetSecretValue",
		Secret:   what,
		Code:     c,
		Message:  providers.ClipMessage(m),
		sentinel: sentinelOf(c),
		err:      &smithy.GenericAPIError{Code: c, Message: m},
	}
}

// contextError returns the context error err carries, if any: the SDK
// wraps a cancelled or expired context in its own error types.
func contextError(err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return context.DeadlineExceeded
	}
	return nil
}

// isCode reports whether err is an AWS error with one of codes.
func isCode(err error, codes ...string) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	for _, c := range codes {
		if ae.ErrorCode() == c {
			return true
		}
	}
	return false
}
