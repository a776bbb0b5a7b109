package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/runner"
)

func newExecCmd(g *globals) *cobra.Command {
	var supervise bool
	var stopTimeout time.Duration
	var masking maskFlags
	var envFileRefs bool
	cmd := &cobra.Command{
		Use:   "exec [-c FILE] -- COMMAND [ARG...]",
		Short: "Run a command with secrets in its environment and files",
		Long: `exec resolves secrets, writes the config's files, and runs COMMAND with an
environment in which

  - every variable whose whole value is a secret-store reference
    (DB_PASSWORD=vault://secret/db#password; awssm://, gcpsm://, k8s://, the
    config's instance names, and the ECS ARN, sm://, gcp:secretmanager: and
    vault:MOUNT/PATH#KEY spellings) holds the secret instead, with or without
    a config file. file: values are resolved only with --env-file-refs (or
    env_file_refs: true), since file: URIs are ordinary values for SQLite and
    JDBC. Any other value reaches COMMAND unchanged; one that looks like a
    mistyped reference (vualt://) gets a warning naming the variable;
  - the config's variables are added: its env: entries (VARIABLE: secret), or,
    when it has neither an env: nor a files: section, every secret under its
    own name (env: {} adds none); keyward ci hands on the same variables;
  - keyward's own credentials (VAULT_TOKEN, KEYWARD_*) are removed unless the
    config lists them under keep_env.

Nothing starts unless every reference resolves. By default keyward then
replaces itself with COMMAND (execve), so it costs nothing after start. With
--supervise, or when keyward runs as PID 1 in a container, it stays as the
parent instead: it passes the terminal through, forwards INT TERM HUP QUIT USR1
USR2 WINCH, reaps orphaned zombies when PID 1, and exits with the child's code
(128+N when the child was killed by signal N). A child still running
--stop-timeout after a forwarded TERM is killed with SIGKILL.

When the config has a watch: or on_change: section, exec always stays as the
parent and keeps the secrets fresh like keyward agent -c FILE -- COMMAND:
rotated files are re-rendered and on_change runs (default: restart the child
with a fresh environment when a secret of its env changed).

The config's tokens: are obtained before COMMAND starts, written to their
files, and given to it as KEYWARD_TOKEN_<NAME>. An environment variable cannot
be refreshed: without watch: or on_change: nothing refreshes the tokens at all
(keyward is gone); with them, the files and the server's /v1/tokens/NAME are
kept fresh, but the child's KEYWARD_TOKEN_<NAME> stays the token of its start.

With --mask (the default when CI is set; --no-mask turns it off) the child's
stdout and stderr pass through keyward, which replaces every secret value, its
base64, hex, percent-encoded, JSON- and string-escaped forms and each line of
a multi-line value with ***, also when split across writes (after a pause of
--mask-idle the beginning is shown but the rest is still masked); values
shorter than 6 bytes are not masked.
--mask implies --supervise; the child's output is then a pipe, not the terminal.

Exit status: the command's own; 127 command not found, 126 not executable,
1 a secret could not be fetched, 78 the config or a reference is invalid.`,
		Example: `  # no config: references in the environment are resolved
  DB_PASSWORD=vault://secret/payments/db#password keyward exec -- ./app --port 8080

  # file: references from the environment, for local use
  DB_PASSWORD=file:examples/local/dev.yaml#db.password keyward exec --env-file-refs -- ./app

  # with a config: env and files as declared
  keyward exec -c examples/local/keyward.yaml -- sh -c 'echo "user=$DB_USER"'

  # as a container ENTRYPOINT that must reap zombies
  ENTRYPOINT ["keyward", "exec", "--supervise", "-c", "/etc/keyward/keyward.yaml", "--"]`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError("exec needs a command: keyward exec [-c FILE] -- COMMAND [ARG...]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd.Context(), g, false)
			if err != nil {
				return err
			}
			r, err := newRunner(g, cfg, runner.Options{EnvRefs: true, EnvFileRefs: envFileRefs, FileGroup: -1})
			if err != nil {
				return err
			}
			defer r.Close()
			output := masking.output(g)
			if cfg != nil && (cfg.Watch != nil || cfg.OnChange != nil) {
				// Rotation: supervise the child, keeping the secrets fresh.
				return r.Run(cmd.Context(), args, runner.WatchOptions{StopTimeout: stopTimeout, ShutdownTimeout: defaultShutdownTimeout, Output: output})
			}
			return r.Exec(cmd.Context(), args, runner.ExecOptions{Supervise: supervise, StopTimeout: stopTimeout, Output: output})
		},
	}
	cmd.Flags().SetInterspersed(false)
	envFileRefsFlag(cmd, &envFileRefs)
	cmd.Flags().BoolVar(&supervise, "supervise", false, "stay as the parent process: forward signals, reap zombies, mirror the exit code (automatic as PID 1)")
	masking.register(cmd, g, "; implies --supervise")
	cmd.Flags().DurationVar(&stopTimeout, "stop-timeout", 10*time.Second, "with --supervise: how long the child has to exit after a forwarded SIGTERM before SIGKILL")
	return cmd
}
