package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/ci"
	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/mask"
	"github.com/keyward/keyward/internal/runner"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/render"
)

func newCICmd(g *globals) *cobra.Command {
	var system, dotenv string
	cmd := &cobra.Command{
		Use:   "ci -c FILE",
		Short: "Hand the config's secrets to the CI job: log masks, job variables, files",
		Long: `ci resolves every secret of the config and hands them to the CI system it
runs under, then exits. Nothing is written unless every reference resolves.

The variables handed on are the ones keyward exec gives its child: the
config's env: entries (VARIABLE: secret), or, when the config has neither an
env: nor a files: section, every secret under its own name (env: {} hands on
none).

GitHub Actions (GITHUB_ACTIONS=true): first, before anything else, an
::add-mask:: command on stdout for every value and for every line of 6 bytes
or more of a multi-line value, so the runner replaces them (and their
encodings) with *** in the job's log. Shorter lines are left out: the runner
masks a registered string everywhere, so the "}" line of a JSON key would
turn every brace of the log into ***. Then the config's files are rendered, the variables are
appended to $GITHUB_ENV (later steps see them), and the secrets listed under
ci: outputs: to $GITHUB_OUTPUT (steps.ID.outputs.NAME), each as
NAME<<DELIMITER with a fresh random delimiter that does not occur in the
value, so no value can define another variable. A dotenv file is written too
when --dotenv or ci: dotenv: asks for one.

GitLab CI (GITLAB_CI=true) and anything else: the config's files and a 0600
dotenv file with the variables (--dotenv, else ci: dotenv:, else keyward.env
in the temporary directory). GitLab does not know these values, so its log
does not mask them: run the job's commands through keyward exec --mask.

Exit status: 0 done, 1 a secret could not be fetched or written, 2 usage,
78 the config is invalid.`,
		Example: `  # GitHub Actions step
  keyward ci -c .github/keyward.yaml

  # GitLab CI job: write the dotenv file, then run commands with masked output
  keyward ci -c keyward.yaml --dotenv "$CI_BUILDS_DIR/keyward.env"
  keyward exec --mask -c keyward.yaml -- make deploy`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sys, err := ci.ParseSystem(system)
			if err != nil {
				return usageError("--system: %v", err)
			}
			cfg, err := loadConfig(cmd.Context(), g, true)
			if err != nil {
				return err
			}
			if err := unsupported(cfg, "ci"); err != nil {
				return err
			}
			if sys == "" {
				sys = ci.Detect(g.env.getenv)
			}
			r, err := newRunner(g, cfg, runner.Options{FileGroup: -1})
			if err != nil {
				return err
			}
			defer r.Close()
			got, err := r.Once(cmd.Context(), runner.OnceOptions{})
			if err != nil {
				return err
			}
			return materialize(g, cfg, r.Files(), sys, dotenv, got.Values)
		},
	}
	cmd.Flags().StringVar(&system, "system", "auto", "CI system: auto (detect), github, gitlab or generic")
	cmd.Flags().StringVar(&dotenv, "dotenv", "", "dotenv file to write (default: ci: dotenv: of the config, else keyward.env in the temporary directory; under GitHub Actions only when given)")
	return cmd
}

// materialize hands res to the CI system sys. Everything that can fail
// without writing is checked before the first write.
func materialize(g *globals, cfg *config.Config, files []render.File, sys ci.System, dotenvFlag string, res map[string]providers.Resolved) error {
	vars := ciVars(cfg, res)
	var outputs []ci.Var
	dotenvPath := dotenvFlag
	if cfg.CI != nil {
		for _, name := range cfg.CI.Outputs {
			outputs = append(outputs, ci.Var{Name: name, Value: res[name].Value})
		}
		if dotenvPath == "" {
			dotenvPath = cfg.CI.Dotenv
		}
	}
	if dotenvPath == "" && sys != ci.GitHub {
		dotenvPath = filepath.Join(os.TempDir(), "keyward.env")
	}
	if dotenvPath != "" {
		abs, err := filepath.Abs(dotenvPath)
		if err != nil {
			return usageError("--dotenv: %v", err)
		}
		dotenvPath = abs
	}

	var envPath, outPath string
	var envData, outData []byte
	if sys == ci.GitHub {
		envPath, outPath = g.env.getenv("GITHUB_ENV"), g.env.getenv("GITHUB_OUTPUT")
		if envPath == "" && len(vars) > 0 {
			return fmt.Errorf("GitHub Actions: GITHUB_ENV is not set, so the job's variables cannot be handed on (is this a runner step?)")
		}
		if outPath == "" && len(outputs) > 0 {
			return fmt.Errorf("GitHub Actions: GITHUB_OUTPUT is not set, so ci: outputs: cannot be written")
		}
		var err error
		if envData, err = ci.FormatGitHubFile(vars, rand.Reader); err != nil {
			return fmt.Errorf("$GITHUB_ENV: %w", err)
		}
		if outData, err = ci.FormatGitHubFile(outputs, rand.Reader); err != nil {
			return fmt.Errorf("$GITHUB_OUTPUT: %w", err)
		}
		// Masks first: nothing the job prints from here on shows a value.
		if err := ci.WriteMasks(g.stdout, maskValues(res), mask.DefaultMinLength); err != nil {
			return fmt.Errorf("writing ::add-mask:: commands: %w", err)
		}
	}

	if len(cfg.Files) > 0 {
		result, err := render.Render(files, res)
		if err != nil {
			return err
		}
		g.logger.Debug("rendered", "files", len(cfg.Files), "changed", len(result.Changed))
	}
	if sys == ci.GitHub {
		if err := ci.AppendFile(envPath, envData); err != nil {
			return fmt.Errorf("$GITHUB_ENV: %w", err)
		}
		if err := ci.AppendFile(outPath, outData); err != nil {
			return fmt.Errorf("$GITHUB_OUTPUT: %w", err)
		}
	}
	if dotenvPath != "" {
		if err := ci.WriteDotenv(dotenvPath, vars); err != nil {
			return err
		}
	}

	switch sys {
	case ci.GitHub:
		g.logger.Info("secrets handed to GitHub Actions", "masked", len(res), "env", len(vars), "outputs", len(outputs), "files", len(cfg.Files))
	default:
		if len(outputs) > 0 {
			g.logger.Warn("ci: outputs: is for GitHub Actions only; the outputs are in the dotenv file", "system", sys)
		}
		name := "GitLab CI"
		if sys == ci.Generic {
			name = "This CI system"
		}
		fmt.Fprintf(g.errOut, "keyward: wrote %d variables to %s (mode 0600) and %d files.\n"+
			"%s does not mask these values in job logs: run job commands through\n"+
			"  keyward exec --mask -c %s -- COMMAND\n"+
			"or load the file with: set -a; . %s; set +a\n", len(vars), dotenvPath, len(cfg.Files), name, cfg.Path, dotenvPath)
	}
	return nil
}

