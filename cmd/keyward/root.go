package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/mask"
	"github.com/keyward/keyward/internal/runner"
	"github.com/keyward/keyward/providers"
)

// Exit codes (DESIGN §9). exec returns the child's own code.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
	exitConfig  = 78
)

// usageError is a problem of the command line (exit 2).
func usageError(format string, args ...any) error {
	return &runner.UsageError{Err: fmt.Errorf(format, args...)}
}

// configError is a problem of the configuration (exit 78).
func configError(err error) error { return &runner.ConfigError{Err: err} }

// env is the process environment, injected so tests can run commands in-process.
type env struct {
	getenv  func(string) string
	environ func() []string
}

// globals are the flags every command shares.
type globals struct {
	config    string
	logLevel  string
	logFormat string
	logger    *slog.Logger
	env       env
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
	// masker knows every value keyward holds (learn adds them as they
	// arrive): errOut, the logger and the HTTP server pass everything
	// keyward says through it, and exec --mask the child's output.
	masker *mask.Masker
	// errOut is stderr for keyward's own messages (log records, the final
	// error), through masker; stderr itself is the child's.
	errOut io.Writer
	// outputMasked is set once the child's output is masked: learn then
	// warns about values too short to be masked.
	outputMasked atomic.Bool
}

// learn hands values to the process's masker before anything else sees
// them (resolution results, rotated values, tokens, client secrets): from
// then on no log record, error or HTTP body of keyward carries them, in
// any form the masker knows, and exec --mask hides them in the child's
// output. Values too short to mask are reported when output is masked.
func (g *globals) learn(values map[string]providers.Resolved) {
	short := g.masker.Learn(maskSecrets(values)...)
	if len(short) > 0 && g.outputMasked.Load() {
		g.logger.Warn("values too short to mask; they appear in the output as they are", "secrets", short, "min_length", mask.DefaultMinLength)
	}
}

// redacted returns w behind the masker, for output of keyward's own that
// is written one whole message per Write (check's table, scan's report).
func (g *globals) redacted(w io.Writer) io.Writer { return g.masker.Redacting(w) }

const rootLong = `keyward fetches secrets from HashiCorp Vault, AWS Secrets Manager, GCP Secret
Manager, Kubernetes Secrets and local files, and hands them to a workload as
environment variables or as files with strict permissions.

A secret is named by a reference: vault://secret/app#password,
awssm://prod/stripe#api_key, gcpsm://PROJECT/SECRET, k8s://NAMESPACE/SECRET#key,
file:dev.yaml#db.password.

Exit codes: 0 ok, 1 runtime failure, 2 usage, 78 configuration error;
exec exits with the child's code (128+N when it was killed by signal N).

Environment: KEYWARD_CONFIG (default for -c), KEYWARD_LOG_LEVEL, KEYWARD_LOG_FORMAT.`

// optionalCommands are commands whose files a build tag can leave out; each
// adds itself here in an init function.
var optionalCommands []func(*globals) *cobra.Command

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "keyward",
		Short:         "Inject secrets into a workload as env vars or files",
		Long:          rootLong,
		SilenceErrors: true,
		SilenceUsage:  true,
		Example: `  # run a process with secrets in its environment, no config file needed
  DB_PASSWORD=vault://secret/payments/db#password keyward exec -- ./app

  # render the files of a config once (Kubernetes init container)
  keyward render --once -c keyward.yaml

  # validate a config and resolve every reference without printing values
  keyward check -c keyward.yaml`,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			l, err := newLogger(g.errOut, g.logLevel, g.logFormat)
			if err != nil {
				return usageError("%v", err)
			}
			g.logger = l
			return nil
		},
	}
	root.Version = buildInfo().String()
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	root.SetIn(g.stdin)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageError("%v", err)
	})
	pf := root.PersistentFlags()
	pf.StringVarP(&g.config, "config", "c", g.env.getenv("KEYWARD_CONFIG"), "config file (env KEYWARD_CONFIG)")
	pf.StringVar(&g.logLevel, "log-level", defaultString(g.env.getenv("KEYWARD_LOG_LEVEL"), "info"), "log level: debug, info, warn, error (env KEYWARD_LOG_LEVEL)")
	pf.StringVar(&g.logFormat, "log-format", defaultString(g.env.getenv("KEYWARD_LOG_FORMAT"), "text"), "log format: text or json (env KEYWARD_LOG_FORMAT)")

	root.AddCommand(newExecCmd(g), newAgentCmd(g), newRenderCmd(g), newCheckCmd(g), newGetCmd(g), newVersionCmd(g), newCICmd(g), newScanCmd(g), newAuditCmd(g), newEnvExampleCmd(g))
	for _, newCmd := range optionalCommands {
		root.AddCommand(newCmd(g))
	}
	setupCompletion(root)
	return root
}

func defaultString(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("invalid --log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("invalid --log-format %q: want text or json", format)
	}
}

// run executes keyward with args and returns the process exit code.
func run(ctx context.Context, args []string, e env, stdin io.Reader, stdout, stderr io.Writer) int {
	masker := mask.New(nil, mask.Options{})
	g := &globals{env: e, stdin: stdin, stdout: stdout, stderr: stderr, masker: masker, errOut: masker.Redacting(stderr)}
	// Until the command sets up its own (flags parsed), log lines go to
	// errOut too.
	g.logger = slog.New(slog.NewTextHandler(g.errOut, nil))
	root := newRoot(g)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var xe *runner.ExitError
	if errors.As(err, &xe) && xe.Err == nil {
		return xe.Code // the child's: keyward has nothing to add
	}
	code := exitRuntime
	var ue *runner.UsageError
	var ce *runner.ConfigError
	switch {
	case errors.As(err, &xe):
		code = xe.Code
	case errors.As(err, &ue):
		code = exitUsage
	case errors.As(err, &ce):
		code = exitConfig
	case isCobraUsage(err):
		code = exitUsage
	}
	msg := oneLine(err.Error())
	if code == exitUsage {
		msg += " (see 'keyward --help')"
	}
	format := g.logFormat
	if strings.HasPrefix(err.Error(), "unknown command") {
		// cobra stops before parsing flags: read --log-format from args.
		format = logFormatArg(args, format)
	}
	if format == "json" {
		// One JSON record like every log line before it, so a log
		// pipeline that parses keyward's stderr sees why it stopped.
		slog.New(slog.NewJSONHandler(g.errOut, nil)).Error(msg, "exit_code", code)
	} else {
		fmt.Fprintf(g.errOut, "keyward: %s\n", msg)
	}
	return code
}

// logFormatArg returns the value of the last --log-format in args before
// "--", or def when there is none.
func logFormatArg(args []string, def string) string {
	for i, a := range args {
		switch {
		case a == "--":
			return def
		case a == "--log-format" && i+1 < len(args):
			def = args[i+1]
		case strings.HasPrefix(a, "--log-format="):
			def = strings.TrimPrefix(a, "--log-format=")
		}
	}
	return def
}

// isCobraUsage recognises the argument errors cobra returns for unknown
// commands and wrong argument counts.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "unknown flag", "unknown shorthand flag"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// oneLine keeps an error message on one line.
func oneLine(s string) string {
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ")
}
