package main

import (
	"context"
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/runner"

	// Provider kinds compiled into this build.
	_ "github.com/keyward/keyward/providers/builtin" // every provider kind, or its "not in this build" registration
)

// loadConfig reads g.config. required says whether a missing -c is a usage
// error. A config read from a pipe that never ends (-c <(cmd) whose cmd
// hangs) is given up on SIGTERM or SIGINT.
func loadConfig(ctx context.Context, g *globals, required bool) (*config.Config, error) {
	if g.config == "" {
		if required {
			return nil, usageError("a config file is required: -c FILE (or KEYWARD_CONFIG)")
		}
		return nil, nil
	}
	ctx, stop := runner.StopOnSignal(ctx)
	defer stop()
	cfg, err := config.Load(ctx, g.config)
	if err != nil {
		if ctx.Err() != nil {
			// Stopped by a signal while reading a pipe: not a config
			// problem (exit 1, not 78).
			return nil, fmt.Errorf("%s: stopped while reading the config", g.config)
		}
		return nil, configError(err)
	}
	for _, w := range cfg.Warnings() {
		g.logger.Warn(w.Msg, "config", cfg.Path, "line", w.Line)
	}
	return cfg, nil
}

// newRunner builds the run of cfg in keyward's process: its environment,
// standard streams, logger and masker.
func newRunner(g *globals, cfg *config.Config, opts runner.Options) (*runner.Runner, error) {
	return runner.New(cfg, runner.Env{
		Getenv:  g.env.getenv,
		Environ: g.env.environ(),
		Stdin:   g.stdin,
		Stdout:  g.stdout,
		Stderr:  g.stderr,
		Logger:  g.logger,
		Learn:   g.learn,
		Redact:  g.masker.String,
	}, opts)
}

// envFileRefsFlag adds --env-file-refs to a command that resolves
// references found in the environment.
func envFileRefsFlag(cmd *cobra.Command, v *bool) {
	cmd.Flags().BoolVar(v, "env-file-refs", false, "also resolve environment variables whose value is a file: reference (config key env_file_refs); off by default, as file: URIs are ordinary values for SQLite and JDBC")
}

// fileGroupFlag adds --file-group to cmd (render, agent): the group of a pod
// in which keyward and the application run as different users.
func fileGroupFlag(cmd *cobra.Command, gid *int) {
	cmd.Flags().IntVar(gid, "file-group", -1, "give each file whose config sets no group:, and each token file, this group, readable by it whenever the owner may read (0400 becomes 0440): for a pod whose application runs as another user than keyward, which shares this group (the admission webhook passes the pod's group)")
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
