// Package runner is keyward's composition root. New builds, from a config
// and the process's environment, what a command needs, once: the provider
// set, the references to resolve, the files, and for the watched mode the
// rotation engine, the token loop, the server and the child supervisor.
// Once serves the commands that resolve and exit (render, ci, get, check,
// scan), Exec the one-shot exec, and Run the watched mode (agent, exec
// with a watch). The commands in cmd/keyward are flags, help and a call.
package runner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/harden"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/render"
	"github.com/keyward/keyward/rotate"
)

// EnvRefPrefix namespaces the references found in the environment among
// the names a run resolves, so that they cannot collide with the config's
// secret names: the variable DB is the name "env:DB".
const EnvRefPrefix = "env:"

// DefaultInitTimeout bounds the first fetch of tokens, and the first
// fetch and render of the agent unless --init-timeout says otherwise.
const DefaultInitTimeout = time.Minute

// Env is what a run takes from the keyward process.
type Env struct {
	// Getenv reads keyward's environment (the providers' standard
	// variables, KEYWARD_TOKEN_GUARD_FILE).
	Getenv func(string) string
	// Environ is keyward's environment: the references in it (with
	// Options.EnvRefs) and the base of the child's environment.
	Environ []string
	// Stdin, Stdout and Stderr are the child's, and Stdout and Stderr
	// those of on_change commands.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Logger receives keyward's log lines.
	Logger *slog.Logger
	// Learn, when set, is handed every value keyward obtains (secrets,
	// rotated secrets, client credentials, tokens) before anything can
	// show it: the process's masker. It must not block.
	Learn func(map[string]providers.Resolved)
	// Redact, when set, hides the values Learn was given in the text the
	// server sends.
	Redact func(string) string
}

// Options say what a run resolves: each command's flags.
type Options struct {
	// Refs are the references to resolve by name; nil means the config's
	// secrets (none without a config).
	Refs map[string]providers.Ref
	// EnvRefs adds the references found in Env.Environ (exec, scan, the
	// agent with a command), each under EnvRefPrefix+VARIABLE.
	EnvRefs bool
	// EnvFileRefs makes file: values in the environment references too
	// (--env-file-refs; the config's env_file_refs says so as well).
	EnvFileRefs bool
	// FileGroup is --file-group: the group given to each file whose config
	// names none, with group read where the owner may read; -1 for none.
	FileGroup int
}

// Runner is one run of keyward over a config (nil for none). Make it with
// New, use it once (Once, Exec or Run) and Close it. It is not safe for
// concurrent use.
type Runner struct {
	cfg     *config.Config
	env     Env
	opts    Options
	set     *providers.Set
	files   []render.File
	envRefs map[string]providers.Ref // by variable
	refs    map[string]providers.Ref // by name: the config's (or Options.Refs) and env:VARIABLE
	close   func() error
}

// New builds the run of cfg (nil: zero-config mode) in env: the provider
// set with the config's instances, every one of which is built now (their
// options are configuration, checked without contacting a store), the
// references to resolve and the files to render. It contacts no store.
// Errors are *ConfigError (an instance's options, a reference in the
// environment meant as one but invalid), *UsageError (--file-group) or
// plain ones.
func New(cfg *config.Config, env Env, opts Options) (*Runner, error) {
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	if env.Learn == nil {
		env.Learn = func(map[string]providers.Resolved) {}
	}
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	files, err := withFileGroup(renderFiles(cfg), opts.FileGroup)
	if err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg, env: env, opts: opts, files: files, envRefs: map[string]providers.Ref{}}
	if r.set, err = newSet(cfg, env); err != nil {
		return nil, err
	}
	r.close = sync.OnceValue(r.set.Close)
	if err := r.buildDeclared(); err != nil {
		r.Close()
		return nil, err
	}
	r.refs = opts.Refs
	if r.refs == nil {
		r.refs = configRefs(cfg)
	}
	if opts.EnvRefs {
		if r.envRefs, err = r.findEnvRefs(); err != nil {
			r.Close()
			return nil, err
		}
		r.refs = maps.Clone(r.refs)
		for name, ref := range r.envRefs {
			r.refs[EnvRefPrefix+name] = ref
		}
	}
	return r, nil
}

