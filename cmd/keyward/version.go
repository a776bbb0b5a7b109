package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/version"
)

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print keyward's version",
		Example: "  keyward version",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(g.stdout, version.String())
			return err
		},
	}
}
