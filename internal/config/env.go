package config

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/keyward/keyward/providers"
)

// EnvSource is the Error.Path of the errors FromEnv returns.
const EnvSource = "environment"

// EnvOptions says which environment values FromEnv takes for references.
type EnvOptions struct {
	// Schemes are the provider instance names a reference may use: the
	// builtin kinds and the config's declared instances
	// (providers.Set.Schemes). nil means providers.KnownKinds().
	Schemes []string
	// FileRefs makes file: values references too (--env-file-refs, or
	// env_file_refs: true in the config). Off by default, since file: URIs
	// are ordinary values for SQLite, libpq and JDBC.
	FileRefs bool
	// Check validates a parsed reference without I/O, as
	// providers.Set.CheckRef does; nil accepts every reference that parses.
	Check func(providers.Ref) error
}

// EnvWarning is about a variable FromEnv left unchanged although its value
// looks like a mistyped or disabled reference.
type EnvWarning struct {
	// Var is the variable's name.
	Var string
	// Msg says what the value looks like and what was probably meant (the
	// closest scheme). It never holds any part of the value.
	Msg string
}

// FromEnv finds the references in an environment (zero-config mode). A
// variable is a reference only when the user clearly meant one: its whole
// value starts with SCHEME:// for a scheme in opts.Schemes other than
// file, or is written in a compatibility spelling (the ECS ARN
// arn:aws:secretsmanager:…, sm://, gcp:secretmanager:, and the bank-vaults
// form vault:MOUNT/PATH#KEY, which needs a '/' and a #KEY so that a
// host:port such as vault:8200 stays a plain value), or, with
// opts.FileRefs, starts with file:. Every other value is left alone, to
// reach the child unchanged; the ones that look like a mistyped reference
// (a scheme one edit away from a known one, a missing '/', upper case)
// are returned as warnings naming the variable and the closest spelling.
// For duplicate variables the last one wins, as in os/exec.
//
// A value clearly meant as a reference that does not parse, or that
// opts.Check refuses, is an error: an *Error with Path EnvSource listing
// every such variable with the position of the problem. Neither the error
// nor a warning ever holds any part of the value, which may be a real
// secret (a query string of a DSN carries passwords).
func FromEnv(environ []string, opts EnvOptions) (map[string]providers.Ref, []EnvWarning, error) {
	schemes := opts.Schemes
	if schemes == nil {
		schemes = providers.KnownKinds()
	}
	vals := map[string]string{}
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			continue
		}
		vals[name] = val
	}
	refs := map[string]providers.Ref{}
	var warnings []EnvWarning
	var probs problems
	for _, name := range sortedKeys(vals) {
		val := vals[name]
		scheme, meant := meantAsRef(val, schemes, opts.FileRefs)
		if !meant {
			if msg := nearMiss(val, schemes, opts.FileRefs); msg != "" {
				warnings = append(warnings, EnvWarning{Var: name, Msg: msg})
			}
			continue
		}
		ref, err := providers.Parse(val)
		if err != nil {
			var pe *providers.ParseError
			if errors.As(err, &pe) {
				hidden := *pe
				hidden.Hide, hidden.Ref = true, ""
				probs.add(0, name, "%s reference: %v", scheme, &hidden)
			} else {
				probs.add(0, name, "invalid %s reference", scheme)
			}
			continue
		}
		if opts.Check != nil {
			if err := opts.Check(ref); err != nil {
				if errors.Is(err, providers.ErrUnavailable) {
					probs.add(0, name, "provider %s is not available in this build", ref.Scheme)
				} else {
					// The check's message quotes the reference; it is
					// left out, and keyward get shows it.
					probs.add(0, name, "invalid %s reference (the details are not shown, since an environment value may be a secret: keyward get REFERENCE shows them)", ref.Scheme)
				}
				continue
			}
		}
		refs[name] = ref
	}
	if err := probs.err(EnvSource); err != nil {
		return nil, warnings, err
	}
	return refs, warnings, nil
}

// meantAsRef reports whether val is clearly meant as a reference (see
// FromEnv) and under which scheme.
func meantAsRef(val string, schemes []string, fileRefs bool) (string, bool) {
	scheme := providers.SchemeOf(val)
	if scheme == "" || !slices.Contains(schemes, scheme) {
		return "", false
	}
	if !strings.HasPrefix(val, scheme+":") {
		return scheme, true // arn:aws:secretsmanager:, sm://, gcp:secretmanager:
	}
	rest := val[len(scheme)+1:]
	switch {
	case scheme == "file":
		return scheme, fileRefs
	case strings.HasPrefix(rest, "//"):
		return scheme, true
	case scheme == "vault":
		return scheme, bankVaultsForm(rest)
	}
	return "", false
}

