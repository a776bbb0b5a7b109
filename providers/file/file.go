// Package file implements the "file" provider kind: secrets read from local
// files, such as a dev.yaml for demos, a dotenv file, or a key of a
// Kubernetes Secret mounted as a volume. A reference names the file
// (file:///abs/path or file:path/relative/to/the/config) and optionally a
// #field of a JSON, YAML or dotenv file.
//
// Importing the package registers the kind with providers.Register.
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/keyward/keyward/providers"
)

// KindName is the name of the provider kind and of its default instance.
const KindName = "file"

// Format values accepted by the ?format= reference parameter.
const (
	FormatJSON   = "json"
	FormatYAML   = "yaml"
	FormatDotenv = "dotenv"
	FormatRaw    = "raw"
)

func init() {
	providers.Register(providers.Kind{
		Name:     KindName,
		Params:   []string{"format"},
		CheckRef: CheckRef,
		New:      newInstance,
	})
}

var _ providers.Provider = (*Provider)(nil)

// Provider reads secrets from files. It holds no open files and no
// goroutines, and is safe for concurrent use.
type Provider struct {
	baseDir string
	// readFile is the one file-system call the provider makes; tests
	// replace it to produce errors a root test process cannot provoke.
	readFile func(path string) ([]byte, error)
}

// New returns a Provider that resolves relative reference paths against
// baseDir (the config file's directory; "" means the working directory).
func New(baseDir string) *Provider {
	return &Provider{baseDir: baseDir, readFile: readRegular}
}

func newInstance(in providers.Instance) (providers.Provider, error) {
	if in.Decode != nil {
		// The kind has no options: decoding into an empty struct rejects any.
		var opts struct{}
		if err := in.Decode(&opts); err != nil {
			return nil, fmt.Errorf("file provider options: %w", err)
		}
	}
	return New(in.BaseDir), nil
}

// CheckRef validates a file reference without I/O: its ?format= value, if
// any, is one of json, yaml, dotenv or raw. Errors wrap
// providers.ErrInvalidReference.
func CheckRef(ref providers.Ref) error {
	if f, ok := ref.Params["format"]; ok {
		switch f {
		case FormatJSON, FormatYAML, FormatDotenv, FormatRaw:
		default:
			return fmt.Errorf("format %q is not one of json, yaml, dotenv, raw: %w", f, providers.ErrInvalidReference)
		}
	}
	if strings.IndexByte(ref.Path, 0) >= 0 {
		return fmt.Errorf("file path contains a NUL byte: %w", providers.ErrInvalidReference)
	}
	return nil
}

// Path returns the file that ref names: ref.Path when it is absolute,
// otherwise ref.Path joined to the provider's base directory.
func (p *Provider) Path(ref providers.Ref) string {
	if filepath.IsAbs(ref.Path) {
		return ref.Path
	}
	return filepath.Join(p.baseDir, ref.Path)
}

// Fetch reads the file ref names, following symlinks (Kubernetes volume
// mounts are symlinks). The Secret's Value is the file's bytes as they are;
// its Version is "sha256:" and the first 12 hex digits of their SHA-256;
// its Data is the parsed object when the file is JSON, YAML or dotenv.
//
// The format comes from ?format= (json, yaml, dotenv, raw), else from the
// name (.json; .yaml or .yml; .env, *.env or .env.*), else it is sniffed: a
// JSON object, dotenv lines or a YAML mapping, and otherwise raw (Data nil,
// so a #field of it fails with providers.ErrNotObject). A file of a named
// format that does not parse is an error giving the line and column, never
// the content.
//
// Errors name the path and wrap providers.ErrNotFound (no such file) or
// providers.ErrPermissionDenied (not readable); a cancelled ctx returns
// its error before any read.
func (p *Provider) Fetch(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
	path := p.Path(ref)
	if err := ctx.Err(); err != nil {
		return providers.Secret{}, fmt.Errorf("read %s: %w", path, err)
	}
	if err := CheckRef(ref); err != nil {
		return providers.Secret{}, err
	}
	b, err := p.readFile(path)
	if err != nil {
		return providers.Secret{}, readError(path, err)
	}
	s := providers.Secret{Value: providers.NewValue(b)}
	s.Version = providers.ContentVersion(s.Value.Bytes())
	format := ref.Params["format"]
	if format == "" {
		format = formatFromName(path)
	}
	if format == "" {
		s.Data = sniff(b)
		return s, nil
	}
	data, err := decode(format, b)
	if err != nil {
		return providers.Secret{}, fmt.Errorf("parse %s file %s: %w", formatTitle(format), path, err)
	}
	s.Data = data
	return s, nil
}

