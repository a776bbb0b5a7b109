package rotate

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keyward/keyward/providers"
)

// defaultedProvider reads "dflt/PATH" and "PATH" alike, the way gcpsm://S
// and gcpsm://P/S are one secret for an instance whose project is P, and
// says so through Canonical. Every read of "cfg" rotates it: the next read
// sees a new version, so two reads of it would disagree.
type defaultedProvider struct{ plainProvider }

var _ providers.Canonicalizer = defaultedProvider{}

func (p defaultedProvider) Canonical(r providers.Ref) (providers.Ref, error) {
	r.Path = strings.TrimPrefix(r.Path, "dflt/")
	return r, nil
}

func (p defaultedProvider) Fetch(ctx context.Context, r providers.Ref) (providers.Secret, error) {
	r.Path = strings.TrimPrefix(r.Path, "dflt/")
	sec, err := p.plainProvider.Fetch(ctx, r)
	if err == nil && r.Path == "cfg" {
		n := p.s.count("fetch cfg") + 1
		p.s.set("cfg", fmt.Sprintf(`{"user":"sv-u%d","pass":"sv-p%d"}`, n, n))
	}
	return sec, err
}

// TestSpellingsOneVersion: two names spell one secret two ways; the
// engine reads it once per look, so the file never pairs the user of one
// version with the password of another, at the first render or after a
// rotation.
func TestSpellingsOneVersion(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := newStore()
		st.set("cfg", `{"user":"sv-u1","pass":"sv-p1"}`)
		r := newRig(t, st, defaultedProvider{plainProvider{st}},
			map[string]providers.Ref{"USER": ref("cfg", "user"), "PASS": ref("dflt/cfg", "pass")},
			[]File{dotenvFile("app.env", nil, "USER", "PASS")}, func(o *Options) { o.Interval = time.Minute })
		r.start()
		if got := r.read("app.env"); got != "PASS=sv-p1\nUSER=sv-u1\n" {
			t.Fatalf("first render: app.env pairs fields of two versions or lost one: %d fetches", st.count("fetch cfg"))
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := r.read("app.env"); got != "PASS=sv-p2\nUSER=sv-u2\n" {
			t.Fatalf("after a rotation: app.env pairs fields of two versions or missed it: %d fetches", st.count("fetch cfg"))
		}
		if n := st.count("fetch cfg"); n != 2 {
			t.Errorf("%d reads of one secret for two looks, want 2", n)
		}
	})
}

// TestTokenCredentialsOneRead: a client_id and client_secret that are two
// fields of one secret are one read per exchange, so they come from one
// version of it.
func TestTokenCredentialsOneRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newTokenRig(t, &fakeAS{expires: 60}, nil)
		if err := r.tk.Init(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := r.store.count("fetch client"); n != 1 {
			t.Errorf("%d reads of the client secret for one exchange, want 1", n)
		}
	})
}