// Close closes the providers that were built; later calls return the
// first call's result.
func (r *Runner) Close() error {
	err := r.close()
	if err != nil {
		r.env.Logger.Warn("closing providers", "err", err)
	}
	return err
}

// Providers returns the run's provider set.
func (r *Runner) Providers() *providers.Set { return r.set }

// Refs returns the references the run resolves, by name (those of the
// environment under EnvRefPrefix). The caller must not modify them.
func (r *Runner) Refs() map[string]providers.Ref { return r.refs }

// Files returns the files the run renders, --file-group applied. The
// caller must not modify them.
func (r *Runner) Files() []render.File { return r.files }

// newSet returns the provider set of cfg: its declared instances beside
// the default ones, relative paths resolved against the config's directory
// (or the working directory without a config). Every value a Resolve
// obtains goes to env.Learn first.
func newSet(cfg *config.Config, env Env) (*providers.Set, error) {
	base := providers.Instance{Getenv: env.Getenv, Logger: env.Logger}
	var declared []providers.Instance
	if cfg != nil {
		base.BaseDir = cfg.Dir
		for _, name := range sortedKeys(cfg.Providers) {
			p := cfg.Providers[name]
			declared = append(declared, providers.Instance{Name: name, Kind: p.Kind, Decode: p.Decode})
		}
	} else {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("working directory: %w", err)
		}
		base.BaseDir = wd
	}
	set := providers.NewSet(base, declared)
	set.Observe = env.Learn // before anything, even an error, can show a value
	return set, nil
}

// buildDeclared builds the config's provider instances: their options are
// configuration, which each kind's New checks without contacting the
// store. Every problem is reported at once as a configuration error naming
// the config file and the line of the option or, when the kind cannot
// tell, of the instance.
func (r *Runner) buildDeclared() error {
	if r.cfg == nil {
		return nil
	}
	var probs []config.Problem
	for _, name := range sortedKeys(r.cfg.Providers) {
		p := r.cfg.Providers[name]
		if _, ok := providers.LookupKind(p.Kind); !ok {
			continue // not in this build: reported for the references that use it
		}
		_, err := r.set.Provider(name)
		if err == nil {
			continue
		}
		var ce *config.Error
		if errors.As(err, &ce) && len(ce.Problems) > 0 {
			probs = append(probs, ce.Problems...) // Decode's, with their lines
			continue
		}
		if inner := errors.Unwrap(err); inner != nil {
			err = inner // without the set's "provider NAME: "
		}
		probs = append(probs, config.Problem{Line: p.Line, Msg: "providers." + name + ": " + err.Error()})
	}
	if len(probs) == 0 {
		return nil
	}
	slices.SortStableFunc(probs, func(a, b config.Problem) int { return cmp.Compare(a.Line, b.Line) })
	return configError(&config.Error{Path: r.cfg.Path, Problems: probs})
}

// findEnvRefs finds the references in keyward's environment
// (config.FromEnv): those of the provider set's schemes, and file: ones
// when EnvFileRefs or the config's env_file_refs says so. Values that look
// like a mistyped reference are logged as warnings naming the variable; a
// value meant as a reference that is invalid is a configuration error
// naming the variable. Neither ever quotes the value.
func (r *Runner) findEnvRefs() (map[string]providers.Ref, error) {
	refs, warnings, err := config.FromEnv(r.env.Environ, config.EnvOptions{
		Schemes:  r.set.Schemes(),
		FileRefs: r.opts.EnvFileRefs || r.cfg != nil && r.cfg.EnvFileRefs,
		Check:    r.set.CheckRef,
	})
	for _, w := range warnings {
		r.env.Logger.Warn("environment variable not resolved", "variable", w.Var, "reason", w.Msg)
	}
	if err != nil {
		return nil, configError(err)
	}
	return refs, nil
}

