// Package scan searches files for secret values: build outputs, logs,
// artifacts about to be published. It reads every file once, in large
// chunks, through the one multi-pattern Matcher of a mask.Set, so it finds
// each value raw, base64-, hex-, URL- or JSON-encoded, and each line of a
// multi-line value, whatever the number of secrets. It reports where, and
// which secret, never the value.
package scan

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"

	"github.com/keyward/keyward/internal/mask"
)

// DefaultMaxSize is the size above which a file is skipped unless
// Options.MaxSize says otherwise.
const DefaultMaxSize = 256 << 20

// MaxHitsPerFile bounds the hits reported for one file; the rest are
// counted in Report.Dropped.
const MaxHitsPerFile = 100

// chunkSize is how much of a file one read takes.
const chunkSize = 1 << 20

// binarySniff is how much of a file's start is looked at for a NUL byte:
// a file with one is binary, and its hits carry no line number.
const binarySniff = 8000

// Options tune Scan.
type Options struct {
	// MaxSize skips regular files larger than this many bytes: 0 means
	// DefaultMaxSize, a negative value no limit.
	MaxSize int64
	// Workers is how many files are read at once; 0 means GOMAXPROCS.
	Workers int
	// Logger receives a debug line per skipped file; nil discards.
	Logger *slog.Logger
	// Ignore, when set, is asked about every path below a root (never a
	// root itself), in the walk's order: a directory it ignores is not
	// entered, a file it ignores not read. Ignored paths are not listed
	// in Report.Skipped. It is called from one goroutine at a time.
	Ignore func(root, path string, dir bool) bool
}

// A Hit is one occurrence of a secret in a file.
type Hit struct {
	// Path is the file, as reached from the root it was given under.
	Path string
	// Offset is the byte offset of the occurrence in the file.
	Offset int64
	// Length is its length in bytes.
	Length int
	// Line is the 1-based line of the occurrence's first byte; 0 in a
	// binary file (one with a NUL byte in its first 8000 bytes).
	Line int
	// Secret names the secret found.
	Secret string
	// Kind is the form it was found in (mask.KindRaw, mask.KindBase64, …).
	Kind string
}

// A Skip is a path that was not searched, and why.
type Skip struct {
	Path   string
	Reason string
}

// A FileError is a path that could not be searched.
type FileError struct {
	Path string
	Err  error
}

// Error returns "PATH: reason".
func (e *FileError) Error() string { return e.Path + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *FileError) Unwrap() error { return e.Err }

// Report is the result of a Scan. Hits, Skipped and Errors are sorted by
// path (hits then by offset).
type Report struct {
	Hits []Hit
	// Dropped counts hits beyond MaxHitsPerFile, not listed in Hits.
	Dropped int
	// Files and Bytes count the files searched and their bytes.
	Files int
	Bytes int64
	// Skipped lists symlinks (never followed below a root), special files
	// and files over the size limit.
	Skipped []Skip
	// Errors lists paths that could not be read.
	Errors []*FileError
}

// Scan searches roots (files or directories, the latter recursively) for
// the secrets of set. A root that is a symlink is followed, since it was
// named; below a root no symlink is followed, so a scan never leaves the
// trees it was given. Devices, FIFOs and sockets are skipped, as are files
// larger than the size limit. Files that cannot be read are listed in
// Report.Errors; Scan's own error is only ctx's. Scan is safe for
// concurrent use and returns after all its goroutines have ended.
func Scan(ctx context.Context, set *mask.Set, roots []string, opts Options) (*Report, error) {
	var mu sync.Mutex
	var hits []Hit
	var dropped int
	rep, err := Walk(ctx, roots, opts, func(path string, f *os.File) (int64, error) {
		h, d, n, err := Search(set, path, f)
		if err == nil {
			mu.Lock()
			hits = append(hits, h...)
			dropped += d
			mu.Unlock()
		}
		return n, err
	})
	rep.Hits, rep.Dropped = hits, dropped
	slices.SortFunc(rep.Hits, func(a, b Hit) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Offset, b.Offset), cmp.Compare(a.Secret, b.Secret))
	})
	return rep, err
}

