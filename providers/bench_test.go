package providers

import (
	"context"
	"fmt"
	"testing"
)

func BenchmarkParse(b *testing.B) {
	refs := []string{
		"vault://secret/payments/db?version=3#password",
		"arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/stripe-AbCdEf:api_key:AWSPREVIOUS",
		"file:dev.yaml#partner.client_id",
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := Parse(refs[i%len(refs)]); err != nil {
			b.Fatal(err)
		}
	}
}

// benchStore is an in-memory provider serving one JSON object per path.
type benchStore struct{ data map[string]any }

func (s benchStore) Fetch(_ context.Context, ref Ref) (Secret, error) {
	return Secret{Data: s.data, Version: "1"}, nil
}
func (benchStore) Close() error { return nil }

// BenchmarkResolve measures resolving 50 references: 50 fields of one
// secret (deduplicated to one fetch) and 50 distinct secrets.
func BenchmarkResolve(b *testing.B) {
	Register(Kind{Name: "benchkind", New: func(Instance) (Provider, error) {
		data := map[string]any{}
		for i := range 50 {
			data[fmt.Sprintf("k%d", i)] = fmt.Sprintf("value-%d", i)
		}
		return benchStore{data: data}, nil
	}})
	set := NewSet(Instance{}, []Instance{{Name: "bench", Kind: "benchkind"}})
	defer set.Close()
	for _, shape := range []string{"fields-of-one", "distinct"} {
		refs := map[string]Ref{}
		for i := range 50 {
			path := "one"
			if shape == "distinct" {
				path = fmt.Sprintf("s%d", i)
			}
			refs[fmt.Sprintf("N%d", i)] = Ref{Scheme: "bench", Path: path, Field: fmt.Sprintf("k%d", i)}
		}
		b.Run(shape, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := set.Resolve(context.Background(), refs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