// Check validates every reference of the run against the provider set,
// without I/O (providers.Set.CheckRef, the one check): the problems that
// the config's validation leaves to the build (a kind not in it) are
// configuration errors, all reported at once, with the config line of
// each secret that has one.
func (r *Runner) Check() error {
	var probs []config.Problem
	for _, name := range sortedKeys(r.refs) {
		if err := r.set.CheckRef(r.refs[name]); err != nil {
			line := 0
			if r.cfg != nil {
				line = r.cfg.Secrets[name].Line
			}
			probs = append(probs, config.Problem{Line: line, Msg: name + ": " + err.Error()})
		}
	}
	if len(probs) == 0 {
		return nil
	}
	path := config.EnvSource // without a config, the references come from the environment
	if r.cfg != nil {
		path = r.cfg.Path
	}
	slices.SortStableFunc(probs, func(a, b config.Problem) int { return cmp.Compare(a.Line, b.Line) })
	return configError(&config.Error{Path: path, Problems: probs})
}

// OnceOptions say what Once does beyond resolving.
type OnceOptions struct {
	// Render writes the run's files once every reference resolved.
	Render bool
	// Tokens selects the config's tokens to obtain once, into their
	// files (nil: none).
	Tokens func(config.Token) bool
}

// Result is what Once obtained.
type Result struct {
	// Values are the resolved references by name.
	Values map[string]providers.Resolved
	// Rendered lists the files Once wrote (with OnceOptions.Render).
	Rendered render.Result
	// Tokens holds the tokens Once obtained; nil for none.
	Tokens *rotate.Tokens
}

