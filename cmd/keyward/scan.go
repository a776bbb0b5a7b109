package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/mask"
	"github.com/keyward/keyward/internal/runner"
	"github.com/keyward/keyward/internal/sarif"
	"github.com/keyward/keyward/internal/scan"
)

func newScanCmd(g *globals) *cobra.Command {
	var maxSize string
	var minLen int
	var envFileRefs bool
	var format string
	cmd := &cobra.Command{
		Use:   "scan [-c FILE] [--format text|sarif] PATH...",
		Short: "Search files for secret values before they are published",
		Long: `scan resolves the config's secrets (and, as exec does, every environment
variable whose whole value is a reference) and searches the files and
directories given, recursively, for any of the values: raw, base64 (standard
or URL alphabet, at any alignment), hex, URL-encoded or JSON-escaped, and each
line of a multi-line value. Values shorter than --min-length are not searched
for.

For each occurrence it prints the file, the line (not for binary files), the
secret's name, the form and the byte offset; never the value. Symlinks below
a PATH are not followed, so the scan stays inside the trees given; devices,
FIFOs and sockets are skipped, and so are files larger than --max-size (with a
warning).

--format sarif prints a SARIF 2.1.0 log instead, for GitHub code scanning
and other SARIF consumers: a rule per secret found, a result per occurrence
(file, line, byte range, the form), unreadable paths as tool notifications,
and still no value.

Exit status: 0 nothing found, 1 a value was found, a secret could not be
fetched or a file could not be read, 2 usage, 78 the config is invalid.`,
		Example: `  # before uploading build artifacts
  keyward scan -c keyward.yaml dist/ build/logs/

  # without a config: the references in the environment
  DB_PASSWORD=vault://secret/db#password keyward scan ./out

  # for GitHub code scanning (upload keyward.sarif with codeql-action/upload-sarif)
  keyward scan -c keyward.yaml --format sarif dist/ > keyward.sarif`,
		Args: needPaths("scan"),
		RunE: func(cmd *cobra.Command, args []string) error {
			limit, err := checkSearchFlags(format, maxSize, minLen)
			if err != nil {
				return err
			}
			ctx, set, done, err := knownValues(cmd, g, minLen, envFileRefs)
			if err != nil {
				return err
			}
			defer done()
			if set == nil {
				return usageError("nothing to scan for: give a config with secrets (-c FILE) or references in the environment")
			}
			if set.Matcher().Empty() {
				return errors.New("nothing to scan for: every value is shorter than --min-length")
			}
			start := time.Now()
			rep, err := scan.Scan(ctx, set, args, scan.Options{MaxSize: limit, Logger: g.logger})
			if err != nil {
				return err
			}
			return scanReport(g, rep, format, time.Since(start))
		},
	}
	cmd.Flags().StringVar(&maxSize, "max-size", "256MiB", "skip files larger than this (B, KiB, MiB, GiB; 0 for no limit)")
	cmd.Flags().IntVar(&minLen, "min-length", mask.DefaultMinLength, "do not search for values shorter than this many bytes")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text, or sarif (SARIF 2.1.0)")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"text", "sarif"}, cobra.ShellCompDirectiveNoFileComp))
	envFileRefsFlag(cmd, &envFileRefs)
	return cmd
}

// needPaths is the Args of scan and audit, which want at least one PATH.
func needPaths(name string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) == 0 {
			return usageError("%s needs at least one PATH: keyward %s [-c FILE] PATH...", name, name)
		}
		return nil
	}
}

// checkSearchFlags checks the --format, --max-size and --min-length of scan
// and audit, and returns the size limit that --max-size gives.
func checkSearchFlags(format, maxSize string, minLen int) (int64, error) {
	if format != "text" && format != "sarif" {
		return 0, usageError("invalid --format %q: want text or sarif", format)
	}
	limit, err := parseSize(maxSize)
	if err != nil {
		return 0, usageError("--max-size: %v", err)
	}
	if minLen < mask.MinPatternLength {
		return 0, usageError("--min-length must be at least %d", mask.MinPatternLength)
	}
	return limit, nil
}

