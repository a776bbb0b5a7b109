package rotate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/backoff"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/render"
)

// applier applies changes: it renders the files that the changed names
// affect and runs the on_change actions, on its own goroutine (loop), one
// apply at a time. The engine's loop hands it the names that changed
// (hand). Its lock guards only the names handed and not yet taken; the
// rest is the loop's.
type applier struct {
	opts     *Options // Files, OnChange, Child, RunCommand, BeforeApply, Metrics
	log      *slog.Logger
	rand     func() float64
	values   func() map[string]providers.Resolved // the current values
	fileDeps []map[string]bool                    // per file: the names it uses; nil: all
	env      map[string]bool                      // the names of the child's environment

	mu      sync.Mutex      // guards pending
	pending map[string]bool // names handed, not yet applied
	wake    chan struct{}   // size 1: something was handed

	failed map[int]bool // files whose last render failed; loop-owned
	// envDue holds the env secrets that changed and whose env action has
	// not run: it waits while a file using one of them fails to render.
	// Loop-owned.
	envDue map[string]bool
}

// newApplier returns the applier of the engine's options: it reads the
// template files into opts.Files (see render.File.LoadTemplate), learns
// which names each file uses and checks that the secrets it is told of
// exist.
func newApplier(opts *Options, log *slog.Logger, rand func() float64, values func() map[string]providers.Resolved) (*applier, error) {
	a := &applier{
		opts: opts, log: log, rand: rand, values: values, env: map[string]bool{},
		pending: map[string]bool{}, wake: make(chan struct{}, 1), failed: map[int]bool{},
		envDue: map[string]bool{},
	}
	for _, n := range opts.EnvSecrets {
		if _, ok := opts.Secrets[n]; !ok {
			return nil, fmt.Errorf("rotate: env secret %q is not among the secrets", n)
		}
		a.env[n] = true
	}
	// Template files are read here, once: the names each file uses and
	// every later render of it come from the same text.
	opts.Files = slices.Clone(opts.Files)
	for i, f := range opts.Files {
		var err error
		if opts.Files[i].File, err = f.LoadTemplate(); err != nil {
			return nil, fmt.Errorf("rotate: file %s: %w", f.Path, err)
		}
		f = opts.Files[i]
		deps, err := fileDeps(f.File)
		if err != nil {
			return nil, fmt.Errorf("rotate: file %s: %w", f.Path, err)
		}
		for n := range deps {
			if _, ok := opts.Secrets[n]; !ok {
				return nil, fmt.Errorf("rotate: file %s uses secret %q, which is not among the secrets", f.Path, n)
			}
		}
		a.fileDeps = append(a.fileDeps, deps)
	}
	return a, nil
}

// hand adds names to the next apply and wakes the applier. It is safe for
// concurrent use and does not block.
func (a *applier) hand(names map[string]bool) {
	a.mu.Lock()
	for n := range names {
		a.pending[n] = true
	}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// loop renders and acts on the changes handed off by the engine's loop,
// one apply at a time; changes arriving meanwhile are coalesced into the
// next. A render that failed is retried with backoff. It returns when ctx
// is done.
func (a *applier) loop(ctx context.Context) {
	bo := backoff.Backoff{Base: retryBase, Max: retryMax, Rand: a.rand}
	var retry *time.Timer
	var retryC <-chan time.Time
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		case <-retryC:
			retryC = nil
		}
		a.mu.Lock()
		names := sortedKeys(a.pending)
		clear(a.pending)
		a.mu.Unlock()
		if len(names) == 0 && len(a.failed) == 0 {
			continue
		}
		a.apply(ctx, names)
		if len(a.failed) == 0 {
			bo.Reset()
			continue
		}
		d := bo.Next()
		if retry == nil {
			retry = time.NewTimer(d)
		} else {
			retry.Reset(d)
		}
		retryC = retry.C
	}
}

