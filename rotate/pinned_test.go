package rotate

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/keyward/keyward/providers"
)

// pinningProvider is a prober whose references with ?version= are pinned
// (as Vault's, AWS's version-id and GCP's version numbers are).
type pinningProvider struct{ proberProvider }

var _ providers.Pinner = pinningProvider{}

func (pinningProvider) Pinned(r providers.Ref) bool { return r.Params["version"] != "" }

// TestPinnedVersionNotProbed: a reference to a pinned version is fetched
// once and then neither probed nor polled, while an unpinned reference of
// the same provider is probed every interval.
func TestPinnedVersionNotProbed(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := newStore()
		st.set("a", "sv-a")
		st.set("b", "sv-b")
		pinned := ref("a", "")
		pinned.Params = map[string]string{"version": "1"}
		r := newRig(t, st, pinningProvider{proberProvider{plainProvider{st}}},
			map[string]providers.Ref{"A": pinned, "B": ref("b", "")},
			[]File{rawFile("a", "A", nil), rawFile("b", "B", nil)}, func(o *Options) { o.Interval = time.Minute })
		r.start()
		for range 60 {
			time.Sleep(time.Minute)
			synctest.Wait()
		}
		if p, f := st.count("probe a"), st.count("fetch a"); p != 0 || f != 1 {
			t.Errorf("pinned: %d probes and %d fetches in an hour, want 0 and 1", p, f)
		}
		if p := st.count("probe b"); p != 60 {
			t.Errorf("unpinned: %d probes in an hour, want 60", p)
		}
	})
}
