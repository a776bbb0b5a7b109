package child

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// waitExited blocks until pid has exited, without reaping it
// (waitid WNOWAIT), so that the reap can happen under the Child's lock.
func waitExited(pid int) error {
	var info unix.Siginfo
	return unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
}

// reapWaitFlags are the wait4 options of reap, which runs once waitExited
// or peekExited has seen the child exit: by then it is waitable.
const reapWaitFlags = unix.WNOHANG

// siPidOffset is the offset of si_pid in the kernel's siginfo_t: after
// three int32s, aligned to a pointer (16 on 64-bit, 12 on 32-bit systems).
// unix.Siginfo does not expose the field.
const siPidOffset = 8 + unsafe.Sizeof(uintptr(0))

// peekExited returns the pid of a child that has exited, without reaping it,
// or 0 when none has.
func peekExited() (int, error) {
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil); err != nil {
		return 0, err
	}
	return int(*(*int32)(unsafe.Add(unsafe.Pointer(&info), siPidOffset))), nil
}