// Once resolves every reference of the run, all-or-nothing, and then, as
// o says, renders the files and obtains tokens once. While it runs core
// dumps are off and SIGINT or SIGTERM cancel it. Errors are those of
// Check, a *providers.ResolveError listing every reference that failed, a
// *render.Error, or the tokens'.
func (r *Runner) Once(ctx context.Context, o OnceOptions) (*Result, error) {
	if err := harden.DisableCoreDumps(); err != nil {
		r.env.Logger.Warn("could not disable core dumps", "err", err)
	}
	ctx, stop := StopOnSignal(ctx)
	defer stop()
	if err := r.Check(); err != nil {
		return nil, err
	}
	if o.Render {
		r.sweepLeftovers()
	}
	values, err := r.set.Resolve(ctx, r.refs)
	if err != nil {
		return nil, err
	}
	res := &Result{Values: values}
	if o.Render && len(r.files) > 0 {
		if res.Rendered, err = render.Render(r.files, values); err != nil {
			return nil, err
		}
		r.env.Logger.Debug("rendered", "files", len(r.files), "changed", len(res.Rendered.Changed))
	}
	if o.Tokens != nil {
		if res.Tokens, err = r.newTokens(nil, o.Tokens); err != nil {
			return nil, err
		}
		if err := initTokens(ctx, res.Tokens, DefaultInitTimeout); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// ChildEnv is the environment exec and agent give the child: environ with
// the variables found in it as references (envRefs) replaced by their
// values (vals[EnvRefPrefix+NAME]), the config's variables added
// (cfg.EnvVars: its env: entries, or every secret under its own name when
// it has no env: section; keyward ci hands on the same) and then whatever
// extra adds (token variables), with keyward's own credentials removed
// unless the config keeps them. It is the one place the child's
// environment is assembled and validated (names, NUL bytes); check calls it
// too, so it refuses exactly what exec and agent would. Errors name the
// variable, never the value.
func ChildEnv(cfg *config.Config, environ []string, envRefs map[string]providers.Ref, vals map[string]providers.Resolved, extra func(added map[string]providers.Value)) ([]string, error) {
	replaced := make(map[string]providers.Value, len(envRefs))
	for name := range envRefs {
		replaced[name] = vals[EnvRefPrefix+name].Value
	}
	added := map[string]providers.Value{}
	var keep []string
	if cfg != nil {
		for v, secret := range cfg.EnvVars() {
			added[v] = vals[secret].Value
		}
		keep = cfg.KeepEnv
	}
	if extra != nil {
		extra(added)
	}
	env, err := render.Env(environ, replaced, added, keep)
	if err != nil && cfg != nil && cfg.Env == nil && len(cfg.Secrets) > 0 {
		// The config did not list the variables: say how to choose them.
		err = fmt.Errorf("%w (%s has no env: section, so every secret goes into the child's environment: list the child's variables under env:, or write env: {} for none)", err, cfg.Path)
	}
	return env, err
}

// configRefs returns the config's secrets as NAME -> Ref.
func configRefs(cfg *config.Config) map[string]providers.Ref {
	out := map[string]providers.Ref{}
	if cfg == nil {
		return out
	}
	for name, sec := range cfg.Secrets {
		out[name] = sec.Ref
	}
	return out
}

// renderFiles turns the config's files into render.File values.
func renderFiles(cfg *config.Config) []render.File {
	if cfg == nil {
		return nil
	}
	out := make([]render.File, 0, len(cfg.Files))
	for _, f := range cfg.Files {
		rf := render.File{
			Path:         f.Path,
			Format:       render.Format(f.Format),
			Dialect:      render.Dialect(f.Dialect),
			Secrets:      f.Secrets,
			Secret:       f.Secret,
			Template:     f.Template,
			TemplateFile: f.TemplateFile,
			Mode:         f.Mode,
			UID:          -1,
			GID:          -1,
			AtomicDir:    f.AtomicDir,
			AllowSymlink: f.AllowSymlink,
		}
		if f.Owner != nil {
			rf.UID = *f.Owner
		}
		if f.Group != nil {
			rf.GID = *f.Group
		}
		out = append(out, rf)
	}
	return out
}

// withFileGroup applies --file-group: each file whose config names no
// group gets gid and the group read permission when its owner has it
// (never write or execute, never anything for others). A gid below 0
// leaves the files as they are; one that keyward is not a member of fails
// the render, naming the file (render.ErrOwner).
func withFileGroup(files []render.File, gid int) ([]render.File, error) {
	if gid < -1 {
		return nil, &UsageError{Err: fmt.Errorf("--file-group %d: not a group id", gid)}
	}
	if gid < 0 {
		return files, nil
	}
	out := slices.Clone(files)
	for i := range out {
		out[i] = shareWithGroup(out[i], gid)
	}
	return out, nil
}

// shareWithGroup applies --file-group gid (>= 0) to one file, rendered or
// a token's: unless it names a group, it gets gid and the group read
// permission when its owner has it.
func shareWithGroup(f render.File, gid int) render.File {
	if f.GID >= 0 {
		return f
	}
	if f.Mode == 0 {
		f.Mode = render.DefaultMode
	}
	f.GID = gid
	f.Mode |= (f.Mode & 0o400) >> 3
	return f
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sweepLeftovers removes keyward's own leftovers of interrupted writes
// (temp files, atomic_dir snapshots: copies of old secrets a kill -9 left)
// from the directories of the run's files and token files before any
// store is contacted, so that they are gone even when the stores are down
// at start. A
// directory it cannot sweep (read-only, not writable by keyward) is only
// logged at debug level: the write into it fails later with the reason,
// once.
func (r *Runner) sweepLeftovers() {
	paths := make([]string, 0, len(r.files))
	for _, f := range r.files {
		paths = append(paths, f.Path)
	}
	if r.cfg != nil {
		for _, t := range r.cfg.Tokens {
			paths = append(paths, t.File) // Sweep skips ""
		}
	}
	removed, err := render.Sweep(paths)
	if len(removed) > 0 {
		r.env.Logger.Info("removed leftovers of interrupted writes", "count", len(removed))
	}
	if err != nil {
		r.env.Logger.Debug("could not sweep leftovers of interrupted writes", "err", err)
	}
}
