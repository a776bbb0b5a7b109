package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/harden"
	"github.com/keyward/keyward/internal/mask"
	"github.com/keyward/keyward/internal/readfile"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/render"
)

func newCheckCmd(g *globals) *cobra.Command {
	var offline bool
	var keyFile string
	cmd := &cobra.Command{
		Use:   "check -c FILE",
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

With --offline it only validates: config syntax, references and options, templates.`,
		Example: `  keyward check -c keyward.yaml
  keyward check --offline -c keyward.yaml   # no provider is contacted

  # compare two environments: run in each with the same key
  head -c 32 /dev/urandom | base64 > fp.key
  keyward check -c keyward.yaml --fingerprint-key-file fp.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(g, true)
			if err != nil {
				return err
			}
			fpKey, err := fingerprintKey(cmd.Context(), keyFile, g.env.getenv(fingerprintKeyEnv))
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
			// The child's environment as exec and agent would build it
			// (without the parent's variables and the tokens, which check
			// does not fetch).
			if _, err := childEnvironment(nil, nil, cfg, res, nil); err != nil {
				return err
			}
			for _, name := range sortedKeys(res) {
				if uses := wholeStructuredUses(cfg, name, res[name]); len(uses) > 0 {
					g.logger.Warn("structured secret used whole where one value is expected: it is handed on as the JSON of all its fields; add #FIELD to its reference to pick one (ignore this if the whole object is meant)",
						"secret", name, "used_as", strings.Join(uses, ", "), "fields", len(res[name].Fields))
				}
			}
			for _, sec := range maskSecrets(res) {
				if n := len(sec.Value); n > 0 && n < mask.DefaultMinLength {
					g.logger.Warn("value shorter than the masking threshold: exec --mask and scan neither hide nor find it", "secret", sec.Name, "length", n, "threshold", mask.DefaultMinLength)
				}
			}
			stdout := g.redacted(g.stdout)
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			header := "NAME\tPROVIDER\tVERSION\tLENGTH"
			if fpKey != nil {
				header += "\tFINGERPRINT"
			} else {
				g.logger.Info("no fingerprints without a key: give --fingerprint-key-file or " + fingerprintKeyEnv + " to compare values across environments")
			}
			fmt.Fprintln(tw, header)
			for _, name := range sortedKeys(res) {
				r := res[name]
				version := r.Version
				if version == "" {
					version = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d", name, r.Ref.Scheme, version, r.Value.Len())
				if fpKey != nil {
					fmt.Fprintf(tw, "\t%s", r.Value.KeyedFingerprint(fpKey))
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
	return cmd
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
