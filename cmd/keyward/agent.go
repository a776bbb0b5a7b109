package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/child"
	"github.com/keyward/keyward/internal/runner"
)

// defaultShutdownTimeout is the default of --shutdown-timeout.
const defaultShutdownTimeout = 15 * time.Second

func newAgentCmd(g *globals) *cobra.Command {
	var w runner.WatchOptions
	var envFileRefs bool
	var fileGroup int
	var masking maskFlags
	cmd := &cobra.Command{
		Use:   "agent -c FILE [-- COMMAND [ARG...]]",
		Short: "Render secrets and keep them fresh until SIGTERM (sidecar, daemon)",
		Long: `agent resolves every secret of the config and renders its files (retrying until
--init-timeout; an invalid reference, or a file: source that is not a regular
file or is over max_size, fails at once), then keeps them fresh until it receives SIGTERM or SIGINT: it
watches the secrets that can be watched (file), renews leases, polls the others
(watch.interval, default 30s with a cheap version probe, 5m without), re-renders
only the files a rotation affects, and runs the on_change actions.

Failures keep the previous files and values; the failing secret is retried with
backoff and logged at most once a minute. With a server: section, /healthz,
/readyz (first render done, no lease or token expired) and /metrics are served.

tokens: are obtained before the child starts and refreshed at about 2/3 of
their lifetime into their files and onto the server's GET /v1/tokens/NAME
(POST /v1/tokens/NAME/refresh forces a refresh). The child also gets
KEYWARD_TOKEN_<NAME> (the token at its start: env does not follow refreshes),
KEYWARD_TOKEN_ENDPOINT and, on a TCP listener, KEYWARD_TOKEN_GUARD_FILE (the
0600 file with the value the X-Keyward-Token header must carry; set it in
keyward's environment to choose the file, by default
/run/keyward/endpoint-token-HOST-PORT as root; each agent locks its own).

With -- COMMAND the agent also runs the workload as its child, like
keyward exec with a watch: the child gets the config's variables as exec gives
them (env:, or every secret under its own name when there is neither env: nor
files:), the signals keyward receives, on_change signals and restarts (a
restart gives it a fresh environment), and keyward exits with its code.
Without a command, on_change may only run commands (signal and restart need a
child).

With --mask (the default when CI is set; --no-mask turns it off) the child's
and the on_change commands' stdout and stderr pass through keyward, which
replaces every secret value and its encoded forms with ***, as exec --mask
does: values that rotate in are masked before the child or a file can see
them, values they replaced stay masked, and a restarted child's output is
masked like the first one's. The child's output is then a pipe, not the
terminal.

Shutdown is bounded: a child still running --stop-timeout after a forwarded
SIGTERM is killed, and the agent's own shutdown (in-flight fetches, on_change
commands, the server) then takes at most --shutdown-timeout, whatever a store
does. Without a child, SIGQUIT prints every goroutine's stack and exits 2, as
Go programs do.

Exit status: 0 after SIGTERM, 1 a secret could not be fetched in time or a
runtime failure (also a shutdown cut short by --shutdown-timeout), 78 the
config is invalid; with a command, the command's.`,
		Example: `  # sidecar: render into a shared volume and keep it fresh
  keyward agent -c /etc/keyward/keyward.yaml

  # daemon around a workload that reloads on SIGHUP
  keyward agent -c keyward.yaml -- nginx -g 'daemon off;'

  # a workload whose logs must not show a secret, also after a rotation
  keyward agent --mask -c keyward.yaml -- ./server --verbose`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if n := cmd.ArgsLenAtDash(); n > 0 || n < 0 && len(args) > 0 {
				return usageError("agent takes no arguments before --: keyward agent -c FILE [-- COMMAND [ARG...]]")
			}
			cfg, err := loadConfig(cmd.Context(), g, true)
			if err != nil {
				return err
			}
			r, err := newRunner(g, cfg, runner.Options{EnvRefs: len(args) > 0, EnvFileRefs: envFileRefs, FileGroup: fileGroup})
			if err != nil {
				return err
			}
			defer r.Close()
			w.RetryInit = true
			w.Output = masking.output(g)
			return r.Run(cmd.Context(), args, w)
		},
	}
	cmd.Flags().SetInterspersed(false)
	envFileRefsFlag(cmd, &envFileRefs)
	fileGroupFlag(cmd, &fileGroup)
	masking.register(cmd, g, "")
	cmd.Flags().DurationVar(&w.InitTimeout, "init-timeout", runner.DefaultInitTimeout, "how long to keep retrying the first fetch and render before giving up (0: no limit)")
	cmd.Flags().DurationVar(&w.StopTimeout, "stop-timeout", child.DefaultStopTimeout, "with a command: how long the child has to exit after its stop signal before SIGKILL (shutdown, and restarts without on_change.timeout)")
	cmd.Flags().DurationVar(&w.ShutdownTimeout, "shutdown-timeout", defaultShutdownTimeout, "how long the agent's own shutdown may take after SIGTERM, or after the child exited (in-flight fetches, on_change commands, the server); keyward exits when it is over")
	return cmd
}