// A VisitFunc reads one file that Walk reached, open for reading, and
// returns how many bytes it read; an error lists the file in
// Report.Errors.
type VisitFunc func(path string, f *os.File) (int64, error)

// Walk calls visit for every regular file under roots (files or
// directories, the latter recursively), from opts.Workers goroutines at
// once, with the rules of Scan: a root that is a symlink is followed,
// since it was named, and below a root no symlink is; devices, FIFOs,
// sockets and files over the size limit are skipped; what opts.Ignore
// ignores is not visited. The report counts the files visited and their
// bytes, and lists what was skipped and what could not be read (visit's
// errors included); it has no hits. Walk's own error is only ctx's; it
// returns after all its goroutines have ended.
func Walk(ctx context.Context, roots []string, opts Options, visit VisitFunc) (*Report, error) {
	if opts.MaxSize == 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &scanner{visit: visit, opts: opts, log: log, rep: &Report{}}

	paths := make(chan job)
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range paths {
				s.file(j)
			}
		}()
	}
	walkErr := s.walk(ctx, roots, paths)
	close(paths)
	wg.Wait()

	r := s.rep
	slices.SortFunc(r.Skipped, func(a, b Skip) int { return cmp.Compare(a.Path, b.Path) })
	slices.SortFunc(r.Errors, func(a, b *FileError) int { return cmp.Compare(a.Path, b.Path) })
	return r, walkErr
}

// job is one file to search; root says it was named as a root, so a
// symlink there is followed.
type job struct {
	path string
	root bool
}

type scanner struct {
	visit VisitFunc
	opts  Options
	log   *slog.Logger

	mu  sync.Mutex
	rep *Report
}

func (s *scanner) skip(path, reason string) {
	s.log.Debug("not scanned", "path", path, "reason", reason)
	s.mu.Lock()
	s.rep.Skipped = append(s.rep.Skipped, Skip{Path: path, Reason: reason})
	s.mu.Unlock()
}

func (s *scanner) fail(path string, err error) {
	s.mu.Lock()
	s.rep.Errors = append(s.rep.Errors, &FileError{Path: path, Err: err})
	s.mu.Unlock()
}

