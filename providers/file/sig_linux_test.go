package file_test

import (
	"syscall"
	"unsafe"
)

// defaultSIGXFSZ gives SIGXFSZ its default action (the Go runtime ignores
// it, so that a write past the file size limit fails with EFBIG): the
// kernel then kills the process in that write.
func defaultSIGXFSZ() error {
	var sa [4]uint64 // struct sigaction, all zero: SIG_DFL, no flags, empty mask
	if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(syscall.SIGXFSZ), uintptr(unsafe.Pointer(&sa)), 0, 8, 0, 0); e != 0 {
		return e
	}
	return nil
}