// knownValues resolves the values that scan and audit search for: the
// config's secrets (-c) and, as exec does, the environment's references.
// The set is nil when there are none; values shorter than minLen are left
// out of it, with a warning. ctx ends with SIGINT or SIGTERM, until done;
// done also closes the providers.
func knownValues(cmd *cobra.Command, g *globals, minLen int, envFileRefs bool) (ctx context.Context, set *mask.Set, done func(), err error) {
	cfg, err := loadConfig(cmd.Context(), g, false)
	if err != nil {
		return nil, nil, nil, err
	}
	r, err := newRunner(g, cfg, runner.Options{EnvRefs: true, EnvFileRefs: envFileRefs, FileGroup: -1})
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, stop := runner.StopOnSignal(cmd.Context())
	done = func() {
		stop()
		r.Close()
	}
	if len(r.Refs()) == 0 {
		return ctx, nil, done, nil
	}
	got, err := r.Once(ctx, runner.OnceOptions{})
	if err != nil {
		done()
		return nil, nil, nil, err
	}
	// The process's masker has learnt exactly these values (at the
	// default length): its Set serves unless minLen differs.
	set = g.masker.Set()
	if minLen != mask.DefaultMinLength {
		set = mask.NewSet(maskSecrets(got.Values), minLen)
	}
	if skipped := set.Skipped(); len(skipped) > 0 {
		g.logger.Warn("values too short to search for", "secrets", skipped, "min_length", minLen)
	}
	return ctx, set, done, nil
}

// sarifProgram names keyward in the SARIF logs of scan and audit.
func sarifProgram() sarif.Program {
	return sarif.Program{Name: "keyward", Version: buildInfo().Version, InformationURI: "https://github.com/keyward/keyward"}
}

// scanReport prints rep's hits on stdout, as text lines or a SARIF log, and
// its problems as warnings, and returns the error that sets the exit status.
func scanReport(g *globals, rep *scan.Report, format string, took time.Duration) error {
	secrets, files := map[string]bool{}, map[string]bool{}
	stdout := g.redacted(g.stdout)
	if format == "sarif" {
		if err := scan.WriteSARIF(stdout, rep, sarifProgram()); err != nil {
			return fmt.Errorf("write SARIF: %w", err)
		}
	}
	for _, h := range rep.Hits {
		secrets[h.Secret], files[h.Path] = true, true
		if format == "sarif" {
			continue
		}
		if h.Line > 0 {
			fmt.Fprintf(stdout, "%s:%d: %s (%s, offset %d)\n", h.Path, h.Line, h.Secret, h.Kind, h.Offset)
		} else {
			fmt.Fprintf(stdout, "%s: %s (%s, offset %d)\n", h.Path, h.Secret, h.Kind, h.Offset)
		}
	}
	for _, s := range rep.Skipped {
		if strings.Contains(s.Reason, "size limit") {
			g.logger.Warn("not scanned", "path", s.Path, "reason", s.Reason)
		}
	}
	for _, e := range rep.Errors {
		g.logger.Error("cannot scan", "path", e.Path, "err", e.Err)
	}
	g.logger.Info("scanned", "files", rep.Files, "bytes", rep.Bytes, "skipped", len(rep.Skipped), "took", took.Round(time.Millisecond),
		"MBps", fmt.Sprintf("%.0f", float64(rep.Bytes)/1e6/max(took.Seconds(), 1e-9)))
	var msgs []string
	if n := len(rep.Hits) + rep.Dropped; n > 0 {
		msgs = append(msgs, fmt.Sprintf("found %d occurrences of %d secrets in %d files", n, len(secrets), len(files)))
	}
	if len(rep.Errors) > 0 {
		msgs = append(msgs, fmt.Sprintf("%d paths could not be scanned (first: %v)", len(rep.Errors), rep.Errors[0]))
	}
	if len(msgs) > 0 {
		return errors.New(strings.Join(msgs, "; "))
	}
	return nil
}

// parseSize parses "123", "64KiB", "256MiB", "1GiB" (also K, M, G, KB, MB,
// GB as powers of 1024); 0 means no limit (returned as -1).
func parseSize(s string) (int64, error) {
	num := strings.TrimRight(s, "KMGiBkmgb")
	unit := strings.ToLower(s[len(num):])
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	mult := map[string]int64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("invalid size unit in %q", s)
	}
	if n == 0 {
		return -1, nil
	}
	return n * mult, nil
}