// bankVaultsForm reports whether rest (what follows "vault:") has the shape
// of bank-vaults' MOUNT/PATH#KEY[#VERSION]: a relative path with a '/', a
// key, and no white space.
func bankVaultsForm(rest string) bool {
	path, key, ok := strings.Cut(rest, "#")
	return ok && path != "" && path[0] != '/' && key != "" && strings.Contains(path, "/") && !strings.ContainsAny(rest, " \t\r\n")
}

// ordinarySchemes are URI schemes of everyday values that are never
// reported as a near miss of a keyward scheme (s3 is one edit from sm,
// kms from k8s).
var ordinarySchemes = []string{
	"amqp", "amqps", "dns", "etcd", "ftp", "ftps", "git", "grpc", "gs", "h2", "http", "https",
	"imap", "imaps", "jdbc", "kafka", "kms", "ldap", "ldaps", "mongodb", "mysql", "nats",
	"postgres", "postgresql", "redis", "rediss", "s3", "sftp", "smtp", "smtps", "sqlite",
	"ssh", "tcp", "udp", "unix", "ws", "wss",
}

// Compatibility spellings' service names, for near misses such as
// arn:aws:secretmanager: (missing s).
const (
	awsService = "secretsmanager"
	gcpService = "secretmanager"
)

// nearMiss returns a warning for a value that was not taken for a
// reference but looks like a mistyped one, or "". The message names the
// closest spelling keyward knows, never any part of val.
func nearMiss(val string, schemes []string, fileRefs bool) string {
	const left = "; the value is passed on unchanged"
	// file: references that are not enabled.
	if !fileRefs && slices.Contains(schemes, "file") && strings.HasPrefix(val, "file:") && strings.Contains(val, "#") {
		if _, err := providers.Parse(val); err == nil {
			return "looks like a file: reference, which is resolved from the environment only with --env-file-refs (or env_file_refs: true)" + left
		}
	}
	// Compatibility spellings with a misspelt service.
	if parts := strings.SplitN(val, ":", 4); len(parts) == 4 && parts[0] == "arn" && strings.HasPrefix(parts[1], "aws") &&
		parts[2] != awsService && editDistance(strings.ToLower(parts[2]), awsService) <= 2 {
		return "looks like a mistyped reference (closest: arn:aws:" + awsService + ":)" + left
	}
	if parts := strings.SplitN(val, ":", 3); len(parts) == 3 && strings.EqualFold(parts[0], "gcp") &&
		!strings.HasPrefix(val, "gcp:"+gcpService+":") && editDistance(strings.ToLower(parts[1]), gcpService) <= 2 {
		return "looks like a mistyped reference (closest: gcp:" + gcpService + ":)" + left
	}
	// The bank-vaults form without its #KEY.
	if rest, ok := strings.CutPrefix(val, "vault:"); ok && slices.Contains(schemes, "vault") && rest != "" &&
		rest[0] != '/' && (rest[0] < '0' || rest[0] > '9') && strings.Contains(rest, "/") && !strings.Contains(rest, "#") &&
		!strings.ContainsAny(rest, " \t\r\n") {
		return "looks like a bank-vaults reference without its key (closest: vault:MOUNT/PATH#KEY, or vault://MOUNT/PATH#KEY)" + left
	}
	// SCHEME:/ with a scheme close to a known one, in upper case, or
	// followed by one '/' instead of two.
	i := strings.Index(val, ":/")
	if i <= 0 || i > 64 {
		return ""
	}
	cand := val[:i]
	for j := 0; j < len(cand); j++ {
		c := cand[j]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return ""
		}
	}
	lower := strings.ToLower(cand)
	if slices.Contains(ordinarySchemes, lower) {
		return ""
	}
	best, bestDist := "", len(lower)+1
	for _, s := range schemes {
		if s == "file" && !fileRefs {
			continue
		}
		d := editDistance(lower, s)
		if d == 0 && lower == cand && strings.HasPrefix(val[i:], "://") {
			return "" // meant, or refused by meantAsRef for another reason
		}
		if d < bestDist || d == bestDist && s < best {
			best, bestDist = s, d
		}
	}
	limit := 1
	if len(best) >= 7 {
		limit = 2
	}
	if best == "" || bestDist > limit || len(best) < 3 && bestDist > 0 {
		return ""
	}
	return fmt.Sprintf("looks like a mistyped reference (closest scheme: %s://)%s", best, left)
}

// EnvNames returns the names of the variables FromEnv found, sorted: the
// variables whose values the caller replaces by the resolved secrets.
func EnvNames(refs map[string]providers.Ref) []string {
	names := make([]string, 0, len(refs))
	for name := range refs {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
