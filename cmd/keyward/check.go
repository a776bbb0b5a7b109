package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/mask"
	"github.com/keyward/keyward/internal/readfile"
	"github.com/keyward/keyward/internal/runner"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/render"
)

func newCheckCmd(g *globals) *cobra.Command {
	var offline bool
	var keyFile, output string
	cmd := &cobra.Command{
		Use:   "check -c FILE [-o text|json]",
		Short: "Validate a config and resolve every reference without printing values",
		Long: `check validates a config file, resolves every reference in it and builds every
file in memory, without writing anything and without printing a value. For each
secret it prints its name, provider, version and length. It builds the child's
environment as exec and agent would, and warns about a structured secret
referenced without #field where one value is expected (env:, a raw file).

With a fingerprint key (--fingerprint-key-file FILE, or the key itself in
KEYWARD_FINGERPRINT_KEY; at least 16 bytes, a trailing newline is ignored) it
also prints a short HMAC-SHA256 of each value under that key, so environments
whose operators share the key can be compared without revealing secrets.
Without a key there is no fingerprint: a plain hash of a short value (a PIN, a
port, a word) gives the value away to anyone who tries the candidates.

With --offline it only validates: config syntax, references and options, templates.

-o json prints one JSON object instead of the table: config (the file),
resolved (false with --offline), files (how many), warnings (the config's,
each with line and message), and secrets, a list of objects with name,
reference (as written), provider (the instance name), version and length
(when resolved), fingerprint (with a key) and warnings (about that secret).
Warnings are logged to stderr as well. A config that fails prints no JSON:
the error goes to stderr (as JSON with --log-format json) and the exit code
says what kind it is.`,
		Example: `  keyward check -c keyward.yaml
  keyward check --offline -c keyward.yaml   # no provider is contacted
  keyward check -c keyward.yaml -o json | jq -r '.secrets[] | "\(.name) \(.length)"'

  # compare two environments: run in each with the same key
  head -c 32 /dev/urandom | base64 > fp.key
  keyward check -c keyward.yaml --fingerprint-key-file fp.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return usageError("invalid -o %q: want text or json", output)
			}
			cfg, err := loadConfig(cmd.Context(), g, true)
			if err != nil {
				return err
			}
			fpKey, err := fingerprintKey(cmd.Context(), keyFile, g.env.getenv(fingerprintKeyEnv))
			if err != nil {
				return err
			}
			r, err := newRunner(g, cfg, runner.Options{FileGroup: -1})
			if err != nil {
				return err
			}
			defer r.Close()
			if err := r.Check(); err != nil {
				return err
			}
			refs := r.Refs()
			report := checkReport{Config: cfg.Path, Files: len(cfg.Files), Warnings: []checkWarning{}}
			for _, w := range cfg.Warnings() {
				report.Warnings = append(report.Warnings, checkWarning{Line: w.Line, Message: w.Msg})
			}
			for _, name := range sortedKeys(refs) {
				r := refs[name]
				reference := r.Raw
				if reference == "" {
					reference = r.String()
				}
				report.Secrets = append(report.Secrets, checkSecret{Name: name, Reference: reference, Provider: r.Scheme, Warnings: []string{}})
			}
			if offline {
				if output == "json" {
					return writeJSON(g.redacted(g.stdout), report)
				}
				fmt.Fprintf(g.stdout, "%s: ok (%d secrets, %d files; not resolved)\n", cfg.Path, len(refs), len(cfg.Files))
				return nil
			}
			got, err := r.Once(cmd.Context(), runner.OnceOptions{})
			if err != nil {
				return err
			}
			res := got.Values
			if _, err := render.Build(r.Files(), res); err != nil {
				return err
			}
			// The child's environment as exec and agent would build it
			// (without the parent's variables and the tokens, which check
			// does not fetch).
			if _, err := runner.ChildEnv(cfg, nil, nil, res, nil); err != nil {
				return err
			}
			report.Resolved = true
			for i := range report.Secrets {
				sec := &report.Secrets[i]
				r := res[sec.Name]
				sec.Version = r.Version
				n := r.Value.Len()
				sec.Length = &n
				if fpKey != nil {
					sec.Fingerprint = r.Value.KeyedFingerprint(fpKey)
				}
				if uses := wholeStructuredUses(cfg, sec.Name, r); len(uses) > 0 {
					const msg = "structured secret used whole where one value is expected: it is handed on as the JSON of all its fields; add #FIELD to its reference to pick one (ignore this if the whole object is meant)"
					g.logger.Warn(msg, "secret", sec.Name, "used_as", strings.Join(uses, ", "), "fields", len(r.Fields))
					sec.Warnings = append(sec.Warnings, fmt.Sprintf("%s (used as %s; %d fields)", msg, strings.Join(uses, ", "), len(r.Fields)))
				}
			}
			for _, ms := range maskSecrets(res) {
				if n := len(ms.Value); n > 0 && n < mask.DefaultMinLength {
					const msg = "value shorter than the masking threshold: exec --mask and scan neither hide nor find it"
					g.logger.Warn(msg, "secret", ms.Name, "length", n, "threshold", mask.DefaultMinLength)
					name, field, _ := strings.Cut(ms.Name, "#")
					for i := range report.Secrets {
						if sec := &report.Secrets[i]; sec.Name == name {
							w := fmt.Sprintf("%s (length %d, threshold %d)", msg, n, mask.DefaultMinLength)
							if field != "" {
								w = "field " + field + ": " + w
							}
							sec.Warnings = append(sec.Warnings, w)
						}
					}
				}
			}
			if fpKey == nil {
				g.logger.Info("no fingerprints without a key: give --fingerprint-key-file or " + fingerprintKeyEnv + " to compare values across environments")
			}
			stdout := g.redacted(g.stdout)
			if output == "json" {
				return writeJSON(stdout, report)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			header := "NAME\tPROVIDER\tVERSION\tLENGTH"
			if fpKey != nil {
				header += "\tFINGERPRINT"
			}
			fmt.Fprintln(tw, header)
			for _, sec := range report.Secrets {
				version := sec.Version
				if version == "" {
					version = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d", sec.Name, sec.Provider, version, *sec.Length)
				if fpKey != nil {
					fmt.Fprintf(tw, "\t%s", sec.Fingerprint)
				}
				fmt.Fprintln(tw)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: ok (%d secrets resolved, %d files built)\n", cfg.Path, len(res), len(cfg.Files))
			return nil
		},
	}
	cmd.Flags().BoolVar(&offline, "offline", false, "validate only; contact no provider")
	cmd.Flags().StringVar(&keyFile, "fingerprint-key-file", "", "print an HMAC-SHA256 fingerprint of each value keyed by this file's content (at least 16 bytes; overrides "+fingerprintKeyEnv+")")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// checkReport is what keyward check -o json prints: names, references,
// versions, lengths and keyed fingerprints, never a value.
type checkReport struct {
	Config   string         `json:"config"`
	Resolved bool           `json:"resolved"`
	Files    int            `json:"files"`
	Warnings []checkWarning `json:"warnings"`
	Secrets  []checkSecret  `json:"secrets"`
}

// checkWarning is one of the config's warnings (config.Config.Warnings).
type checkWarning struct {
	Line    int    `json:"line"`
	Message string `json:"message"`
}

// checkSecret is one secret of a checkReport. Version and Length are
// absent when the secret was not resolved (--offline), Fingerprint when
// there is no fingerprint key.
type checkSecret struct {
	Name        string   `json:"name"`
	Reference   string   `json:"reference"`
	Provider    string   `json:"provider"`
	Version     string   `json:"version,omitempty"`
	Length      *int     `json:"length,omitempty"`
	Fingerprint string   `json:"fingerprint,omitempty"`
	Warnings    []string `json:"warnings"`
}

// writeJSON writes v to w as indented JSON in one Write, so a redacting
// writer sees the whole document at once.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// fingerprintKeyEnv holds a fingerprint key for keyward check itself.
const fingerprintKeyEnv = "KEYWARD_FINGERPRINT_KEY"

// maxFingerprintKeyFile bounds what is read of --fingerprint-key-file.
const maxFingerprintKeyFile = 4096

// fingerprintKey returns the key check fingerprints values with: the
// content of file when given, else envKey, without one trailing newline;
// nil when neither is set. The file is read as every credential file is
// (internal/readfile: a regular file, bounded, honouring ctx). A key shorter
// than providers.MinFingerprintKeyLen, or a file that cannot be read, is a
// usage error that never quotes the key.
func fingerprintKey(ctx context.Context, file, envKey string) ([]byte, error) {
	var key []byte
	source := fingerprintKeyEnv
	switch {
	case file != "":
		source = "--fingerprint-key-file " + file
		b, _, err := readfile.Read(ctx, file, readfile.Options{Max: maxFingerprintKeyFile})
		if err != nil {
			return nil, usageError("--fingerprint-key-file: %v", err)
		}
		key = b
	case envKey != "":
		key = []byte(envKey)
	default:
		return nil, nil
	}
	key = bytes.TrimSuffix(bytes.TrimSuffix(key, []byte("\n")), []byte("\r"))
	if len(key) < providers.MinFingerprintKeyLen {
		return nil, usageError("%s: the fingerprint key has %d bytes, want at least %d (e.g. head -c 32 /dev/urandom | base64)", source, len(key), providers.MinFingerprintKeyLen)
	}
	return key, nil
}

// wholeStructuredUses lists where cfg uses secret name, resolved as r, as
// a single value although it is a whole structured secret (an object of
// fields referenced without #field): as a variable of env: and as the
// content of a raw file. dotenv, json and yaml files take each field as
// its own key, and templates choose for themselves, so those are fine.
func wholeStructuredUses(cfg *config.Config, name string, r providers.Resolved) []string {
	if r.Fields == nil || r.Ref.Field != "" {
		return nil
	}
	var uses []string
	vars := cfg.EnvVars()
	for _, v := range sortedKeys(vars) {
		if vars[v] == name {
			uses = append(uses, "env "+v)
		}
	}
	for _, f := range cfg.Files {
		if f.Format == config.FormatRaw && f.Secret == name {
			uses = append(uses, "raw file "+f.Path)
		}
	}
	return uses
}