// Close does nothing: the provider holds no resources.
func (p *Provider) Close() error { return nil }

// errIsDirectory is returned for a reference that names a directory.
var errIsDirectory = errors.New("is a directory, not a file")

// readRegular reads the whole file at path, following symlinks.
func readRegular(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, errIsDirectory
	}
	return io.ReadAll(f)
}

// readError maps a read failure to the providers sentinels. It names the
// path; the underlying errors never hold file content.
func readError(path string, err error) error {
	switch {
	case errors.Is(err, errIsDirectory), errors.Is(err, syscall.EISDIR):
		return fmt.Errorf("read %s: %w", path, errIsDirectory)
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("read %s: %w", path, providers.ErrNotFound)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("read %s: %w", path, providers.ErrPermissionDenied)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // its message repeats the path
	}
	return fmt.Errorf("read %s: %w", path, err)
}

// formatFromName returns the format a file name implies, or "".
func formatFromName(path string) string {
	base := strings.ToLower(filepath.Base(path))
	switch {
	case strings.HasSuffix(base, ".json"):
		return FormatJSON
	case strings.HasSuffix(base, ".yaml"), strings.HasSuffix(base, ".yml"):
		return FormatYAML
	case strings.HasSuffix(base, ".env"), strings.HasPrefix(base, ".env."):
		return FormatDotenv
	}
	return ""
}

func formatTitle(format string) string {
	switch format {
	case FormatJSON:
		return "JSON"
	case FormatYAML:
		return "YAML"
	}
	return format
}

// decode parses b in a named format. Raw gives nil Data.
func decode(format string, b []byte) (map[string]any, error) {
	switch format {
	case FormatJSON:
		return decodeJSON(b)
	case FormatYAML:
		return decodeYAML(b)
	case FormatDotenv:
		m, err := parseDotenv(b)
		if err != nil {
			return nil, err
		}
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[k] = v
		}
		return out, nil
	}
	return nil, nil
}

// sniff guesses the structure of a file whose name says nothing: a JSON
// object, then dotenv lines (stricter than YAML, which would take many
// dotenv lines for a mapping or a plain scalar), then a YAML mapping. It
// returns nil (raw) when none fits.
func sniff(b []byte) map[string]any {
	trimmed := strings.TrimSpace(string(b))
	if trimmed == "" {
		return nil
	}
	if trimmed[0] == '{' {
		if m, err := decodeJSON(b); err == nil {
			return m
		}
	}
	if m, err := parseDotenv(b); err == nil && len(m) > 0 {
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	if m, err := decodeYAML(b); err == nil && len(m) > 0 {
		return m
	}
	return nil
}

// syntaxError locates a parse failure. Its reason is a fixed text chosen
// by this package, never a quote of the input. Column is 0 when unknown.
type syntaxError struct {
	Line, Column int
	Reason       string
}

func (e *syntaxError) Error() string {
	if e.Column > 0 {
		return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Reason)
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
}

// position returns the 1-based line and column of byte offset off in b.
func position(b []byte, off int) (line, col int) {
	off = min(max(off, 0), len(b))
	line = 1 + strings.Count(string(b[:off]), "\n")
	col = off - strings.LastIndexByte(string(b[:off]), '\n')
	return line, col
}
