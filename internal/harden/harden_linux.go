package harden

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// notDumpable marks the process not dumpable: no core file whatever
// RLIMIT_CORE says, and no ptrace or /proc/PID access by the same user.
func notDumpable() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_DUMPABLE 0: %w", err)
	}
	return nil
}

// restoresChildCoreLimit is true where keyward stays undumpable after
// ChildCoreLimit raises RLIMIT_CORE again: PR_SET_DUMPABLE 0 keeps it so.
const restoresChildCoreLimit = true
