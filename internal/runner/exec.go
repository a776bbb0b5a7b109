package runner

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/keyward/keyward/internal/child"
	"github.com/keyward/keyward/internal/harden"
	"github.com/keyward/keyward/providers"
)

// ExecOptions configure the one-shot exec.
type ExecOptions struct {
	// Supervise keeps keyward as the child's parent (--supervise);
	// otherwise keyward replaces itself with the child, unless it is
	// PID 1 or Output is set.
	Supervise bool
	// StopTimeout is how long the child has after a forwarded SIGTERM
	// before SIGKILL.
	StopTimeout time.Duration
	// Output, when set, gives the child's stdout and stderr in place of
	// Env's (exec --mask) and what writes out what they hold back once
	// the child's output is copied. The child then always runs
	// supervised.
	Output func() (stdout, stderr io.Writer, flush func())
}

// Exec is the one-shot exec: Once (every reference, the files, the
// tokens), then argv runs with the child's environment, without keyward
// watching anything. Tokens are obtained once and not refreshed. It
// returns an *ExitError with the child's code, or the error that kept the
// child from starting (an *ExitError with 127 or 126 when that is why).
// Without supervision it does not return when the exec succeeds.
func (r *Runner) Exec(ctx context.Context, argv []string, o ExecOptions) error {
	res, err := r.Once(ctx, OnceOptions{Render: true, Tokens: allTokens})
	if err != nil {
		return err
	}
	if res.Tokens != nil {
		r.env.Logger.Info("tokens are fetched once and not refreshed by keyward exec without watch: or on_change:; use keyward agent -c FILE -- COMMAND to keep them fresh")
	}
	env, err := ChildEnv(r.cfg, r.env.Environ, r.envRefs, res.Values, func(added map[string]providers.Value) {
		tokenChildEnv(res.Tokens, nil, added)
	})
	if err != nil {
		return err
	}
	r.Close()
	stdout, stderr, flush := r.env.Stdout, r.env.Stderr, func() {}
	supervise := o.Supervise
	if o.Output != nil {
		supervise = true // the child's output must pass through keyward
		stdout, stderr, flush = o.Output()
	}
	r.env.Logger.Debug("starting command", "command", argv[0], "secrets", len(res.Values), "supervise", supervise || os.Getpid() == 1)
	if err := harden.ChildCoreLimit(); err != nil {
		r.env.Logger.Warn("could not restore the core limit for the child", "err", err)
	}
	if !supervise && os.Getpid() != 1 {
		return childError(child.Exec(argv, env))
	}
	code, err := child.Run(ctx, child.Options{
		Args:        argv,
		Env:         env,
		Stdin:       r.env.Stdin,
		Stdout:      stdout,
		Stderr:      stderr,
		StopTimeout: o.StopTimeout,
		Logger:      r.env.Logger,
	})
	flush()
	if err != nil {
		return childError(err)
	}
	return &ExitError{Code: code}
}

// childError is the error of a child that could not be started or run:
// an *ExitError when it carries keyward's exit code (127, 126).
func childError(err error) error {
	if code, ok := child.ExitCode(err); ok {
		return &ExitError{Code: code, Err: err}
	}
	return err
}
