package main

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/envexample"
	"github.com/keyward/keyward/internal/runner"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/render"
)

func newEnvExampleCmd(g *globals) *cobra.Command {
	var out string
	var check bool
	cmd := &cobra.Command{
		Use:   "env-example -c FILE [-o FILE] [--check]",
		Short: "Write the .env.example of a config: its variables, without values",
		Long: `env-example writes the .env.example for a config: every variable that keyward
exec and keyward agent hand the workload (the config's env: entries, or every
secret under its own name without an env: section, and KEYWARD_TOKEN_<NAME>
for each token), in the config's order, each with an empty value and a
comment naming its reference. It holds no value, so it can be committed; a
developer copies it to a git-ignored .env for local work. It contacts no
secret store.

--check compares the file (-o FILE, default .env.example) with what the
config gives now and fails, naming the differences, when it is out of date.

Exit status: 0 ok (or up to date), 1 out of date or not written, 2 usage,
78 the config is invalid.`,
		Example: `  keyward env-example -c keyward.yaml -o .env.example

  # in CI
  keyward env-example -c keyward.yaml --check`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd.Context(), g, true)
			if err != nil {
				return err
			}
			vars, err := exampleVars(cfg)
			if err != nil {
				return configError(err)
			}
			want := envexample.Render(cfg.Path, vars)
			if check {
				return checkEnvExample(defaultString(out, ".env.example"), want, cfg.Path)
			}
			if out == "" {
				_, err := g.stdout.Write(want)
				return err
			}
			abs, err := filepath.Abs(out)
			if err != nil {
				return err
			}
			_, err = render.WriteFile(abs, want, render.Options{UID: -1, GID: -1})
			return err
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write to FILE (atomically, 0600) instead of stdout")
	cmd.Flags().BoolVar(&check, "check", false, "fail when FILE (-o, default .env.example) is out of date")
	return cmd
}

// exampleVars lists the variables cfg hands the workload, as exec builds
// them (runner.ChildEnv), each with what it holds, in config order.
func exampleVars(cfg *config.Config) ([]envexample.Var, error) {
	vals := map[string]providers.Resolved{}
	source := map[string]string{}
	line := map[string]int{}
	for v, secret := range cfg.EnvVars() {
		vals[secret] = providers.Resolved{}
		ref := cfg.Secrets[secret].Ref.String()
		source[v], line[v] = ref, cfg.EnvVarLine(v)
		if v != secret {
			source[v] = "secret " + secret + ": " + ref
		}
	}
	for name, tk := range cfg.Tokens {
		v := runner.TokenEnvName(name)
		source[v], line[v] = "OAuth2 access token "+name+" from "+tk.TokenURL, tk.Line
	}
	env, err := runner.ChildEnv(cfg, nil, nil, vals, func(added map[string]providers.Value) {
		for name := range cfg.Tokens {
			added[runner.TokenEnvName(name)] = providers.Value{}
		}
	})
	if err != nil {
		return nil, err
	}
	var vars []envexample.Var
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		vars = append(vars, envexample.Var{Name: name, Source: source[name]})
	}
	slices.SortFunc(vars, func(a, b envexample.Var) int {
		return cmp.Or(cmp.Compare(line[a.Name], line[b.Name]), cmp.Compare(a.Name, b.Name))
	})
	return vars, nil
}

// checkEnvExample fails, naming what differs, when file is not want.
func checkEnvExample(file string, want []byte, cfgPath string) error {
	have, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s does not exist: write it with keyward env-example -c %s -o %s", file, cfgPath, file)
	}
	if err != nil {
		return err
	}
	if diff := envexample.Diff(have, want); len(diff) > 0 {
		return fmt.Errorf("%s is out of date (%s): regenerate it with keyward env-example -c %s -o %s", file, strings.Join(diff, "; "), cfgPath, file)
	}
	return nil
}
