package main

import (
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/harden"
	"github.com/keyward/keyward/providers"
)

func newGetCmd(g *globals) *cobra.Command {
	var newline bool
	cmd := &cobra.Command{
		Use:   "get [-c FILE] REFERENCE",
		Short: "Print one secret value to stdout, for scripts",
		Long: `get resolves one reference and writes its value to stdout, byte for byte (add
-n for a trailing newline). With -c, the provider instances declared in the
config are available and file: paths are relative to the config's directory.`,
		Example: `  keyward get file:examples/local/dev.yaml#db.password
  PGPASSWORD="$(keyward get vault://secret/payments/db#password)" psql …`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError("get takes exactly one reference, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := providers.Parse(args[0])
			if err != nil {
				return usageError("%v", err)
			}
			cfg, err := loadConfig(g, false)
			if err != nil {
				return err
			}
			if err := harden.DisableCoreDumps(); err != nil {
				g.logger.Warn("could not disable core dumps", "err", err)
			}
			s, err := newSession(g, cfg)
			if err != nil {
				return err
			}
			defer s.set.Close()
			if err := s.set.CheckRef(ref); err != nil {
				return usageError("%v", err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := s.set.Resolve(ctx, map[string]providers.Ref{"reference": ref})
			if err != nil {
				var re *providers.ResolveError
				if errors.As(err, &re) && len(re.Failures) == 1 {
					return re.Failures[0].Err
				}
				return err
			}
			out := res["reference"].Value.Bytes()
			if newline {
				out = append(append([]byte(nil), out...), '\n')
			}
			_, err = g.stdout.Write(out)
			return err
		},
	}
	cmd.Flags().BoolVarP(&newline, "newline", "n", false, "append a newline to the value")
	return cmd
}