// ciVars returns the variables keyward ci hands on: those a child of
// keyward exec gets from the config (cfg.EnvVars), sorted by name.
func ciVars(cfg *config.Config, res map[string]providers.Resolved) []ci.Var {
	vars := cfg.EnvVars()
	out := make([]ci.Var, 0, len(vars))
	for _, name := range sortedKeys(vars) {
		out = append(out, ci.Var{Name: name, Value: res[vars[name]].Value})
	}
	return out
}

// maskSecrets returns every value of res to mask or scan for: each
// secret's value and, for a whole structured secret, each of its fields.
func maskSecrets(res map[string]providers.Resolved) []mask.Secret {
	var out []mask.Secret
	for _, name := range sortedKeys(res) {
		r := res[name]
		out = append(out, mask.Secret{Name: name, Value: r.Value.Bytes()})
		for _, f := range sortedKeys(r.Fields) {
			out = append(out, mask.Secret{Name: name + "#" + f, Value: r.Fields[f].Bytes()})
		}
	}
	return out
}

// maskValues returns the values of maskSecrets.
func maskValues(res map[string]providers.Resolved) []providers.Value {
	var out []providers.Value
	for _, name := range sortedKeys(res) {
		r := res[name]
		out = append(out, r.Value)
		for _, f := range sortedKeys(r.Fields) {
			out = append(out, r.Fields[f])
		}
	}
	return out
}

// maskByDefault reports whether exec masks the child's output without
// --mask: when CI is set (to anything but "", "0" or "false"), as every CI
// system sets it.
func maskByDefault(getenv func(string) string) bool {
	switch getenv("CI") {
	case "", "0", "false":
		return false
	}
	return true
}

// maskFlags are --mask, --no-mask and --mask-idle, which exec and agent
// share: with them the child's (and the on_change commands') stdout and
// stderr pass through the process's masker.
type maskFlags struct {
	on, off bool
	idle    time.Duration
}

// register adds the flags to cmd; implies ends --mask's usage line (what
// else --mask turns on in that command, or "").
func (m *maskFlags) register(cmd *cobra.Command, g *globals, implies string) {
	cmd.Flags().BoolVar(&m.on, "mask", maskByDefault(g.env.getenv), "replace secret values in the child's stdout and stderr with *** (default true when CI is set"+implies+")")
	cmd.Flags().BoolVar(&m.off, "no-mask", false, "do not mask the child's output, also when CI is set")
	cmd.Flags().DurationVar(&m.idle, "mask-idle", mask.DefaultIdle, "with --mask: how long output that may be the beginning of a secret is held back when nothing follows")
}

// output is the runner's Output for the flags: maskedOutput when masking
// is on, nil (the child writes to keyward's own stdout and stderr) when
// it is off.
func (m *maskFlags) output(g *globals) func() (stdout, stderr io.Writer, flush func()) {
	if !m.on || m.off {
		return nil
	}
	return func() (io.Writer, io.Writer, func()) { return maskedOutput(g, m.idle) }
}

// maskedOutput returns writers that mask, in what is written to g.stdout
// and g.stderr, every value the process's masker knows (g.learn adds
// resolved, rotated and token values as they arrive, before the child or a
// file sees them; earlier values of a name stay masked, since a child may
// still print them), and a function that writes out what they hold back
// (call it once the child's output is copied).
func maskedOutput(g *globals, idle time.Duration) (stdout, stderr io.Writer, flush func()) {
	// The watched mode calls it twice (the child's writers, the on_change
	// commands'): the warning is given once.
	if skipped := g.masker.Set().Skipped(); !g.outputMasked.Swap(true) && len(skipped) > 0 {
		g.logger.Warn("values too short to mask; they appear in the output as they are", "secrets", skipped, "min_length", mask.DefaultMinLength)
	}
	out, errw := g.masker.WriterIdle(g.stdout, idle), g.masker.WriterIdle(g.stderr, idle)
	flush = func() {
		_ = out.Close()
		_ = errw.Close()
	}
	return out, errw, flush
}
