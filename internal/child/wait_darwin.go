package child

import (
	"errors"

	"golang.org/x/sys/unix"
)

// waitExited blocks until pid has exited, without reaping it, so that the
// reap can happen under the Child's lock. darwin's libc has waitid, but
// golang.org/x/sys/unix does not expose it; a kqueue EVFILT_PROC NOTE_EXIT
// event is darwin's way to learn of an exit without collecting the status.
// The event is edge-triggered: registering it for a process that has
// already exited fails with ESRCH, which means the same here, since only
// this Child reaps its pid.
func waitExited(pid int) error {
	kq, err := unix.Kqueue()
	if err != nil {
		return err
	}
	defer unix.Close(kq)
	var ev unix.Kevent_t
	unix.SetKevent(&ev, pid, unix.EVFILT_PROC, unix.EV_ADD|unix.EV_ONESHOT)
	ev.Fflags = unix.NOTE_EXIT
	for {
		_, err := unix.Kevent(kq, []unix.Kevent_t{ev}, nil, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		if err != nil {
			return err
		}
		break
	}
	out := make([]unix.Kevent_t, 1)
	for {
		n, err := unix.Kevent(kq, nil, out, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 1 && out[0].Fflags&unix.NOTE_EXIT != 0 {
			return nil
		}
	}
}

// reapWaitFlags are the wait4 options of reap, which runs once waitExited
// has seen the child exit. NOTE_EXIT can be posted while the process is
// still exiting, before it is waitable (and ESRCH can come from one that
// is exiting), so reap blocks for that moment instead of using WNOHANG: the
// child has exited, the wait is short.
const reapWaitFlags = 0

// peekExited would return a child that has exited without reaping it, for
// the PID-1 reaper. On darwin PID 1 is launchd, so keyward never runs the
// reaper there, and darwin cannot peek at "any child" without waitid.
func peekExited() (int, error) {
	return 0, unix.ENOTSUP
}
