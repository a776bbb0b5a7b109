//go:build linux

package kubenode

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// KubeletDir is the kubelet's root directory (its --root-dir): pods'
// volumes under pods/, CSI drivers' sockets under plugins/, plugin
// registration sockets under plugins_registry/.
func (n *Node) KubeletDir() string { return filepath.Join(n.Dir, "kubelet") }

// OnStop registers f to run when the node stops, after the kubelet and
// before the containers and containerd (the servers a test started
// beside the kubelet: a CSI driver, its providers).
func (n *Node) OnStop(f func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.onStop = append(n.onStop, f)
}

// RegisterCSIDriver registers the CSI driver name, serving CSI on the unix
// socket endpoint, with the kubelet through its plugin-registration API
// (k8s.io/kubelet/pkg/apis/pluginregistration/v1), as node-driver-registrar
// does: it serves GetInfo and NotifyRegistrationStatus on a socket in the
// kubelet's plugins_registry directory and returns once the kubelet says
// the driver is registered (it has called the driver's NodeGetInfo), or
// why not. Calling stop removes the socket, and the kubelet deregisters
// the driver.
func (n *Node) RegisterCSIDriver(ctx context.Context, name, endpoint string) (stop func(), err error) {
	dir := filepath.Join(n.KubeletDir(), "plugins_registry")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, name+"-reg.sock")
	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("plugin registration socket: %w", err)
	}
	r := &registrar{
		info:   &registerapi.PluginInfo{Type: registerapi.CSIPlugin, Name: name, Endpoint: endpoint, SupportedVersions: []string{"1.0.0"}},
		status: make(chan *registerapi.RegistrationStatus, 4),
	}
	g := grpc.NewServer()
	registerapi.RegisterRegistrationServer(g, r)
	go func() { _ = g.Serve(l) }()
	stop = func() {
		g.Stop()
		_ = os.Remove(sock)
	}
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	select {
	case st := <-r.status:
		if !st.PluginRegistered {
			stop()
			return nil, fmt.Errorf("the kubelet refused CSI driver %s: %s", name, st.Error)
		}
		return stop, nil
	case <-timeout.C:
		stop()
		return nil, fmt.Errorf("the kubelet did not register CSI driver %s within 30s (it calls GetInfo on %s): %s", name, sock, n.LogTail(3000))
	case <-ctx.Done():
		stop()
		return nil, ctx.Err()
	}
}

// registrar is the registration service of one plugin.
type registrar struct {
	registerapi.UnimplementedRegistrationServer
	info   *registerapi.PluginInfo
	status chan *registerapi.RegistrationStatus
}

func (r *registrar) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return r.info, nil
}

func (r *registrar) NotifyRegistrationStatus(_ context.Context, st *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	select {
	case r.status <- st:
	default:
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}