// walk sends every regular file under roots to paths.
func (s *scanner) walk(ctx context.Context, roots []string, paths chan<- job) error {
	send := func(j job) error {
		select {
		case paths <- j:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, root := range roots {
		fi, err := os.Stat(root) // a named root is followed
		if err != nil {
			s.fail(root, pathErr(err))
			continue
		}
		if !fi.IsDir() {
			if !fi.Mode().IsRegular() {
				s.skip(root, "not a regular file")
			} else if err := send(job{path: root, root: true}); err != nil {
				return err
			}
			continue
		}
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				s.fail(p, pathErr(err))
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if p != root && s.opts.Ignore != nil && s.opts.Ignore(root, p, d.IsDir()) {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				return ctx.Err()
			}
			return s.regular(p, d.Type(), send)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// regular sends p if mode is a regular file's and records why not
// otherwise.
func (s *scanner) regular(p string, mode fs.FileMode, send func(job) error) error {
	switch {
	case mode&fs.ModeSymlink != 0:
		s.skip(p, "symlink (not followed)")
	case !mode.IsRegular():
		s.skip(p, "not a regular file")
	default:
		return send(job{path: p})
	}
	return nil
}

// pathErr strips the path from a *fs.PathError: the caller names it.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// file opens one file and hands it to visit.
func (s *scanner) file(j job) {
	path := j.path
	// O_NOFOLLOW: the path may have been swapped for a symlink since the
	// walk; O_NONBLOCK: or for a FIFO.
	flags := os.O_RDONLY | syscall.O_NONBLOCK
	if !j.root {
		flags |= syscall.O_NOFOLLOW
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			s.skip(path, "symlink (not followed)")
			return
		}
		s.fail(path, pathErr(err))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		s.fail(path, pathErr(err))
		return
	}
	if !fi.Mode().IsRegular() {
		s.skip(path, "not a regular file")
		return
	}
	if s.opts.MaxSize > 0 && fi.Size() > s.opts.MaxSize {
		s.skip(path, fmt.Sprintf("%d bytes, over the size limit of %d", fi.Size(), s.opts.MaxSize))
		return
	}
	n, err := s.visit(path, f)
	if err != nil {
		s.fail(path, pathErr(err))
		return
	}
	s.mu.Lock()
	s.rep.Files++
	s.rep.Bytes += n
	s.mu.Unlock()
}

// bufs holds read buffers of chunkSize bytes (and room for an overlap).
var bufs sync.Pool

// Search reads r, the content of the file path, to its end once and
// returns the occurrences of set's secrets in it as Scan reports them (at
// most MaxHitsPerFile, the rest counted in dropped) and the bytes read.
// It is safe for concurrent use.
func Search(set *mask.Set, path string, r io.Reader) (hits []Hit, dropped int, n int64, err error) {
	need := chunkSize + set.Matcher().MaxLen()
	bp, _ := bufs.Get().(*[]byte)
	if bp == nil || cap(*bp) < need {
		b := make([]byte, 0, need)
		bp = &b
	}
	defer bufs.Put(bp)
	return search(set, path, r, *bp)
}

// search reads r to its end once. Consecutive buffers overlap by MaxLen-1
// bytes, so an occurrence across a chunk boundary is found; an occurrence
// is reported from the first buffer that holds all of it.
func search(set *mask.Set, path string, r io.Reader, buf []byte) (hits []Hit, dropped int, total int64, err error) {
	m := set.Matcher()
	overlap := max(m.MaxLen()-1, 0)
	buf = buf[:cap(buf)]
	var (
		keep     int   // bytes carried over at buf[:keep]
		base     int64 // file offset of buf[0]
		lines    int   // newlines before base
		binary   bool
		sniffed  bool
		reported int64 // occurrences ending at or before this were reported
		found    []Hit
		reach    = map[string]int64{} // secret -> end of its last kept hit
	)
	for {
		n, rerr := io.ReadFull(r, buf[keep:])
		end := keep + n
		total += int64(n)
		b := buf[:end]
		if !sniffed && end > 0 {
			binary = bytes.IndexByte(b[:min(end, binarySniff)], 0) >= 0
			sniffed = true
		}
		found = found[:0]
		m.Find(b, func(pat, start, stop int) bool {
			if base+int64(stop) > reported {
				found = append(found, Hit{Path: path, Offset: base + int64(start), Length: stop - start, Secret: set.Owner(pat), Kind: set.Kind(pat)})
			}
			return true
		})
		for _, h := range dedupe(found, reach) {
			if len(hits) >= MaxHitsPerFile {
				dropped++
				continue
			}
			if !binary {
				h.Line = lines + bytes.Count(b[:h.Offset-base], []byte{'\n'}) + 1
			}
			hits = append(hits, h)
		}
		reported = base + int64(end)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return hits, dropped, total, nil
		}
		if rerr != nil {
			return nil, 0, total, rerr
		}
		advance := max(end-overlap, 0)
		lines += bytes.Count(b[:advance], []byte{'\n'})
		keep = copy(buf, b[advance:])
		base += int64(advance)
	}
}

// dedupe sorts hits and drops each that lies within a hit of the same
// secret kept before (the base64 of a value is found padded, unpadded and
// by alignment; a multi-line value and each of its lines). reach carries
// the end of the last kept hit of each secret from one call to the next.
func dedupe(hits []Hit, reach map[string]int64) []Hit {
	slices.SortFunc(hits, func(a, b Hit) int {
		return cmp.Or(cmp.Compare(a.Offset, b.Offset), cmp.Compare(b.Length, a.Length))
	})
	out := hits[:0]
	for _, h := range hits {
		end := h.Offset + int64(h.Length)
		if e, ok := reach[h.Secret]; ok && end <= e {
			continue
		}
		reach[h.Secret] = max(reach[h.Secret], end)
		out = append(out, h)
	}
	return out
}
