package server

import "net"

// ListenUnix binds a unix socket at the absolute path with mode 0600 and
// no window in which it is wider, replacing a stale socket but never a
// socket another process serves on, nor any other kind of file. keyward
// csi-provider serves the CSI driver on one.
func ListenUnix(path string) (net.Listener, error) { return listenUnix(path) }
