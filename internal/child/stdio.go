package child

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// ioDrainTimeout bounds how long a Child waits, after it exited, for output
// pipes that a process it left behind still holds open. A variable for tests.
var ioDrainTimeout = 2 * time.Second

// stdio is a Child's standard files: the *os.File each of fd 0, 1 and 2 of
// the child gets, and the pipes and copying goroutines for those that are
// not files.
type stdio struct {
	files     [3]*os.File
	childEnds []*os.File // opened for the child; closed in keyward once it started
	stdinW    *os.File   // keyward's end of the stdin pipe, or nil
	outR      []*os.File // keyward's ends of the output pipes

	inCopy    func() error
	outCopies []func() error
	inDone    chan error // receives once when inCopy returns; nil without one
	outDone   chan error // receives once per output copy
}

// open prepares the three files. On error nothing stays open.
func (s *stdio) open(stdin io.Reader, stdout, stderr io.Writer) (err error) {
	defer func() {
		if err != nil {
			s.closeChildEnds()
			s.closeParentEnds()
		}
	}()
	if r, ok := stdin.(*os.File); ok && r != nil {
		s.files[0] = r
	} else if stdin == nil || ok {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return err
		}
		s.files[0] = f
		s.childEnds = append(s.childEnds, f)
	} else {
		pr, pw, err := os.Pipe()
		if err != nil {
			return err
		}
		s.files[0] = pr
		s.childEnds = append(s.childEnds, pr)
		s.stdinW = pw
		s.inCopy = func() error {
			_, err := io.Copy(pw, stdin)
			_ = pw.Close()
			return err
		}
	}
	if s.files[1], err = s.output(stdout); err != nil {
		return err
	}
	if sameWriter(stdout, stderr) {
		s.files[2] = s.files[1]
	} else if s.files[2], err = s.output(stderr); err != nil {
		return err
	}
	return nil
}

func (s *stdio) output(w io.Writer) (*os.File, error) {
	if f, ok := w.(*os.File); ok && f != nil {
		return f, nil
	} else if w == nil || ok {
		f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		s.childEnds = append(s.childEnds, f)
		return f, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	s.childEnds = append(s.childEnds, pw)
	s.outR = append(s.outR, pr)
	s.outCopies = append(s.outCopies, func() error {
		_, err := io.Copy(w, pr)
		_ = pr.Close() // on a write error, the child gets EPIPE rather than blocking
		return err
	})
	return pw, nil
}

// sameWriter reports whether a and b are the same writer; uncomparable
// writers are never the same (as in os/exec).
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

func (s *stdio) closeChildEnds() {
	for _, f := range s.childEnds {
		_ = f.Close()
	}
	s.childEnds = nil
}

func (s *stdio) closeParentEnds() {
	if s.stdinW != nil {
		_ = s.stdinW.Close()
	}
	for _, f := range s.outR {
		_ = f.Close()
	}
}

// startCopying starts the copying goroutines. Output copies are counted in
// wg; the stdin copy is not, since it may block in Stdin's Read for as long
// as Stdin likes (see drain).
func (s *stdio) startCopying(wg *sync.WaitGroup) {
	s.outDone = make(chan error, len(s.outCopies))
	for _, cp := range s.outCopies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.outDone <- cp()
		}()
	}
	if s.inCopy != nil {
		s.inDone = make(chan error, 1)
		go func() { s.inDone <- s.inCopy() }()
	}
}

// drain runs after the child exited. It closes the stdin pipe (a copy
// blocked writing to it ends), then waits for the copies to end, at most
// ioDrainTimeout; past that it closes the output pipes, waits for the output
// copies, and leaves a stdin copy that is still blocked in Stdin's Read to
// end on its own when that Read returns.
func (s *stdio) drain(log *slog.Logger) {
	if s.stdinW != nil {
		_ = s.stdinW.Close()
	}
	pending, inPending := len(s.outCopies), s.inDone != nil
	if pending == 0 && !inPending {
		return
	}
	t := time.NewTimer(ioDrainTimeout)
	defer t.Stop()
	for pending > 0 || inPending {
		select {
		case err := <-s.outDone:
			pending--
			if err != nil {
				log.Warn("copying the child's output", "err", err)
			}
		case <-s.inDone:
			inPending = false // EPIPE once the child is gone is expected
		case <-t.C:
			log.Debug("the child exited but its output is still open; closing it", "after", ioDrainTimeout)
			for _, r := range s.outR {
				_ = r.Close()
			}
			for ; pending > 0; pending-- {
				if err := <-s.outDone; err != nil && !errors.Is(err, os.ErrClosed) {
					log.Warn("copying the child's output", "err", err)
				}
			}
			return
		}
	}
}
