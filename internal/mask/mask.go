// Package mask hides secret values in streamed output. A Masker holds the
// current set of secrets (their raw, base64, hex, URL-encoded and JSON
// forms, and each line of multi-line values) and hands out Writers that copy
// text to an underlying writer with every occurrence replaced by "***",
// also when a value is split across writes. keyward exec --mask puts one in
// front of the child's stdout and stderr; keyward scan uses the same Set to
// search files.
package mask

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Replacement is what every masked occurrence becomes. Overlapping or
// adjacent occurrences become one Replacement.
const Replacement = "***"

// DefaultIdle is how long a Writer holds back the possible beginning of a
// secret at the end of the output when nothing more is written (except
// after a full buffer, see Writer). Programs that write one value in
// several calls do so microseconds apart (test/bench/buffering.go measured
// a p99.9 of 71µs); 200ms also covers a writer frozen for two whole
// periods of a container's CPU quota (100ms each). Output is delayed only
// when it ends in what may begin a secret's form.
const DefaultIdle = 200 * time.Millisecond

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("mask: writer closed")

// A Timer is a stoppable one-shot timer, as time.AfterFunc returns.
type Timer interface {
	Stop() bool
}

// Options tune a Masker.
type Options struct {
	// Idle is how long a Writer waits for more output before it writes out
	// held-back bytes that might have been the beginning of a secret
	// (DefaultIdle when zero). It bounds how long interactive output (a
	// prompt without a newline) can be delayed.
	Idle time.Duration
	// AfterFunc starts the idle timer; nil means time.AfterFunc. Tests
	// inject a fake to fire the timer when they choose.
	AfterFunc func(d time.Duration, f func()) Timer
}

// A Masker holds the current secrets for any number of Writers. Its
// methods are safe for concurrent use.
type Masker struct {
	set       atomic.Pointer[Set]
	idle      time.Duration
	afterFunc func(time.Duration, func()) Timer
}

// New returns a Masker for set (nil: mask nothing).
func New(set *Set, opts Options) *Masker {
	m := &Masker{idle: opts.Idle, afterFunc: opts.AfterFunc}
	if m.idle <= 0 {
		m.idle = DefaultIdle
	}
	if m.afterFunc == nil {
		m.afterFunc = func(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
	}
	if set == nil {
		set = NewSet(nil, 0)
	}
	m.set.Store(set)
	return m
}

// Update replaces the secrets masked from the next Write on. To keep
// masking values that rotated out (a child may still print them), include
// them in set.
func (m *Masker) Update(set *Set) {
	if set == nil {
		set = NewSet(nil, 0)
	}
	m.set.Store(set)
}

// Set returns the current secrets.
func (m *Masker) Set() *Set { return m.set.Load() }

// Writer returns a Writer that masks what is written to it and writes the
// result to w. Close it to write out what it holds back.
func (m *Masker) Writer(w io.Writer) *Writer {
	return &Writer{m: m, w: w}
}

// Mask returns b with every occurrence of a current secret replaced.
func (m *Masker) Mask(b []byte) []byte {
	mt := m.set.Load().m
	return appendMasked(nil, b, mt.Cover(b, nil))
}

// A Writer masks a stream. Each Write writes out, masked, everything that
// can no longer turn into a secret and holds back the rest: the longest end
// of the output that is the beginning of some secret's form, at most the
// longest form less one byte. Output that ends in a newline is therefore
// written at once unless a secret's form begins with that line.
//
// Held-back bytes are written out as they are by Flush or Close, and after
// the Masker's idle time without another Write, except after a Write whose
// length is a multiple of BlockSize: that is a block-buffered program's
// full buffer (C stdio, Python, Go's bufio and Java write whole buffers of
// 1, 4 or 8 KiB), which ends wherever the buffer happened to fill, and the
// rest follows with the program's next buffer, however much later. Such a
// beginning is held until the next Write.
//
// When held-back bytes had to be written out, the Writer remembers them: if
// the next Writes complete a secret's form, the rest of it is masked. So a
// value written in two parts with a long pause between them shows at most
// its beginning, never whole.
//
// What a Writer cannot catch: values shorter than the Set's minimum
// length, and the beginning of a value that was written out after the idle
// time.
//
// A Writer is safe for concurrent use; writes to the underlying writer are
// serialised. After an error from the underlying writer every Write fails
// with that error.
type Writer struct {
	m *Masker
	w io.Writer

	mu sync.Mutex
	// hist is output already written out (released after the idle time)
	// that is the beginning of a secret's form: what follows it is masked
	// if it completes the form.
	hist   []byte
	tail   []byte // held back
	work   []byte // hist + tail + written bytes
	out    []byte
	spans  []Span
	timer  Timer
	seq    uint64 // identifies the armed timer
	err    error
	closed bool
}

// BlockSize is the unit of the buffers that block-buffered programs write
// whole (see Writer).
const BlockSize = 1024

// Write masks p and writes out what can be written (see Writer). It
// returns len(p) unless the underlying writer failed.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, ErrClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	mt := w.m.set.Load().m
	b := p
	if len(w.hist)+len(w.tail) > 0 {
		w.work = append(append(append(w.work[:0], w.hist...), w.tail...), p...)
		b = w.work
	}
	done := len(w.hist) // b[:done] is written out already
	w.spans = mt.Cover(b, w.spans[:0])
	begin := len(b) - mt.Pending(b, 0)
	cut := max(begin, done)
	// Never cut inside an occurrence: write it out masked and hold back
	// only what follows it.
	for moved := true; moved; {
		moved = false
		for _, sp := range w.spans {
			if sp.Start < cut && cut < sp.End {
				begin = len(b) - mt.Pending(b, sp.End)
				cut = begin
				moved = true
				break
			}
		}
	}
	if err := w.emit(b, done, cut, w.spans); err != nil {
		return 0, err
	}
	// What was written out and may still begin a secret (only when the
	// beginning started in hist) stays in hist.
	hist := b[min(begin, cut):cut]
	w.tail = append(w.tail[:0], b[cut:]...)
	w.hist = append(w.hist[:0], hist...)
	if len(w.tail) > 0 && len(p) >= BlockSize && len(p)%BlockSize == 0 {
		w.disarm() // a full buffer: the rest comes with the next one
		return len(p), nil
	}
	w.arm()
	return len(p), nil
}

