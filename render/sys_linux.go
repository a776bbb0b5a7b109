package render

import (
	"os"

	"golang.org/x/sys/unix"
)

// oPath opens a directory this process may search but not read (mode
// 0300): O_PATH gives a descriptor that *at calls can be relative to, but
// that cannot be listed, locked or fsynced.
const oPath = unix.O_PATH

// hasCapChown reports whether the process has CAP_CHOWN in its effective
// set.
func hasCapChown() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return os.Geteuid() == 0
	}
	return data[0].Effective&(1<<unix.CAP_CHOWN) != 0
}
