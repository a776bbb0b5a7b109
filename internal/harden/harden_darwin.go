package harden

// notDumpable does nothing on darwin, which has no per-process "not
// dumpable" flag: RLIMIT_CORE 0, which DisableCoreDumps sets, is what keeps
// keyward's memory out of core files. ptrace(PT_DENY_ATTACH) is not used:
// it makes a keyward that is being traced exit, and a tracing parent crash,
// which a wrapper run under a supervisor or tracer must not do, and it does
// not stop task_for_pid, the way debuggers read memory on darwin (which
// needs the system's debugging authorization: developer mode, or root).
// Against other processes of its own user keyward is therefore less
// protected than on Linux, where same-user ptrace and /proc/PID/mem are
// refused.
func notDumpable() error { return nil }

// restoresChildCoreLimit is false on darwin: RLIMIT_CORE 0 is keyward's only
// protection against core files, and a supervising keyward keeps running
// after it starts its child, so ChildCoreLimit leaves the limit at 0 and
// the child inherits it (macOS's default soft limit is 0 already).
const restoresChildCoreLimit = false
