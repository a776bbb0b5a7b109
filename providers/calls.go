package providers

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
