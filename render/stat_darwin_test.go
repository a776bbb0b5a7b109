package render

import "syscall"

func mtim(st *syscall.Stat_t) syscall.Timespec { return st.Mtimespec }
func ctim(st *syscall.Stat_t) syscall.Timespec { return st.Ctimespec }
