package readfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keyward/keyward/internal/backoff"
)

// bound is how long a test waits for a Read that should return at once
// before it declares it stuck. It is a failure bound, not a measurement.
const bound = 20 * time.Second

// readAsync runs Read in a goroutine and returns its result, failing the
// test when it does not return within bound.
func readAsync(t *testing.T, ctx context.Context, path string, o Options) ([]byte, error) {
	t.Helper()
	type res struct {
		b   []byte
		err error
	}
	done := make(chan res, 1)
	go func() {
		b, _, err := Read(ctx, path, o)
		done <- res{b, err}
	}()
	select {
	case r := <-done:
		return r.b, r.err
	case <-time.After(bound):
		t.Fatalf("Read(%s) still blocked after %v", path, bound)
		return nil, nil
	}
}

func mkfifo(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	return p
}

func TestRegularFile(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "f")
	want := []byte("hello\x00world")
	if err := os.WriteFile(p, want, 0o600); err != nil {
		t.Fatal(err)
	}
	got, fi, err := Read(t.Context(), p, Options{})
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Read = %q, %v", got, err)
	}
	if fi.Size() != int64(len(want)) {
		t.Errorf("FileInfo size %d", fi.Size())
	}
	// Exactly at the limit is fine; one byte more is not.
	if _, _, err := Read(t.Context(), p, Options{Max: int64(len(want))}); err != nil {
		t.Errorf("a file of exactly Max bytes: %v", err)
	}
	_, _, err = Read(t.Context(), p, Options{Max: int64(len(want)) - 1})
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("a file one byte over Max: %v, want ErrTooLarge", err)
	}
}

// TestOversizedFile: a file over the default limit is refused without
// being read into memory.
func TestOversizedFile(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(p, make([]byte, DefaultMax+1), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := Read(t.Context(), p, Options{})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Read of %d bytes: %v, want ErrTooLarge", DefaultMax+1, err)
	}
	if want := "larger than the size limit of 1MiB"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestDevZero(t *testing.T) {
	t.Parallel()
	_, err := readAsync(t, t.Context(), "/dev/zero", Options{})
	if !errors.Is(err, ErrNotRegular) {
		t.Fatalf("/dev/zero by default: %v, want ErrNotRegular", err)
	}
	if want := "a character device, not a regular file"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	// Allowed, it is read up to the limit and refused: never without bound.
	_, err = readAsync(t, t.Context(), "/dev/zero", Options{AllowNonRegular: true, Max: 64 << 10})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("/dev/zero allowed: %v, want ErrTooLarge", err)
	}
}

func TestDirectory(t *testing.T) {
	t.Parallel()
	_, _, err := Read(t.Context(), t.TempDir(), Options{AllowNonRegular: true})
	if !errors.Is(err, ErrIsDirectory) {
		t.Fatalf("Read of a directory: %v", err)
	}
}

func TestMissing(t *testing.T) {
	t.Parallel()
	_, _, err := Read(t.Context(), filepath.Join(t.TempDir(), "nope"), Options{})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read of a missing file: %v", err)
	}
}

// TestFIFONoWriter: a FIFO nobody has opened for writing does not block
// the open (which a plain os.Open does, beyond the reach of any context).
func TestFIFONoWriter(t *testing.T) {
	t.Parallel()
	p := mkfifo(t)
	_, err := readAsync(t, t.Context(), p, Options{})
	if !errors.Is(err, ErrNotRegular) {
		t.Fatalf("FIFO by default: %v, want ErrNotRegular", err)
	}
	b, err := readAsync(t, t.Context(), p, Options{AllowNonRegular: true})
	if err != nil || len(b) != 0 {
		t.Fatalf("FIFO allowed, no writer: %d bytes, %v; want empty", len(b), err)
	}
}

// TestFIFOSilentWriter: a FIFO whose writer never writes blocks the read
// until ctx is cancelled, and no longer.
func TestFIFOSilentWriter(t *testing.T) {
	t.Parallel()
	p := mkfifo(t)
	// Opening for writing with O_RDWR never blocks and keeps a writer
	// connected without writing anything.
	w, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = readAsync(t, ctx, p, Options{AllowNonRegular: true})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("FIFO with a silent writer after cancel: %v, want context.Canceled", err)
	}
}

// TestFIFOWithData: what the writers put into a FIFO before closing it is
// read (a reader held open keeps the data in the pipe, so the order of
// opens does not matter), and so is a pipe named by /proc/self/fd/N, as
// process substitution (<(cmd)) hands them out.
func TestFIFOWithData(t *testing.T) {
	t.Parallel()
	p := mkfifo(t)
	hold, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	w, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString("piped"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	b, err := readAsync(t, t.Context(), p, Options{AllowNonRegular: true})
	if err != nil || string(b) != "piped" {
		t.Fatalf("Read of a FIFO = %q, %v", b, err)
	}

	r, w2, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := w2.WriteString("substituted"); err != nil {
		t.Fatal(err)
	}
	w2.Close()
	b, err = readAsync(t, t.Context(), fmt.Sprintf("/proc/self/fd/%d", r.Fd()), Options{AllowNonRegular: true})
	if err != nil || string(b) != "substituted" {
		t.Fatalf("Read of a pipe = %q, %v", b, err)
	}
}

func TestCancelledBeforeOpen(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _, err := Read(ctx, filepath.Join(t.TempDir(), "nope"), Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Read with a cancelled ctx: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	good := map[string]int64{
		"0": 0, "1": 1, "1048576": 1 << 20, "512KiB": 512 << 10, "4MiB": 4 << 20, "4M": 4 << 20,
		"4mb": 4 << 20, "1GiB": 1 << 30, "2 KiB": 2 << 10, "10B": 10, " 3k ": 3 << 10,
	}
	for in, want := range good {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "1TiB", "1.5MiB", "MiB", "9999999999999GiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
	for n, want := range map[int64]string{1 << 20: "1MiB", 3 << 10: "3KiB", 1000: "1000B", 2 << 30: "2GiB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
		if back, err := ParseSize(FormatSize(n)); err != nil || back != n {
			t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", n, back, err)
		}
	}
}

// TestRefusalsArePermanent: a file refused for what it is (a directory, a
// FIFO, a device, over the size limit) is marked permanent, so that a
// retry loop (backoff.Retry, and every decision that tests
// backoff.IsPermanent) gives up at once, however deep the callers wrapped
// the error, and reports it with their context; a missing file is not
// marked, and is retried.
func TestRefusalsArePermanent(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 11), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"directory": dir, "FIFO": fifo, "device": "/dev/zero", "too large": big, "missing": filepath.Join(dir, "none")} {
		_, _, rerr := Read(t.Context(), path, Options{Max: 10})
		if rerr == nil {
			t.Fatalf("%s: read, want an error", name)
		}
		wrapped := fmt.Errorf("fetch secret A: %w", rerr)
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			calls := 0
			err := backoff.Retry(ctx, &backoff.Backoff{Base: time.Second, Max: time.Second}, func(context.Context) error {
				calls++
				return wrapped
			})
			if name == "missing" {
				if backoff.IsPermanent(wrapped) || calls < 2 {
					t.Errorf("%s: marked permanent, or not retried (%d calls)", name, calls)
				}
				return
			}
			if !backoff.IsPermanent(wrapped) || calls != 1 {
				t.Errorf("%s: not marked permanent, or retried (%d calls)", name, calls)
			}
			if err == nil || err.Error() != wrapped.Error() {
				t.Errorf("%s: Retry returned %v, want the error with its callers' context (%v)", name, err, wrapped)
			}
		})
	}
}
