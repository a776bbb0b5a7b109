// Package harden reduces what a keyward process holding secrets leaks to the
// rest of the machine. It is called once, early, by every command that
// fetches secrets; it changes process-wide state and has no undo.
package harden

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// prevCore is the RLIMIT_CORE soft limit before DisableCoreDumps, restored
// for the child by ChildCoreLimit.
var (
	prevMu   sync.Mutex
	prevCore *uint64
)

// DisableCoreDumps keeps secrets in keyward's memory out of core files and
// away from other processes: it sets the RLIMIT_CORE soft limit to 0 and
// marks the process not dumpable (prctl PR_SET_DUMPABLE 0; on darwin, which
// has no such flag, RLIMIT_CORE is all, see harden_darwin.go). It tries both and
// returns every failure, joined; it is safe to call more than once, and from
// any goroutine (both settings are per process).
//
// The tradeoffs, which the caller accepts by calling it:
//
//   - Not dumpable also means that /proc/PID of keyward is owned by root and
//     that processes of the same user can no longer ptrace keyward or read
//     its /proc/PID/environ, mem, maps or fd: debuggers (dlv attach, gdb,
//     strace -p) and some profilers need root. keyward itself is not
//     affected. While the flag is set the kernel writes no core file for
//     keyward whatever RLIMIT_CORE says.
//   - The dumpable flag is reset by execve of a non-setuid binary: a child
//     keyward starts, and the program Exec turns keyward into, is dumpable
//     and traceable as usual. That is intended: the child holds only the
//     secrets it was given, not keyward's credentials and tokens, and its
//     own debuggability is its owner's business.
//   - RLIMIT_CORE is inherited across fork and execve, so the hard limit is
//     left alone and ChildCoreLimit puts the soft limit back before a child
//     starts: the workload keeps the core-dump policy it had without keyward.
func DisableCoreDumps() error {
	var errs []error
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &lim); err != nil {
		errs = append(errs, fmt.Errorf("disable core dumps: read RLIMIT_CORE: %w", err))
	} else {
		prevMu.Lock()
		if prevCore == nil {
			cur := lim.Cur
			prevCore = &cur
		}
		prevMu.Unlock()
		if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: lim.Max}); err != nil {
			errs = append(errs, fmt.Errorf("disable core dumps: set RLIMIT_CORE to 0: %w", err))
		}
	}
	if err := notDumpable(); err != nil {
		errs = append(errs, fmt.Errorf("disable core dumps: %w", err))
	}
	return errors.Join(errs...)
}

// ChildCoreLimit restores the RLIMIT_CORE soft limit that DisableCoreDumps
// lowered, so a child started or exec'd next inherits the original policy.
// keyward itself stays protected by PR_SET_DUMPABLE 0. It does nothing when
// DisableCoreDumps was not called, and on darwin (see harden_darwin.go).
func ChildCoreLimit() error {
	prevMu.Lock()
	defer prevMu.Unlock()
	if prevCore == nil || !restoresChildCoreLimit {
		return nil
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &lim); err != nil {
		return fmt.Errorf("restore core limit: %w", err)
	}
	lim.Cur = min(*prevCore, lim.Max)
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &lim); err != nil {
		return fmt.Errorf("restore core limit: %w", err)
	}
	return nil
}
