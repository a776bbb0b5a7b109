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
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"

	"gopkg.in/yaml.v3"

	"github.com/keyward/keyward/internal/backoff"
	"github.com/keyward/keyward/internal/readfile"
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

// Options are an instance's configuration keys (beside kind):
//
//	providers:
//	  file: {kind: file, max_size: 4MiB, allow_non_regular: true}
type Options struct {
	// MaxSize is the largest file a reference may name; a larger one is
	// an error wrapping ErrTooLarge. Zero means DefaultMaxSize.
	MaxSize Size `yaml:"max_size"`
	// AllowNonRegular lets references name a FIFO or a character device
	// (a pipe from process substitution, /dev/stdin). By default only
	// regular files are read (symlinks to them are followed): anything
	// else could block forever or never end. MaxSize and cancellation
	// still apply to what is allowed.
	AllowNonRegular bool `yaml:"allow_non_regular"`
}

// DefaultMaxSize is the size limit of a file reference without a
// max_size: 1 MiB, the most a Kubernetes Secret (often mounted as files)
// holds, and far above what AWS and GCP allow a secret (64 KiB).
const DefaultMaxSize = readfile.DefaultMax

// Errors beside the providers sentinels; test with errors.Is.
var (
	// ErrTooLarge: the file is larger than the instance's max_size.
	ErrTooLarge = readfile.ErrTooLarge
	// ErrNotRegular: the file is a FIFO, a device or a socket, and the
	// instance does not set allow_non_regular.
	ErrNotRegular = readfile.ErrNotRegular
)

// Size is a number of bytes. In the config it is an integer or a string
// with a unit: 1048576, "512KiB", "4MiB" (powers of 1024).
type Size int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: a size must be a number of bytes or a string such as 4MiB", n.Line)}}
	}
	v, err := readfile.ParseSize(n.Value)
	if err == nil && v == 0 {
		err = fmt.Errorf("size %q must be positive", n.Value)
	}
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*s = Size(v)
	return nil
}

// String writes the size as the config would: "1MiB".
func (s Size) String() string { return readfile.FormatSize(int64(s)) }

// Provider reads secrets from files. It holds no open files and no
// goroutines, and is safe for concurrent use.
type Provider struct {
	baseDir string
	opts    Options
	// readFile is the one file-system call the provider makes; tests
	// replace it to produce errors a root test process cannot provoke.
	readFile func(ctx context.Context, path string) ([]byte, error)
}

// New returns a Provider that resolves relative reference paths against
// baseDir (the config file's directory; "" means the working directory),
// with the limits of o (the zero Options: regular files of at most
// DefaultMaxSize).
func New(baseDir string, o Options) *Provider {
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	p := &Provider{baseDir: baseDir, opts: o}
	p.readFile = func(ctx context.Context, path string) ([]byte, error) {
		b, _, err := readfile.Read(ctx, path, readfile.Options{Max: int64(o.MaxSize), AllowNonRegular: o.AllowNonRegular})
		return b, err
	}
	return p
}

func newInstance(in providers.Instance) (providers.Provider, error) {
	var opts Options
	if in.Decode != nil {
		if err := in.Decode(&opts); err != nil {
			return nil, fmt.Errorf("file provider options: %w", err)
		}
	}
	return New(in.BaseDir, opts), nil
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
// its Version is their providers.ContentVersion (a keyed hash);
// its Data is the parsed object when the file is JSON, YAML or dotenv.
//
// The format comes from ?format= (json, yaml, dotenv, raw), else from the
// name (.json; .yaml or .yml; .env, *.env or .env.*), else it is sniffed: a
// JSON object, dotenv lines or a YAML mapping, and otherwise raw (Data nil,
// so a #field of it fails with providers.ErrNotObject). A file of a named
// format that does not parse is an error giving the line and column, never
// the content.
//
// Only regular files are read, unless the instance sets
// allow_non_regular, and none larger than max_size (DefaultMaxSize by
// default): /dev/zero or a FIFO nobody writes to must neither fill memory
// nor hang keyward. The read honours ctx (see readfile.Read): a FIFO
// without a writer never blocks the open, and a read waiting on a writer
// that never writes ends when ctx does.
//
// Errors name the path and wrap providers.ErrNotFound (no such file),
// providers.ErrPermissionDenied (not readable), ErrTooLarge, ErrNotRegular
// or ctx's error; a cancelled ctx returns its error before any read.
func (p *Provider) Fetch(ctx context.Context, ref providers.Ref) (providers.Secret, error) {
	path := p.Path(ref)
	if err := ctx.Err(); err != nil {
		return providers.Secret{}, fmt.Errorf("read %s: %w", path, err)
	}
	if err := CheckRef(ref); err != nil {
		return providers.Secret{}, err
	}
	b, err := p.readFile(ctx, path)
	if err != nil {
		return providers.Secret{}, p.readError(path, err)
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
var errIsDirectory = readfile.ErrIsDirectory

// readError maps a read failure to the providers sentinels. It names the
// path and says how to lift a limit; the underlying errors never hold
// file content.
func (p *Provider) readError(path string, err error) error {
	switch {
	case errors.Is(err, errIsDirectory), errors.Is(err, syscall.EISDIR):
		// Permanent, as readfile marks its refusals: no retry reads a
		// directory (see backoff.IsPermanent).
		return fmt.Errorf("read %s: %w", path, backoff.Permanent(errIsDirectory))
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("read %s: %w", path, providers.ErrNotFound)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("read %s: %w", path, providers.ErrPermissionDenied)
	case errors.Is(err, ErrTooLarge):
		return fmt.Errorf("read %s: %w (raise max_size of the file provider to read it)", path, err)
	case errors.Is(err, ErrNotRegular):
		return fmt.Errorf("read %s: %w (set allow_non_regular: true on the file provider to read it)", path, err)
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
