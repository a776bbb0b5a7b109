//go:build integration

package aws

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyward/keyward/providers"
)

// TestWriteMoto writes a field of a JSON secret against moto: the new
// version becomes AWSCURRENT and AWSPREVIOUS the version read, the other
// keys are kept; a write from a version that is no longer AWSCURRENT is a
// conflict that leaves AWSCURRENT alone; a retried write is idempotent; of
// two concurrent writers from one version exactly one wins.
//
// moto 5.2.1 answers a GetSecretValue without VersionStage with the
// version last put as AWSCURRENT, not with the one UpdateSecretVersionStage
// made AWSCURRENT (AWS answers with the AWSCURRENT label's): the test reads
// ?version-stage=AWSCURRENT, which both answer alike.
func TestWriteMoto(t *testing.T) {
	t.Parallel()
	c := admin(t, "")
	name := uniq(t, "rt")
	first := createSecret(t, c, name, []byte(`{"refresh_token":"rt-secret-0","client_id":"app"}`), true)
	p := newProvider(t, moto.Endpoint)
	r := providers.Ref{Scheme: KindName, Path: name, Field: "refresh_token", Params: map[string]string{ParamVersionStage: "AWSCURRENT"}}

	v1, err := p.Write(t.Context(), r, []byte("rt-secret-1"), first.VersionID)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := p.Fetch(t.Context(), r.Whole())
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := cur.Field("refresh_token")
	id, _ := cur.Field("client_id")
	if rt.Reveal() != "rt-secret-1" || id.Reveal() != "app" || cur.Version != v1 {
		t.Fatalf("after the write: version %s (Write said %s), client_id kept: %v", cur.Version, v1, id.Reveal() == "app")
	}
	desc, err := c.DescribeSecret(t.Context(), &secretsmanager.DescribeSecretInput{SecretId: awssdk.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(desc.VersionIdsToStages[first.VersionID]); got != "[AWSPREVIOUS]" {
		t.Errorf("the version read has stages %s, want [AWSPREVIOUS]", got)
	}
	if got := fmt.Sprint(desc.VersionIdsToStages[v1]); got != "[AWSCURRENT]" {
		t.Errorf("the new version has stages %s, want [AWSCURRENT] (the pending label removed)", got)
	}

	if v, err := p.Write(t.Context(), r, []byte("rt-secret-1"), first.VersionID); err != nil || v != v1 {
		t.Fatalf("retried write: %q %v, want %q", v, err, v1)
	}
	if _, err := p.Write(t.Context(), r, []byte("rt-secret-x"), first.VersionID); !errors.Is(err, providers.ErrConflict) {
		t.Fatalf("stale version: %v, want a conflict", err)
	}
	if cur, _ := p.Fetch(t.Context(), r.Whole()); cur.Version != v1 {
		t.Fatal("a refused write moved AWSCURRENT")
	}

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { _, errs[i] = p.Write(t.Context(), r, fmt.Appendf(nil, "rt-secret-w%d", i), v1) })
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) || !errors.Is(errors.Join(errs...), providers.ErrConflict) {
		t.Fatalf("concurrent writers: %v, %v; want one success and one conflict", errs[0], errs[1])
	}

	// A plain string secret is written whole.
	plain := uniq(t, "plain")
	pv := createSecret(t, c, plain, []byte("rt-plain-0"), true)
	if _, err := p.Write(t.Context(), ref(plain), []byte("rt-plain-1"), pv.VersionID); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.Fetch(t.Context(), ref(plain, ParamVersionStage, "AWSCURRENT")); got.Value.Reveal() != "rt-plain-1" {
		t.Fatal("a plain secret was not replaced")
	}
	if _, err := p.Write(t.Context(), ref(plain, ParamVersionStage, "AWSPREVIOUS"), []byte("x"), pv.VersionID); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("a staged reference: %v", err)
	}
}
