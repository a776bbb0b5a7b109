package csiprovider

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/keyward/keyward/internal/config"
)

// Attribute keys of a MountRequest: ConfigKey is the SecretProviderClass
// parameter that holds the keyward config; the others are set by the
// driver from the pod (the CSIDriver object's podInfoOnMount and
// tokenRequests).
const (
	ConfigKey            = "config"
	PodNameKey           = "csi.storage.k8s.io/pod.name"
	PodNamespaceKey      = "csi.storage.k8s.io/pod.namespace"
	PodUIDKey            = "csi.storage.k8s.io/pod.uid"
	ServiceAccountKey    = "csi.storage.k8s.io/serviceAccount.name"
	ServiceAccountTokens = "csi.storage.k8s.io/serviceAccount.tokens"
)

// configDir is the directory a SecretProviderClass's config is parsed in:
// its files' paths are made relative to it again, as the driver writes
// them under the pod's volume.
const configDir = "/keyward-csi"

// Pod is what the driver says of the pod being mounted.
type Pod struct {
	Name, Namespace, UID, ServiceAccount string
	// Tokens maps an audience to the pod's ServiceAccount token for it
	// (csi.storage.k8s.io/serviceAccount.tokens); empty when the CSIDriver
	// object requests none.
	Tokens map[string]Token
}

// Token is one ServiceAccount token the kubelet issued for the pod.
type Token struct {
	Token               string `json:"token"`
	ExpirationTimestamp string `json:"expirationTimestamp"`
}

// String never shows the token.
func (Token) String() string { return "REDACTED" }

// GoString never shows the token.
func (t Token) GoString() string { return t.String() }

// mountFile is one file of the config as the driver writes it.
type mountFile struct {
	// rel is the path under the pod's volume.
	rel  string
	mode os.FileMode
}

// request is a parsed MountRequest.
type request struct {
	pod   Pod
	cfg   *config.Config
	files []mountFile
	// providersYAML is the config's providers: section as written.
	providersYAML []byte
}

// parseRequest reads the attributes (the SecretProviderClass's parameters
// and the pod information, a JSON object of strings) and the driver's
// default file permission. Errors are one line, naming what is wrong and
// where, never a value.
func parseRequest(attributes, permission string) (*request, error) {
	var attrs map[string]string
	if err := json.Unmarshal([]byte(attributes), &attrs); err != nil {
		return nil, fmt.Errorf("attributes: not a JSON object of strings: %w", err)
	}
	r := &request{pod: Pod{
		Name:           attrs[PodNameKey],
		Namespace:      attrs[PodNamespaceKey],
		UID:            attrs[PodUIDKey],
		ServiceAccount: attrs[ServiceAccountKey],
	}}
	if t := attrs[ServiceAccountTokens]; t != "" {
		if err := json.Unmarshal([]byte(t), &r.pod.Tokens); err != nil {
			return nil, fmt.Errorf("attributes: %s: not a JSON object of audience to token", ServiceAccountTokens)
		}
	}
	text, ok := attrs[ConfigKey]
	if !ok || strings.TrimSpace(text) == "" {
		return nil, fmt.Errorf("SecretProviderClass parameters: %q (the keyward config) is missing", ConfigKey)
	}
	where := "SecretProviderClass parameter " + ConfigKey
	cfg, err := config.Parse([]byte(text), filepath.Join(configDir, "keyward.yaml"))
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			ce.Path = where
			return nil, ce
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if err := refuseUnsupported(cfg, where); err != nil {
		return nil, err
	}
	defMode, err := parsePermission(permission)
	if err != nil {
		return nil, err
	}
	explicit, provs, err := explicitModes([]byte(text))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	for i, f := range cfg.Files {
		rel, err := filepath.Rel(configDir, f.Path)
		if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			return nil, fmt.Errorf("%s: files[%d].path: must be a relative path inside the volume", where, i)
		}
		mode := f.Mode
		if !explicit[i] {
			mode = defMode
		}
		r.files = append(r.files, mountFile{rel: rel, mode: mode})
	}
	r.cfg, r.providersYAML = cfg, provs
	return r, nil
}

// refuseUnsupported rejects what a mount cannot do: there is no child
// (env, keep_env, on_change), no token endpoint (tokens, server), no
// polling (watch: the driver's rotation reconciler asks again) and the
// files are written by the driver (owner, group, atomic_dir, template
// files from the node's disk).
func refuseUnsupported(cfg *config.Config, where string) error {
	var bad []string
	if cfg.Env != nil || len(cfg.KeepEnv) > 0 || cfg.EnvFileRefs {
		bad = append(bad, "env (there is no child process: use files)")
	}
	if len(cfg.Tokens) > 0 || cfg.Server != nil {
		bad = append(bad, "tokens and server (no token endpoint in a mount)")
	}
	if cfg.OnChange != nil || cfg.Watch != nil || cfg.CI != nil {
		bad = append(bad, "watch, on_change and ci (the driver's rotation reconciler mounts again)")
	}
	for i, f := range cfg.Files {
		switch {
		case f.TemplateFile != "":
			bad = append(bad, fmt.Sprintf("files[%d].template_file (the template must be inline: template)", i))
		case f.Owner != nil || f.Group != nil:
			bad = append(bad, fmt.Sprintf("files[%d].owner and group (the driver writes every file as root:root, and the kubelet applies no fsGroup to its read-only volumes: leave the files readable by all, as the driver's 0644)", i))
		case f.AtomicDir || f.AllowSymlink || f.OnChange != nil:
			bad = append(bad, fmt.Sprintf("files[%d].atomic_dir, allow_symlink and on_change (the driver swaps the files itself)", i))
		}
	}
	if len(cfg.Files) == 0 {
		bad = append(bad, "files (at least one file is required)")
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%s: not supported by keyward csi-provider: %s", where, strings.Join(bad, "; "))
}

// parsePermission reads the driver's default file permission, a decimal
// string ("420" is 0644); "" means 0644.
func parsePermission(s string) (os.FileMode, error) {
	if s == "" {
		return 0o644, nil
	}
	n, err := strconv.ParseUint(strings.Trim(s, `"`), 10, 32)
	if err != nil || n > 0o777 {
		return 0, fmt.Errorf("permission %q: not a file mode", s)
	}
	return os.FileMode(n), nil
}

// explicitModes reports, per files: entry, whether the config sets mode:
// (the others take the driver's permission, as the pod's other volumes
// do), and returns the providers: section as written.
func explicitModes(text []byte) ([]bool, []byte, error) {
	var doc struct {
		Providers yaml.Node              `yaml:"providers"`
		Files     []map[string]yaml.Node `yaml:"files"`
	}
	if err := yaml.Unmarshal(text, &doc); err != nil {
		return nil, nil, err
	}
	out := make([]bool, len(doc.Files))
	for i, f := range doc.Files {
		_, out[i] = f["mode"]
	}
	provs, err := yaml.Marshal(&doc.Providers)
	if err != nil {
		return nil, nil, err
	}
	return out, provs, nil
}
