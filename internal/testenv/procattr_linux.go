package testenv

import "syscall"

// serverProcAttr puts a test server in its own process group, killed with
// the test process.
func serverProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
}
