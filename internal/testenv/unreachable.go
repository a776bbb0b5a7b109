package testenv

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// RefusedAddr returns a loopback "127.0.0.1:PORT" where nothing listens,
// so that a connection to it is refused: the port of a listener that was
// opened and closed at once.
func RefusedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// PlainHTTPListener serves on a loopback port, until t ends, a server that
// answers every connection with a plain-text HTTP 400 and closes it: a
// TLS client there fails its handshake, as one pointed with https:// at a
// plain HTTP port does. It returns "127.0.0.1:PORT".
func PlainHTTPListener(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 11\r\n\r\nBad Request"))
			})
		}
	})
	return l.Addr().String()
}

// LogBuffer collects the text lines of a slog.Logger for assertions. It is
// safe for concurrent use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Logger returns a debug-level text logger writing to b.
func (b *LogBuffer) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Write implements io.Writer.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Count returns how many lines contain s.
func (b *LogBuffer) Count(s string) int {
	n := 0
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// CheckUnreachableError checks the error of a provider's Fetch of name at
// a server it cannot reach: it names name and cause, and when deadline is
// set it is the context's deadline and tells the failed attempts.
func CheckUnreachableError(t testing.TB, err error, name, cause string, deadline bool) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), cause) || !strings.Contains(err.Error(), name) {
		t.Fatalf("Fetch = %v, want an error naming %s and %q", err, name, cause)
	}
	if deadline && (!errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "failed attempts")) {
		t.Errorf("Fetch = %v, want the deadline with the failed attempts", err)
	}
}

// CheckRetryReported checks that a provider's failed call was retried: a
// failed attempt reported to its observer (retries counts them) and one
// retry warning, naming cause, in its log.
func CheckRetryReported(t testing.TB, logs *LogBuffer, retries *atomic.Int32, cause string) {
	t.Helper()
	if retries.Load() == 0 {
		t.Error("no retry reported to the observer")
	}
	if n := logs.Count("provider call failed; retrying"); n != 1 || !strings.Contains(logs.String(), cause) {
		t.Errorf("%d retry warnings, want 1 naming %q:\n%s", n, cause, logs)
	}
}
