package render

import (
	"os"

	"golang.org/x/sys/unix"
)

// oPath opens a directory this process may search but not read (mode
// 0300). darwin has no O_PATH; O_SEARCH (macOS 13 and later) is its
// equivalent: a descriptor that *at calls can be relative to, opened with
// search permission alone. On an older macOS the open fails as it would
// without the fallback, and such a directory is refused, not weakened.
const oPath = unix.O_SEARCH

// hasCapChown reports whether the process may give a file any owner. darwin
// has no capabilities: only root may change a file's owner (chown(2)), so
// it is the effective uid that decides.
func hasCapChown() bool { return os.Geteuid() == 0 }
