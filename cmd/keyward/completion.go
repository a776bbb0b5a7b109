package main

import "github.com/spf13/cobra"

// setupCompletion enables `keyward completion bash|zsh|fish|powershell`
// (cobra's generated scripts, which ask the binary itself through its
// hidden __complete command) and completes the shared flags' values. It
// runs after every command is added.
func setupCompletion(root *cobra.Command) {
	root.CompletionOptions.DisableDefaultCmd = false
	noFiles := cobra.ShellCompDirectiveNoFileComp
	_ = root.MarkPersistentFlagFilename("config", "yaml", "yml")
	_ = root.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions([]string{"debug", "info", "warn", "error"}, noFiles))
	_ = root.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions([]string{"text", "json"}, noFiles))
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		c.Example = "  source <(keyward completion bash)\n  keyward completion zsh > \"${fpath[1]}/_keyward\"\n  keyward completion fish > ~/.config/fish/completions/keyward.fish"
		// An unknown shell is a usage error, not cobra's help and exit 0.
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return usageError("unknown shell %q for completion: want bash, zsh, fish or powershell", args[0])
		}
	}
}
