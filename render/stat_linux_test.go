package render

import "syscall"

func mtim(st *syscall.Stat_t) syscall.Timespec { return st.Mtim }
func ctim(st *syscall.Stat_t) syscall.Timespec { return st.Ctim }