// apply re-renders the files that use a changed name (and those whose
// last render failed) and runs the on_change actions of the files that
// were rewritten and, when an env secret changed and every file using it
// rendered, of the environment.
func (a *applier) apply(ctx context.Context, changed []string) {
	if a.opts.BeforeApply != nil && len(changed) > 0 {
		a.opts.BeforeApply(a.values())
	}
	set := map[string]bool{}
	for _, n := range changed {
		set[n] = true
	}
	var subset []render.File
	var idx []int
	for i, f := range a.opts.Files {
		if a.failed[i] || a.affects(i, set) {
			subset = append(subset, f.File)
			idx = append(idx, i)
		}
	}
	var rewritten []int
	if len(subset) > 0 {
		res, err := render.Render(subset, a.values())
		a.opts.Metrics.render(err, len(res.Changed))
		done := map[string]bool{}
		for _, p := range res.Changed {
			done[p] = true
		}
		for k, f := range subset {
			if done[f.Path] {
				rewritten = append(rewritten, idx[k])
			}
			if err != nil && !done[f.Path] {
				a.failed[idx[k]] = true
			} else {
				delete(a.failed, idx[k])
			}
		}
		if err != nil {
			a.log.Error("render after rotation failed; the previous files stay in place and the render is retried", "err", err)
		} else {
			a.log.Info("rendered after rotation", "secrets", changed, "files", len(subset), "rewritten", len(res.Changed))
		}
	}
	var p plan
	for _, i := range rewritten {
		p.add(a.fileAction(i))
	}
	for _, n := range changed {
		if a.env[n] {
			a.envDue[n] = true
		}
	}
	if len(a.envDue) > 0 && !a.failing(a.envDue) {
		if act := a.envAction(); act.Kind == ActionSignal {
			// A signal cannot change a running process's environment:
			// the child would reload and find nothing new.
			a.log.Info("secrets of the child's environment changed; their new values reach the child at its next restart",
				"secrets", sortedKeys(a.envDue), "on_change", act.String())
		} else {
			p.add(act)
		}
		clear(a.envDue)
	}
	a.run(ctx, p)
}

// failing reports whether a file that uses a name in names failed its
// last render.
func (a *applier) failing(names map[string]bool) bool {
	for i := range a.failed {
		if a.affects(i, names) {
			return true
		}
	}
	return false
}

// affects reports whether file i uses a name in changed.
func (a *applier) affects(i int, changed map[string]bool) bool {
	deps := a.fileDeps[i]
	if deps == nil {
		return len(changed) > 0
	}
	for n := range changed {
		if deps[n] {
			return true
		}
	}
	return false
}

// fileAction is the action after file i was rewritten.
func (a *applier) fileAction(i int) Action {
	if a := a.opts.Files[i].OnChange; a != nil {
		return *a
	}
	if a.opts.OnChange != nil {
		return *a.opts.OnChange
	}
	return Action{Kind: ActionNone}
}

// envAction is the action after a secret of the child's environment
// changed. A signal is not run for it (apply logs instead), and no env
// action runs while a file using the changed secrets fails to render.
func (a *applier) envAction() Action {
	if a.opts.OnChange != nil {
		return *a.opts.OnChange
	}
	return Action{Kind: ActionRestart}
}

// run performs a plan: a restart (which makes signals moot: the new child
// reads the new files), else each signal; then each command.
func (a *applier) run(ctx context.Context, p plan) {
	if p.empty() {
		return
	}
	switch {
	case p.restart != nil:
		err := a.restart(ctx, *p.restart)
		a.opts.Metrics.action(ActionRestart.String(), err)
		if err != nil {
			a.log.Error("on_change restart failed", "err", err)
		} else {
			a.log.Info("on_change: restarted the child")
		}
	default:
		for _, sig := range p.signals {
			err := errNoChild
			if a.opts.Child != nil {
				err = a.opts.Child.Signal(sig)
			}
			act := Action{Kind: ActionSignal, Signal: sig}
			a.opts.Metrics.action(ActionSignal.String(), err)
			if err != nil {
				a.log.Error("on_change signal failed", "action", act.String(), "err", err)
			} else {
				a.log.Info("on_change: signalled the child", "action", act.String())
			}
		}
	}
	for _, c := range p.commands {
		err := a.opts.RunCommand(ctx, c.Command, c.Timeout)
		a.opts.Metrics.action(ActionCommand.String(), err)
		if err != nil {
			a.log.Error("on_change command failed", "action", c.String(), "err", err)
		} else {
			a.log.Info("on_change: command done", "action", c.String())
		}
	}
}

// restart restarts the child for act (the Child draws the splay).
func (a *applier) restart(ctx context.Context, act Action) error {
	if a.opts.Child == nil {
		return errNoChild
	}
	return a.opts.Child.Restart(ctx, act.Timeout, act.Splay)
}

// fileDeps returns the secret names f's content depends on, or nil when
// that cannot be known (a template that computes a name passed to secret).
func fileDeps(f render.File) (map[string]bool, error) {
	names, err := f.SecretNames()
	if errors.Is(err, render.ErrDynamicNames) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	deps := make(map[string]bool, len(names))
	for _, n := range names {
		deps[n] = true
	}
	return deps, nil
}
