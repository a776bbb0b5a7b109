package testenv

import "syscall"

// serverProcAttr puts a test server in its own process group. darwin has no
// parent-death signal: a server outlives a test process that is killed
// (Process.Stop still ends its process group when a test ends normally).
func serverProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}
