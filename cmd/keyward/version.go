package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/version"
	"github.com/keyward/keyward/providers"
)

// buildInfo is what `keyward version` reports: the binary's version and
// the provider kinds compiled into it.
func buildInfo() version.Info {
	in := version.Get()
	in.Providers = providers.Kinds()
	return in
}

func newVersionCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version [-o text|json]",
		Short: "Print keyward's version, commit, Go version and compiled-in providers",
		Long: `version prints the release version, the commit and its date, the Go version,
the platform and the providers compiled into this binary (build tags such as
no_vault leave some out). For a binary built with go install, the version,
commit and date come from the build information Go embeds.

-o json prints one JSON object with the keys version, commit, date,
go_version, platform and providers (and modified, for a build from a tree
with uncommitted changes).`,
		Example: "  keyward version\n  keyward version -o json | jq -r .version\n  keyward --version",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			in := buildInfo()
			switch output {
			case "text":
				_, err := fmt.Fprintf(g.stdout, "%s\nproviders: %s\n", in, strings.Join(in.Providers, " "))
				return err
			case "json":
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(in)
			default:
				return usageError("invalid -o %q: want text or json", output)
			}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}
