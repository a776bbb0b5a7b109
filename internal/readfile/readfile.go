// Package readfile reads a local file into memory the way keyward reads
// every secret source and credential file: regular files only unless the
// caller allows others, never more than a size limit, and never blocking
// past the caller's context.
//
// os.ReadFile has none of those properties: /dev/zero fills memory, and a
// named pipe (FIFO) nobody writes to blocks in open(2), where no signal
// handler or context can reach it.
package readfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keyward/keyward/internal/backoff"
)

// DefaultMax is the size limit of a zero Options: 1 MiB, the most a
// Kubernetes Secret (often mounted as files) can hold.
const DefaultMax = 1 << 20

// Errors wrapped by Read; test with errors.Is. Read marks each with
// backoff.Permanent (test with backoff.IsPermanent): the file is refused
// for what it is, and every retry would be refused the same way until the
// file or the configuration changes.
var (
	// ErrTooLarge: the file holds more than the size limit.
	ErrTooLarge = errors.New("larger than the size limit")
	// ErrNotRegular: the path names a FIFO, a device or a socket and
	// Options.AllowNonRegular is false.
	ErrNotRegular = errors.New("not a regular file")
	// ErrIsDirectory: the path names a directory.
	ErrIsDirectory = errors.New("is a directory, not a file")
)

// Options bound a Read.
type Options struct {
	// Max is the most bytes Read returns; a file holding more is an
	// error wrapping ErrTooLarge. 0 means DefaultMax.
	Max int64
	// AllowNonRegular lets Read read a FIFO or a character device (a
	// pipe from process substitution, /dev/stdin). The size limit and
	// the context still apply. A FIFO is read until its writers close
	// it; one with no writer connected reads as empty.
	AllowNonRegular bool
}

func (o Options) max() int64 {
	if o.Max <= 0 {
		return DefaultMax
	}
	return o.Max
}

// Read returns the content of the file at path (following symlinks) and
// its FileInfo. It returns ctx's error, promptly, once ctx is done.
//
// The file is opened with O_NONBLOCK, so that opening a FIFO without a
// writer returns at once instead of blocking in open(2), then checked with
// fstat: a directory wraps ErrIsDirectory, anything but a regular file
// wraps ErrNotRegular unless o.AllowNonRegular. A regular file is read
// with blocking reads, as usual; a FIFO or device that can be polled is
// read through the runtime's poller, with a read deadline set when ctx is
// done (by context.AfterFunc, whose goroutine Read stops before it
// returns), so a writer that never writes cannot hold it. A regular file
// on a hung network file system can still block a read: no read(2) of a
// regular file can be interrupted.
//
// Errors from the file system are the *fs.PathError of package os, so
// errors.Is(err, fs.ErrNotExist) and fs.ErrPermission work; errors never
// hold the file's content.
func Read(ctx context.Context, path string, o Options) ([]byte, fs.FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	limit := o.max()
	mode := fi.Mode()
	switch {
	case mode.IsDir():
		return nil, nil, backoff.Permanent(ErrIsDirectory)
	case mode.IsRegular():
		if fi.Size() > limit {
			return nil, nil, tooLarge(limit)
		}
	case !o.AllowNonRegular:
		return nil, nil, backoff.Permanent(fmt.Errorf("%s, %w", describe(mode), ErrNotRegular))
	default:
		// Wake a read parked in the poller once ctx is done. Files the
		// poller cannot take (regular files, /dev/zero) return
		// ErrNoDeadline here and are bounded by ctxReader instead.
		stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	b, err := io.ReadAll(io.LimitReader(ctxReader{ctx, f}, limit+1))
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, nil, cerr
		}
		return nil, nil, err
	}
	if int64(len(b)) > limit {
		clear(b)
		return nil, nil, tooLarge(limit)
	}
	return b, fi, nil
}

// ctxReader fails every Read once ctx is done: a device that never ends
// (/dev/urandom with a large limit) stops at the next chunk.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func tooLarge(limit int64) error {
	return backoff.Permanent(fmt.Errorf("%w of %s", ErrTooLarge, FormatSize(limit)))
}

// describe names a file type that is not regular, for messages.
func describe(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "a special file"
}

// FormatSize writes n bytes the way sizes are written in keyward's config:
// "1MiB", "512KiB", or "1000B" when n is not a whole number of KiB.
func FormatSize(n int64) string {
	switch {
	case n > 0 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n > 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n > 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// ParseSize reads a size as written in keyward's config: a number of
// bytes ("1048576"), or a number with a unit, K/KB/KiB, M/MB/MiB or
// G/GB/GiB, all powers of 1024 ("512KiB", "4MiB"), case-insensitive. The
// error names the text, which is a setting, never a secret.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	num := strings.TrimRight(t, "KMGiBkmgb")
	unit := strings.ToLower(strings.TrimSpace(t[len(num):]))
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q: want a number of bytes, or a number with KiB, MiB or GiB", s)
	}
	var shift uint
	switch unit {
	case "", "b":
	case "k", "kb", "kib":
		shift = 10
	case "m", "mb", "mib":
		shift = 20
	case "g", "gb", "gib":
		shift = 30
	default:
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (use KiB, MiB or GiB)", s, t[len(num):])
	}
	if n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return n << shift, nil
}
