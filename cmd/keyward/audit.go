package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/mask"
)

func newAuditCmd(g *globals) *cobra.Command {
	var (
		format, allowFile, maxSize string
		minLen                     int
		envFileRefs, noGitignore   bool
	)
	cmd := &cobra.Command{
		Use:   "audit [-c FILE] [--format text|sarif] PATH...",
		Short: "Find hard-coded credentials in source trees and build outputs",
		Long: `audit searches the files and directories given, recursively, for credentials
that do not belong in files: API keys and tokens (AWS, GitHub, OpenAI,
Slack, Stripe, Google and some 200 more), private keys, JWTs, passwords in
connection strings and assignments. The rules are gitleaks' default rule set
(` + auditRulesVersion() + `), applied to text files. With a config (-c FILE) or
references in the environment, audit also resolves those secrets, as scan
does, and reports a file holding any of their values, in any form scan
knows, as that secret by name.

It prints FILE:LINE: RULE (…TAIL) for each finding, TAIL being the last
four characters of the credential (none for one shorter than 12); never the
value. --format sarif prints a SARIF 2.1.0 log instead.

Below each PATH, .gitignore files are honoured as git honours them (nested
ones too, and .git/info/exclude at a repository's top); .git directories are
never read. An allow-list records findings that are not leaks, one per line:

  PATTERN [RULE [TAIL]] -- REASON

PATTERN is a gitignore-style pattern relative to the allow-list's
directory, RULE a rule from the output or *, TAIL as printed (…Xy3Q); the
reason is required. audit reads ` + audit.AllowFile + ` at the top of each
directory PATH, or the file given with --allow.

Exit status: 0 nothing found, 1 a credential was found or a file could not
be read, 2 usage, 78 the config or the allow-list is invalid.`,
		Example: `  # before committing (see docs/local-development.md for a pre-commit hook)
  keyward audit .

  # a build output, also searching for the current values of the config's secrets
  keyward audit -c keyward.yaml dist/

  # for GitHub code scanning
  keyward audit --format sarif . > audit.sarif`,
		Args: needPaths("audit"),
		RunE: func(cmd *cobra.Command, args []string) error {
			limit, err := checkSearchFlags(format, maxSize, minLen)
			if err != nil {
				return err
			}
			allow, err := audit.LoadAllowList(allowFile, args)
			if err != nil {
				return configError(err)
			}
			ctx, set, done, err := knownValues(cmd, g, minLen, envFileRefs)
			if err != nil {
				return err
			}
			defer done()
			start := time.Now()
			rep, err := audit.Audit(ctx, args, audit.Options{MaxSize: limit, Logger: g.logger, Secrets: set, Allow: allow, NoGitignore: noGitignore})
			if err != nil {
				return err
			}
			return auditReport(g, rep, format, time.Since(start))
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "text", "output format: text, or sarif (SARIF 2.1.0)")
	f.StringVar(&allowFile, "allow", "", "allow-list file (default: "+audit.AllowFile+" at the top of each directory PATH)")
	f.BoolVar(&noGitignore, "no-gitignore", false, "also read what .gitignore files exclude")
	f.StringVar(&maxSize, "max-size", "256MiB", "skip files larger than this (B, KiB, MiB, GiB; 0 for no limit)")
	f.IntVar(&minLen, "min-length", mask.DefaultMinLength, "do not search for configured values shorter than this many bytes")
	envFileRefsFlag(cmd, &envFileRefs)
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"text", "sarif"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func auditRulesVersion() string { return "gitleaks " + audit.RulesVersion }

// auditReport prints rep's findings on stdout and its problems as
// warnings, and returns the error that sets the exit status.
func auditReport(g *globals, rep *audit.Report, format string, took time.Duration) error {
	stdout := g.redacted(g.stdout)
	var err error
	if format == "sarif" {
		err = audit.WriteSARIF(stdout, rep, sarifProgram())
	} else {
		err = audit.WriteText(stdout, rep)
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	for _, e := range rep.Unused {
		g.logger.Warn("allow-list entry matched nothing", "file", e.File, "line", e.Line)
	}
	for _, e := range rep.Errors {
		g.logger.Error("cannot audit", "path", e.Path, "err", e.Err)
	}
	for _, s := range rep.Skipped {
		if s.Reason != "symlink (not followed)" {
			g.logger.Warn("not audited", "path", s.Path, "reason", s.Reason)
		}
	}
	g.logger.Info("audited", "files", rep.Files, "bytes", rep.Bytes, "rules", rep.Rules, "allowed", rep.Allowed, "took", took.Round(time.Millisecond),
		"MBps", fmt.Sprintf("%.0f", float64(rep.Bytes)/1e6/max(took.Seconds(), 1e-9)))
	switch {
	case len(rep.Findings) > 0 && len(rep.Errors) > 0:
		return fmt.Errorf("found %d credentials; %d paths could not be audited (first: %v)", len(rep.Findings), len(rep.Errors), rep.Errors[0])
	case len(rep.Findings) > 0:
		return fmt.Errorf("found %d credentials in files", len(rep.Findings))
	case len(rep.Errors) > 0:
		return fmt.Errorf("%d paths could not be audited (first: %v)", len(rep.Errors), rep.Errors[0])
	}
	return nil
}
