package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/runner"
	"github.com/keyward/keyward/providers"
)

func newGetCmd(g *globals) *cobra.Command {
	var newline bool
	cmd := &cobra.Command{
		Use:   "get [-c FILE] NAME|REFERENCE",
		Short: "Print one secret value to stdout, for scripts",
		Long: `get resolves one secret and writes its value to stdout, byte for byte (add -n
for a trailing newline). The secret is a name declared under secrets: in the
config (-c FILE or KEYWARD_CONFIG), or a reference. A name never contains ':'
and a reference always does, so no argument is both; an argument that is a
name of the config is always read as that name.

With -c, the provider instances declared in the config are available and
file: paths are relative to the config's directory.`,
		Example: `  keyward get -c examples/local/keyward.yaml DB_PASSWORD
  keyward get file:examples/local/dev.yaml#db.password
  PGPASSWORD="$(keyward get vault://secret/payments/db#password)" psql …`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError("get takes exactly one secret name or reference, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd.Context(), g, false)
			if err != nil {
				return err
			}
			ref, name, err := getTarget(cfg, args[0])
			if err != nil {
				return err
			}
			r, err := newRunner(g, cfg, runner.Options{Refs: map[string]providers.Ref{args[0]: ref}, FileGroup: -1})
			if err != nil {
				return err
			}
			defer r.Close()
			if name == "" {
				// A reference from the command line: a problem is a usage error.
				if err := r.Providers().CheckRef(ref); err != nil {
					return usageError("%v", err)
				}
			}
			// A secret of the config: Once reports a problem as the config's, with its line.
			got, err := r.Once(cmd.Context(), runner.OnceOptions{})
			if err != nil {
				var re *providers.ResolveError
				if name == "" && errors.As(err, &re) && len(re.Failures) == 1 {
					return fmt.Errorf("%s: %w", ref, re.Failures[0].Err)
				}
				return err // names the secret and its reference
			}
			res := got.Values
			out := res[args[0]].Value.Bytes()
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

// getTarget reads get's argument: the secret of cfg named arg, with its
// name, or else arg parsed as a reference (name ""). An argument that
// cannot be a reference (no ':') is taken for a secret name, and the error
// says what is missing: the config, or the name in it.
func getTarget(cfg *config.Config, arg string) (ref providers.Ref, name string, err error) {
	if cfg != nil {
		if sec, ok := cfg.Secrets[arg]; ok {
			return sec.Ref, arg, nil
		}
	}
	if !strings.Contains(arg, ":") {
		if cfg == nil {
			return providers.Ref{}, "", usageError("%q is not a reference, and without a config (-c FILE or KEYWARD_CONFIG) there is no secret of that name", arg)
		}
		_, err := cfg.LookupSecret(arg)
		return providers.Ref{}, "", usageError("%v", err)
	}
	ref, err = providers.Parse(arg)
	if err != nil {
		return providers.Ref{}, "", usageError("%v", err)
	}
	return ref, "", nil
}
