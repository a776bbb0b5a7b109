package main

import (
	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/runner"
)

func newRenderCmd(g *globals) *cobra.Command {
	var once bool
	fileGroup := -1
	cmd := &cobra.Command{
		Use:   "render --once -c FILE",
		Short: "Resolve every secret and write the config's files, then exit",
		Long: `render resolves every secret of the config and writes its files, then exits:
the Kubernetes init container mode.

Nothing is written unless every reference resolves and every file can be
built. Files are written atomically with mode 0600 (or the configured mode),
never through a symlink, and a file whose content did not change is left alone.
Each token of tokens: that has a file: is obtained once and written (run
keyward agent as a sidecar to keep it fresh).
Exit status: 0 rendered, 1 a secret could not be fetched or a file could not be
written (the previous files stay intact), 78 the config is invalid.`,
		Example: `  # init container: render into an in-memory volume, then exit
  keyward render --once -c /etc/keyward/keyward.yaml

  # try the local example
  keyward render --once -c examples/local/keyward.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd.Context(), g, true)
			if err != nil {
				return err
			}
			r, err := newRunner(g, cfg, runner.Options{FileGroup: fileGroup})
			if err != nil {
				return err
			}
			defer r.Close()
			// Tokens with a file are fetched once and written (an init
			// container has no one to refresh them: run keyward agent as a
			// sidecar for that).
			withFile := func(t config.Token) bool { return t.File != "" }
			res, err := r.Once(cmd.Context(), runner.OnceOptions{Render: true, Tokens: withFile})
			if err != nil {
				return err
			}
			g.logger.Info("rendered", "secrets", len(res.Values), "files", len(cfg.Files), "changed", len(res.Rendered.Changed), "unchanged", len(res.Rendered.Unchanged), "leftovers_removed", len(res.Rendered.Removed), "tokens", len(runner.TokenSpecs(cfg, withFile)))
			return nil
		},
	}
	cmd.Flags().BoolVar(&once, "once", true, "render once and exit (the init-container mode; always true for render)")
	fileGroupFlag(cmd, &fileGroup)
	return cmd
}
