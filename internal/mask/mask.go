// Package mask hides secret values in output. A Masker holds the current
// set of secrets (every form under which programs print them: raw, base64,
// hex, percent-encoded, JSON- and string-escaped, each line of multi-line
// values), learns new ones as they arrive, and hands out Writers that copy
// a stream to an underlying writer with every occurrence replaced by "***",
// also when a value is split across writes. keyward creates one Masker per
// process: every log record, error and HTTP body keyward writes passes
// through it, and keyward exec --mask puts its Writers in front of the
// child's stdout and stderr. keyward scan uses the same Set to search files.
package mask

import (
	"bytes"
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

// KeepRotated is how many earlier values of a name a Masker keeps masking
// after Learn is given a new one: a child may still print a value that
// rotated out, but a name whose value changes every few minutes (an access
// token) must not make the Masker grow without bound.
const KeepRotated = 4

// A Masker holds the current secrets for any number of Writers, and masks
// whole messages too (Mask, String, Redacting). Its methods are safe for
// concurrent use.
type Masker struct {
	set       atomic.Pointer[Set]
	idle      time.Duration
	afterFunc func(time.Duration, func()) Timer

	mu     sync.Mutex          // serialises Learn
	byName map[string][][]byte // each name's values, the current one last
	order  []string            // names in the order first learnt
}

// New returns a Masker for set (nil: mask nothing until Learn).
func New(set *Set, opts Options) *Masker {
	m := &Masker{idle: opts.Idle, afterFunc: opts.AfterFunc, byName: map[string][][]byte{}}
	if m.idle <= 0 {
		m.idle = DefaultIdle
	}
	if m.afterFunc == nil {
		m.afterFunc = func(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
	}
	if set == nil {
		set = NewSet(nil, 0)
	}
	for _, sec := range set.secrets {
		m.remember(sec)
	}
	m.set.Store(set)
	return m
}

// remember adds sec to the values Learn knows and reports whether it is
// new. Called with m.mu held (or before m is shared).
func (m *Masker) remember(sec Secret) bool {
	vals, known := m.byName[sec.Name]
	for _, v := range vals {
		if bytes.Equal(v, sec.Value) {
			return false
		}
	}
	if !known {
		m.order = append(m.order, sec.Name)
	}
	vals = append(vals, sec.Value)
	if len(vals) > KeepRotated+1 {
		vals = vals[len(vals)-KeepRotated-1:]
	}
	m.byName[sec.Name] = vals
	return true
}

// Learn adds secrets to those masked from the next Write or message on,
// before it returns, and returns the names of the new values that are too
// short to be masked (shorter than the Set's minimum length). A value a
// name already had is not added again; when a name gets a new value its
// earlier ones stay masked (the last KeepRotated of them). The values are
// not copied and must not be modified afterwards.
func (m *Masker) Learn(secrets ...Secret) (tooShort []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	grew := false
	for _, sec := range secrets {
		if len(sec.Value) == 0 || !m.remember(sec) {
			continue
		}
		grew = true
	}
	if !grew {
		return nil
	}
	old := m.set.Load()
	var all []Secret
	for _, name := range m.order {
		for _, v := range m.byName[name] {
			all = append(all, Secret{Name: name, Value: v})
		}
	}
	set := NewSet(all, old.minLen)
	m.set.Store(set)
	was := map[string]bool{}
	for _, n := range old.Skipped() {
		was[n] = true
	}
	for _, n := range set.Skipped() {
		if !was[n] {
			tooShort = append(tooShort, n)
		}
	}
	return tooShort
}

// Set returns the current secrets.
func (m *Masker) Set() *Set { return m.set.Load() }

// Writer returns a Writer that masks what is written to it and writes the
// result to w, holding back a possible beginning of a secret for the
// Masker's idle time. Close it to write out what it holds back.
func (m *Masker) Writer(w io.Writer) *Writer {
	return m.WriterIdle(w, m.idle)
}

// WriterIdle is Writer with an idle time of its own (the Masker's when
// idle is 0 or less).
func (m *Masker) WriterIdle(w io.Writer, idle time.Duration) *Writer {
	if idle <= 0 {
		idle = m.idle
	}
	return &Writer{m: m, w: w, idle: idle}
}

// Mask returns b with every occurrence of a current secret replaced.
func (m *Masker) Mask(b []byte) []byte {
	mt := m.set.Load().m
	return appendMasked(nil, b, 0, len(b), mt.Cover(b, nil))
}

// String returns s with every occurrence of a current secret replaced.
func (m *Masker) String(s string) string {
	mt := m.set.Load().m
	b := []byte(s)
	spans := mt.Cover(b, nil)
	if len(spans) == 0 {
		return s
	}
	return string(appendMasked(nil, b, 0, len(b), spans))
}

// Redacting returns a writer that masks each Write on its own and passes
// the result to w in one Write, holding nothing back: for writers that are
// given whole messages (a log handler's records, an error line, an HTTP
// body), where a value is never split across writes. It returns len(p)
// when w accepted the masked bytes.
func (m *Masker) Redacting(w io.Writer) io.Writer { return redacting{m, w} }

type redacting struct {
	m *Masker
	w io.Writer
}

func (r redacting) Write(p []byte) (int, error) {
	mt := r.m.set.Load().m
	spans := mt.Cover(p, nil)
	if len(spans) == 0 {
		return r.w.Write(p)
	}
	if _, err := r.w.Write(appendMasked(nil, p, 0, len(p), spans)); err != nil {
		return 0, err
	}
	return len(p), nil
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
	m    *Masker
	w    io.Writer
	idle time.Duration

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
// offsets) replaced; it copies only when a span reaches into b[from:to].
func (w *Writer) emit(b []byte, from, to int, spans []Span) error {
	if from >= to {
		return nil
	}
	out := b[from:to]
	for _, sp := range spans {
		if sp.End > from && sp.Start < to {
			w.out = appendMasked(w.out[:0], b, from, to, spans)
			out = w.out
			break
		}
	}
	if _, err := w.w.Write(out); err != nil {
		w.err = err
		return err
	}
	return nil
}

// appendMasked appends b[from:to] to dst with the parts covered by spans
// (sorted, disjoint, in b's offsets) replaced by Replacement: a span that
// begins before from (the rest of an occurrence whose beginning was
// written out already) or ends after to is replaced up to the bound.
func appendMasked(dst, b []byte, from, to int, spans []Span) []byte {
	at := from
	for _, sp := range spans {
		if sp.End <= at {
			continue
		}
		if sp.Start >= to {
			break
		}
		if sp.Start > at {
			dst = append(dst, b[at:sp.Start]...)
		}
		dst = append(dst, Replacement...)
		at = min(sp.End, to)
	}
	return append(dst, b[at:to]...)
}

// arm starts the idle timer when bytes are held back, and stops it when
// none are. Called with w.mu held.
func (w *Writer) arm() {
	w.disarm()
	if len(w.tail) == 0 {
		return
	}
	seq := w.seq
	w.timer = w.m.afterFunc(w.idle, func() { w.idleFlush(seq) })
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