// emit writes b[from:to] with the parts covered by spans (sorted, in b's
// offsets) replaced.
func (w *Writer) emit(b []byte, from, to int, spans []Span) error {
	if from >= to {
		return nil
	}
	out := b[from:to]
	masked := false
	for _, sp := range spans {
		if sp.End > from && sp.Start < to {
			masked = true
			break
		}
	}
	if masked {
		w.out = w.out[:0]
		at := from
		for _, sp := range spans {
			if sp.End <= at {
				continue
			}
			if sp.Start >= to {
				break
			}
			if sp.Start > at {
				w.out = append(w.out, b[at:sp.Start]...)
			}
			w.out = append(w.out, Replacement...)
			at = min(sp.End, to)
		}
		w.out = append(w.out, b[at:to]...)
		out = w.out
	}
	if _, err := w.w.Write(out); err != nil {
		w.err = err
		return err
	}
	return nil
}

// appendMasked appends b to dst with each span (sorted, disjoint) that
// starts within b replaced by Replacement.
func appendMasked(dst, b []byte, spans []Span) []byte {
	at := 0
	for _, sp := range spans {
		if sp.Start >= len(b) {
			break
		}
		dst = append(dst, b[at:sp.Start]...)
		dst = append(dst, Replacement...)
		at = min(sp.End, len(b))
	}
	return append(dst, b[at:]...)
}

// arm starts the idle timer when bytes are held back, and stops it when
// none are. Called with w.mu held.
func (w *Writer) arm() {
	w.disarm()
	if len(w.tail) == 0 {
		return
	}
	seq := w.seq
	w.timer = w.m.afterFunc(w.m.idle, func() { w.idleFlush(seq) })
}

// disarm stops the idle timer. Called with w.mu held.
func (w *Writer) disarm() {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	w.seq++
}

// idleFlush writes out the held-back bytes if no Write came since the
// timer seq was armed.
func (w *Writer) idleFlush(seq uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if seq != w.seq || w.closed || w.err != nil {
		return
	}
	_ = w.flush()
}

// flush writes out the held-back bytes, masking complete occurrences, and
// keeps in hist what may still begin a secret. Called with w.mu held.
func (w *Writer) flush() error {
	w.disarm()
	if len(w.tail) == 0 {
		return nil
	}
	mt := w.m.set.Load().m
	b := append(append(w.work[:0], w.hist...), w.tail...)
	w.work = b
	w.spans = mt.Cover(b, w.spans[:0])
	err := w.emit(b, len(w.hist), len(b), w.spans)
	w.hist = append(w.hist[:0], b[len(b)-mt.Pending(b, 0):]...)
	w.tail = w.tail[:0]
	return err
}

// Flush writes out the held-back bytes now, with complete occurrences
// masked and a possible beginning of a secret as it is.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	return w.flush()
}

// Close flushes the Writer and stops its timer. It does not close the
// underlying writer. Further Writes fail with ErrClosed; a second Close
// returns nil.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	var err error
	if w.err == nil {
		err = w.flush()
	}
	w.disarm()
	w.closed = true
	w.hist, w.tail = nil, nil
	return err
}
