package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/harden"
	"github.com/keyward/keyward/internal/mask"
	"github.com/keyward/keyward/render"
)

func newCheckCmd(g *globals) *cobra.Command {
	var offline bool
	cmd := &cobra.Command{
		Use:   "check -c FILE",
		Short: "Validate a config and resolve every reference without printing values",
		Long: `check validates a config file, resolves every reference in it and builds every
file in memory, without writing anything and without printing a value. For each
secret it prints its name, provider, version, length and a short SHA-256
fingerprint, so two environments can be compared without revealing secrets.

With --offline it only validates: config syntax, references and options, templates.`,
		Example: `  keyward check -c keyward.yaml
  keyward check --offline -c keyward.yaml   # no provider is contacted`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(g, true)
			if err != nil {
				return err
			}
			s, err := newSession(g, cfg)
			if err != nil {
				return err
			}
			defer s.set.Close()
			refs := configRefs(cfg)
			if err := s.check(refs); err != nil {
				return err
			}
			if offline {
				fmt.Fprintf(g.stdout, "%s: ok (%d secrets, %d files; not resolved)\n", cfg.Path, len(refs), len(cfg.Files))
				return nil
			}
			if err := harden.DisableCoreDumps(); err != nil {
				g.logger.Warn("could not disable core dumps", "err", err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := s.resolve(ctx, refs)
			if err != nil {
				return err
			}
			if _, err := render.Build(renderFiles(cfg), res); err != nil {
				return err
			}
			for _, sec := range maskSecrets(res) {
				if n := len(sec.Value); n > 0 && n < mask.DefaultMinLength {
					g.logger.Warn("value shorter than the masking threshold: exec --mask and scan neither hide nor find it", "secret", sec.Name, "length", n, "threshold", mask.DefaultMinLength)
				}
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPROVIDER\tVERSION\tLENGTH\tFINGERPRINT")
			for _, name := range sortedKeys(res) {
				r := res[name]
				version := r.Version
				if version == "" {
					version = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", name, r.Ref.Scheme, version, r.Value.Len(), r.Value.Fingerprint())
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s: ok (%d secrets resolved, %d files built)\n", cfg.Path, len(res), len(cfg.Files))
			return nil
		},
	}
	cmd.Flags().BoolVar(&offline, "offline", false, "validate only; contact no provider")
	return cmd
}
