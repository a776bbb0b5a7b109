package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"sort"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/harden"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/render"

	// Provider kinds compiled into this build.
	_ "github.com/keyward/keyward/providers/builtin" // every provider kind, or its "not in this build" registration
)

// session is what one command works with: the optional config, the
// provider set built from it, and the references to resolve.
type session struct {
	g   *globals
	cfg *config.Config // nil in zero-config mode
	set *providers.Set
}

// start is the common start of a command that fetches secrets: core dumps
// off while secrets are held, a context that SIGINT and SIGTERM cancel, and
// the session for cfg. done (safe to call more than once) stops the signal
// handling and closes the providers.
func start(cmd *cobra.Command, g *globals, cfg *config.Config) (ctx context.Context, s *session, done func(), err error) {
	if err := harden.DisableCoreDumps(); err != nil {
		g.logger.Warn("could not disable core dumps", "err", err)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	s, err = newSession(g, cfg)
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	done = sync.OnceFunc(func() {
		stop()
		if err := s.set.Close(); err != nil {
			g.logger.Warn("closing providers", "err", err)
		}
	})
	return ctx, s, done, nil
}

// loadConfig reads g.config. required says whether a missing -c is a usage error.
func loadConfig(g *globals, required bool) (*config.Config, error) {
	if g.config == "" {
		if required {
			return nil, usageError("a config file is required: -c FILE (or KEYWARD_CONFIG)")
		}
		return nil, nil
	}
	cfg, err := config.Load(g.config)
	if err != nil {
		return nil, configError(err)
	}
	for _, w := range cfg.Warnings() {
		g.logger.Warn(w.Msg, "config", cfg.Path, "line", w.Line)
	}
	return cfg, nil
}

func newSession(g *globals, cfg *config.Config) (*session, error) {
	base := providers.Instance{Getenv: g.env.getenv, Logger: g.logger}
	var declared []providers.Instance
	if cfg != nil {
		base.BaseDir = cfg.Dir
		names := make([]string, 0, len(cfg.Providers))
		for name := range cfg.Providers {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
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
	set.Observe = g.learn // before anything, even an error, can show a value
	s := &session{g: g, cfg: cfg, set: set}
	if err := s.buildDeclared(); err != nil {
		s.set.Close()
		return nil, err
	}
	return s, nil
}

// buildDeclared builds the config's provider instances: their options are
// configuration, which each kind's New checks without contacting the
// store. Every problem is reported at once as a configuration error (exit
// 78) naming the config file and the line of the option or, when the kind
// cannot tell, of the instance.
func (s *session) buildDeclared() error {
	if s.cfg == nil {
		return nil
	}
	var probs []config.Problem
	for _, name := range sortedKeys(s.cfg.Providers) {
		p := s.cfg.Providers[name]
		if _, ok := providers.LookupKind(p.Kind); !ok {
			continue // not in this build: reported for the references that use it
		}
		_, err := s.set.Provider(name)
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
	return configError(&config.Error{Path: s.cfg.Path, Problems: probs})
}

// envRefs finds the references in keyward's environment (config.FromEnv):
// those of the provider set's schemes, and file: ones when fileRefs or the
// config's env_file_refs says so. Values that look like a mistyped
// reference are logged as warnings naming the variable; a value meant as a
// reference that is invalid is a configuration error naming the variable.
// Neither ever quotes the value.
func (s *session) envRefs(environ []string, fileRefs bool) (map[string]providers.Ref, error) {
	refs, warnings, err := config.FromEnv(environ, config.EnvOptions{
		Schemes:  s.set.Schemes(),
		FileRefs: fileRefs || s.cfg != nil && s.cfg.EnvFileRefs,
		Check:    s.set.CheckRef,
	})
	for _, w := range warnings {
		s.g.logger.Warn("environment variable not resolved", "variable", w.Var, "reason", w.Msg)
	}
	if err != nil {
		return nil, configError(err)
	}
	return refs, nil
}

// envFileRefsFlag adds --env-file-refs to a command that resolves
// references found in the environment.
func envFileRefsFlag(cmd *cobra.Command, v *bool) {
	cmd.Flags().BoolVar(v, "env-file-refs", false, "also resolve environment variables whose value is a file: reference (config key env_file_refs); off by default, as file: URIs are ordinary values for SQLite and JDBC")
}

// check validates every reference against the provider set without I/O;
// problems are configuration errors (exit 78), all reported at once, with
// the config line of each secret that has one.
func (s *session) check(refs map[string]providers.Ref) error {
	var probs []config.Problem
	for _, name := range sortedKeys(refs) {
		if err := s.set.CheckRef(refs[name]); err != nil {
			line := 0
			if s.cfg != nil {
				line = s.cfg.Secrets[name].Line
			}
			probs = append(probs, config.Problem{Line: line, Msg: name + ": " + err.Error()})
		}
	}
	if len(probs) == 0 {
		return nil
	}
	path := config.EnvSource // without a config, the references come from the environment
	if s.cfg != nil {
		path = s.cfg.Path
	}
	slices.SortStableFunc(probs, func(a, b config.Problem) int { return cmp.Compare(a.Line, b.Line) })
	return configError(&config.Error{Path: path, Problems: probs})
}

// resolve checks then fetches refs, all-or-nothing.
func (s *session) resolve(ctx context.Context, refs map[string]providers.Ref) (map[string]providers.Resolved, error) {
	if err := s.check(refs); err != nil {
		return nil, err
	}
	res, err := s.set.Resolve(ctx, refs)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// childEnvironment is the environment exec and agent give the child:
// environ with the variables found in it as references (envRefs) replaced
// by their values (vals[envRefPrefix+NAME]), the config's variables added
// (cfg.EnvVars: its env: entries, or every secret under its own name when
// it has no env: section; keyward ci hands on the same) and then whatever
// extra adds (token variables), with
// keyward's own credentials removed unless the config keeps them. It is
// the one place the child's environment is assembled and validated (names,
// NUL bytes); check calls it too, so it refuses exactly what exec and agent
// would. Errors name the variable, never the value.
func childEnvironment(environ []string, envRefs map[string]providers.Ref, cfg *config.Config, vals map[string]providers.Resolved, extra func(added map[string]providers.Value)) ([]string, error) {
	replaced := make(map[string]providers.Value, len(envRefs))
	for name := range envRefs {
		replaced[name] = vals[envRefPrefix+name].Value
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

// fileGroupFlag adds --file-group to cmd (render, agent): the group of a pod
// in which keyward and the application run as different users.
func fileGroupFlag(cmd *cobra.Command, gid *int) {
	cmd.Flags().IntVar(gid, "file-group", -1, "give each file whose config sets no group: this group, readable by it whenever the owner may read (0400 becomes 0440): for a pod whose application runs as another user than keyward, which shares this group (the admission webhook passes the pod's group)")
}

// withFileGroup applies --file-group: each file whose config names no
// group gets gid and the group read permission when its owner has it
// (never write or execute, never anything for others). A gid below 0
// leaves the files as they are; one that keyward is not a member of fails
// the render, naming the file (render.ErrOwner).
func withFileGroup(files []render.File, gid int) ([]render.File, error) {
	if gid < -1 {
		return nil, usageError("--file-group %d: not a group id", gid)
	}
	if gid < 0 {
		return files, nil
	}
	out := slices.Clone(files)
	for i := range out {
		if out[i].GID >= 0 {
			continue
		}
		out[i].GID = gid
		out[i].Mode |= (out[i].Mode & 0o400) >> 3
	}
	return out, nil
}

// unsupported reports config sections that the given command parses but
// cannot act on, as a configuration error: tokens are kept fresh by agent
// and exec, and fetched once by render, but keyward ci has no use for them.
func unsupported(cfg *config.Config, command string) error {
	if cfg == nil {
		return nil
	}
	if len(cfg.Tokens) > 0 && command == "ci" {
		return configError(fmt.Errorf("%s: tokens: OAuth2 tokens are not materialized by keyward ci; remove the tokens section, or run the job under keyward exec", cfg.Path))
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
