package providers

// The Set's calls of the optional capabilities that are not reads: Write
// and Credential (Fetch, ProbeVersion and Renew are in fetch.go).

import (
	"context"
	"errors"
	"fmt"
)

// OpWrite is the operation a Call names for Set.Write.
const OpWrite = "write"

// Write asks ref's instance to store value at ref unless the secret moved
// on from version from (see Writer), as Fetch does its call: in a slot of
// the instance's Concurrency, bounded by FetchTimeout. An instance that
// is no Writer gives an error wrapping errors.ErrUnsupported.
func (s *Set) Write(ctx context.Context, ref Ref, value []byte, from string) (string, error) {
	var v string
	err := s.with(ctx, ref.Scheme, OpWrite, func(ctx context.Context, p Provider) error {
		w, ok := p.(Writer)
		if !ok {
			return fmt.Errorf("provider %s cannot write: %w", ref.Scheme, errors.ErrUnsupported)
		}
		var err error
		v, err = w.Write(ctx, ref, value, from)
		return err
	})
	return v, err
}

// OpCredential is the operation a Call names for Set.Credential.
const OpCredential = "credential"

// Credential asks the instance named scheme for a credential (see
// CredentialSource), as Fetch does its call. An instance that is no
// CredentialSource gives an error wrapping errors.ErrUnsupported.
func (s *Set) Credential(ctx context.Context, scheme string, req CredentialRequest) (Secret, error) {
	var sec Secret
	err := s.with(ctx, scheme, OpCredential, func(ctx context.Context, p Provider) error {
		cs, ok := p.(CredentialSource)
		if !ok {
			return fmt.Errorf("provider %s hands out no credentials of its own: %w", scheme, errors.ErrUnsupported)
		}
		var err error
		sec, err = cs.Credential(ctx, req)
		return err
	})
	return sec, err
}
