package child

import (
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"sync"

	"golang.org/x/sys/unix"
)

// reaper is the only waiter of a keyward that runs as PID 1. Orphans whose
// parent died are re-parented to PID 1, and a zombie is only cleared when
// its parent waits for it; PID 1 that never waits fills the process table.
//
// Waiting for "any child" would race with the supervised Child's own wait,
// the classic init bug: whichever collects the status first wins, and the
// other sees ECHILD and loses the exit code. So in PID-1 mode a Child does
// not wait for itself: each reaper round peeks at every exited child with
// waitid(WNOWAIT), hands a registered Child's pid to that Child's reap (so
// its status is recorded under its lock), and reaps everything else as an
// orphan. Children are registered under mu in the same critical section as
// their fork, so no round can see an unregistered one of ours.
//
// Processes that keyward starts by other means (os/exec) are reaped as
// orphans too and their own Wait fails with ECHILD: while keyward is PID 1,
// start every process through this package.
var reaper = struct {
	mu       sync.Mutex
	children map[int]*Child
}{children: make(map[int]*Child)}

// reapRound reaps every child that has exited by now.
func reapRound(log *slog.Logger) {
	reaper.mu.Lock()
	defer reaper.mu.Unlock()
	for {
		pid, err := peekExited()
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid == 0 { // ECHILD: no children; 0: none has exited
			return
		}
		if c := reaper.children[pid]; c != nil {
			delete(reaper.children, pid)
			c.reap(pid)
			continue
		}
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil {
			log.Debug("reaped orphaned process", "pid", pid)
		}
	}
}

// reapLoop is a Child's waiting goroutine when keyward is PID 1: it runs
// reaper rounds on every SIGCHLD until its own child has been reaped (by
// this round or another Child's), then publishes the result. Between
// Children no round runs; zombies left meanwhile are reaped by the next
// Child's first round, or vanish with keyward.
func (c *Child) reapLoop(chld chan os.Signal) {
	defer c.wg.Done()
	for {
		reapRound(c.log)
		select {
		case <-c.exited:
			signal.Stop(chld)
			c.finish()
			return
		default:
		}
		select {
		case <-chld:
		case <-c.exited:
		}
	}
}
