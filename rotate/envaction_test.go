package rotate

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/render"
)

// TestEnvChangeActions: a change of a secret of the child's environment
// is never signalled (a signal cannot change a running process's
// environment: it is logged as reaching the child at its next restart),
// restarts the child with restart (the default), and no action runs for
// it while a file using the secret fails to render; once the file renders,
// its own action and the env action run once.
func TestEnvChangeActions(t *testing.T) {
	t.Parallel()
	restart := &Action{Kind: ActionRestart}
	cases := []struct {
		name     string
		top      *Action
		file     bool // X is also in x.json, which fails to render at first
		signals  int  // once everything rendered
		restarts int
	}{
		{"signal, env only", hup, false, 0, 0},
		{"signal, file fails then renders", hup, true, 1, 0},
		{"restart, env only", restart, false, 0, 1},
		{"restart, file fails then renders", restart, true, 0, 1},
		{"default, file fails then renders", nil, true, 0, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				st := newStore()
				st.set("x", "sv-1")
				var files []File
				if c.file {
					files = []File{{File: render.File{Path: "x.json", Format: render.FormatJSON, Secrets: []string{"X"}}}}
				}
				r := newRig(t, st, watcherProvider{plainProvider{st}}, map[string]providers.Ref{"X": ref("x", "")}, files,
					func(o *Options) { o.OnChange, o.EnvSecrets, o.Interval = c.top, []string{"X"}, time.Hour })
				r.start()
				synctest.Wait()
				if c.file {
					// A value JSON cannot hold: the render fails and is
					// retried; nothing may act on the change meanwhile.
					st.set("x", "sv-\xff")
					st.trigger("x")
					time.Sleep(3 * time.Second)
					synctest.Wait()
					if r.metric("keyward_renders_total", "result", "error") < 2 {
						t.Fatal("the failing render was not retried")
					}
					if s, rs := r.child.counts(); s != 0 || rs != 0 {
						t.Fatalf("while the file fails: %d signals, %d restarts, want none", s, rs)
					}
				}
				st.set("x", "sv-2")
				st.trigger("x")
				time.Sleep(time.Second)
				synctest.Wait()
				if s, rs := r.child.counts(); s != c.signals || rs != c.restarts {
					t.Fatalf("%d signals, %d restarts, want %d and %d", s, rs, c.signals, c.restarts)
				}
				logged := r.logs.count("reach the child at its next restart")
				if want := c.top == hup; (logged > 0) != want {
					t.Fatalf("next-restart notice logged %d times, want it: %v\n%s", logged, want, r.logs)
				}
			})
		})
	}
}
