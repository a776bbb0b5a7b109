//go:build linux

// Package kubenode runs a real one-node Kubernetes cluster for keyward's
// end-to-end tests: etcd, kube-apiserver, containerd with runc and a
// kubelet, started once per test binary and stopped when its tests end.
// Pods really run: images are built offline and imported into containerd,
// and the kubelet mounts their volumes, runs their probes and reports their
// status.
//
// The machine is shared, so nothing the node does reaches the host: Run
// starts the test binary a second time in a new mount and network
// namespace, and everything (the servers, the pods, the tests themselves)
// runs in there. In that network namespace lo carries 127.0.0.1 and
// 10.0.0.1 (the kubernetes Service IP, where the API server listens on
// 443, so in-cluster clients work without kube-proxy), and bridge kw0
// (NodeIP, 10.88.0.1/24) joins the pods, which get 10.88.0.N from a small
// CNI plugin (test/servers/node/cni). In the mount namespace /run is a
// tmpfs, /var/log and /var/lib are directories of the run, and the kernel
// settings
// the kubelet would rewrite for the whole machine (vm.overcommit_memory,
// kernel.panic, kernel.panic_on_oops) are files holding the values it
// wants, so it writes nothing. Pods live in a cgroup of their own in every
// hierarchy (kubelet cgroupRoot), removed at the end with every process
// in it. Nothing else on the host changes.
//
// There is no scheduler and no controller-manager: pods name their node
// (spec.nodeName: Name), and the tests create what the controllers would
// (the pods of a Deployment or Job, a namespace's default ServiceAccount
// and kube-root-ca.crt ConfigMap, a Service's Endpoints).
//
// It needs root (CI runs as root), cgroups and iproute2. Under the
// integration build tag a missing prerequisite fails the test binary; it
// is never skipped.
package kubenode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/keyward/keyward/internal/testenv"
)

// The node's fixed names and addresses (inside its private namespaces).
const (
	// Name is the node's name: pods set spec.nodeName to it.
	Name = "keyward-node"
	// NodeIP is the node's InternalIP, its address on the pod bridge;
	// pods with hostNetwork get it as their pod IP.
	NodeIP = "10.88.0.1"
	// ServiceIP is the ClusterIP of Service default/kubernetes, where the
	// API server listens (on 443) for in-cluster clients.
	ServiceIP = "10.0.0.1"
	// APIPort is the API server's port (that of Service default/kubernetes).
	APIPort = 443
	// PauseImage is the pods' sandbox image, built by the harness.
	PauseImage = "keyward.test/pause:1"

	envDir = "KEYWARD_NODE_DIR"
)

// Node is the running node. Its methods are safe for concurrent use.
type Node struct {
	// Dir is the run directory: logs, state, certificates.
	Dir string
	// Kube is the API server and etcd.
	Kube *testenv.Kube
	// Client is a client of the API server as cluster admin.
	Client *Client
	// Config is the admin client's REST config.
	Config *rest.Config
	// Up is how long the node took from nothing to Ready.
	Up time.Duration

	ctr        string
	sock       string
	cgroupRoot string
	containerd *testenv.Process
	kubelet    *testenv.Process

	mu     sync.Mutex
	onStop []func()
}

// Options are the hooks of Run.
type Options struct {
	// Prepare runs first, outside the node's namespaces, where the
	// network is reachable: it builds what the tests need (images) into
	// dir, the run directory, which the node uses too.
	Prepare func(dir string) error
	// Setup runs once the node is Ready, before the tests.
	Setup func(ctx context.Context, n *Node) error
}

// state is what the sweep of a run needs, kept in the run directory.
type state struct {
	Owner      int    `json:"owner"`
	OwnerStart string `json:"owner_start"`
	NetNS      string `json:"netns"`
	CgroupRoot string `json:"cgroup_root"`
	Binaries   []string
}

// Run is the test binary's TestMain body: os.Exit(kubenode.Run(m, opts)).
// The first time, it checks the prerequisites, sweeps what an earlier run
// killed before its end left behind, makes the run directory, runs
// opts.Prepare and runs the test binary again inside new namespaces; when
// that exits, it removes every process, cgroup and file of the run. Inside
// the namespaces it starts the node, runs opts.Setup and the tests, and
// stops the node.
func Run(m *testing.M, opts Options) int {
	if dir := os.Getenv(envDir); dir != "" {
		return inside(m, dir, opts)
	}
	code, err := outside(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubenode: %v\n", err)
		return 1
	}
	return code
}

// binaries are the node's servers, built or installed by test/servers/.
var binaries = []string{"etcd.sh", "kube-apiserver.sh", "kubelet.sh", "containerd.sh", "runc.sh"}

func outside(opts Options) (int, error) {
	if os.Geteuid() != 0 {
		return 0, errors.New("the end-to-end tests run a kubelet and need root (CI runs them as root)")
	}
	for _, tool := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			return 0, fmt.Errorf("%s (iproute2, util-linux) is needed for the node's network: %w", tool, err)
		}
	}
	var bins []string
	for _, s := range binaries {
		p, err := testenv.Binary(s)
		if err != nil {
			return 0, err
		}
		bins = append(bins, p)
	}
	sweepStale()
	dir, err := os.MkdirTemp("", "keyward-node-")
	if err != nil {
		return 0, err
	}
	st := state{Owner: os.Getpid(), OwnerStart: procStart(os.Getpid()), CgroupRoot: "/" + filepath.Base(dir), Binaries: bins}
	if err := writeState(dir, st); err != nil {
		return 0, err
	}
	defer func() { sweep(dir, st) }()
	if err := buildPause(dir); err != nil {
		return 0, err
	}
	if opts.Prepare != nil {
		t := time.Now()
		if err := opts.Prepare(dir); err != nil {
			return 0, fmt.Errorf("prepare: %w", err)
		}
		fmt.Fprintf(os.Stderr, "kubenode: prepared in %v\n", time.Since(t).Round(time.Millisecond))
	}

	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Env = append(os.Environ(), envDir+"="+dir)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWNET,
		Pdeathsig:  syscall.SIGTERM,
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start the tests in new namespaces: %w", err)
	}
	if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)); err == nil {
		st.NetNS = ns
		_ = writeState(dir, st)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case err := <-done:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if code := ee.ExitCode(); code >= 0 {
					return code, nil
				}
				return 1, nil
			}
			if err != nil {
				return 0, err
			}
			return 0, nil
		}
	}
}

func inside(m *testing.M, dir string, opts Options) int {
	ctx := context.Background()
	st, err := readState(dir)
	if err == nil {
		err = setupNamespaces(dir)
	}
	var n *Node
	if err == nil {
		n, err = start(ctx, dir, st)
	}
	if err == nil && opts.Setup != nil {
		if err = opts.Setup(ctx, n); err != nil {
			err = fmt.Errorf("setup: %w", err)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubenode: %v\n", err)
		if n != nil {
			n.Stop()
		}
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "kubenode: %v: stopping the node\n", s)
		n.Stop()
		os.Exit(1)
	}()
	code := m.Run()
	t := time.Now()
	n.Stop()
	fmt.Fprintf(os.Stderr, "kubenode: node stopped in %v\n", time.Since(t).Round(time.Millisecond))
	return code
}

// sysctls are the kernel settings the kubelet sets when they differ from
// what it wants: inside the node's mount namespace each is a file
// holding that value, so the kubelet finds it set and writes nothing.
var sysctls = map[string]string{
	"vm/overcommit_memory":      "1",
	"vm/panic_on_oom":           "0",
	"kernel/panic":              "10",
	"kernel/panic_on_oops":      "1",
	"kernel/keys/root_maxkeys":  "1000000",
	"kernel/keys/root_maxbytes": "25000000",
}

// setupNamespaces prepares the new mount and network namespaces this
// process runs in.
func setupNamespaces(dir string) error {
	host, err := os.Readlink("/proc/1/ns/net")
	if err == nil {
		var self string
		if self, err = os.Readlink("/proc/self/ns/net"); err == nil && self == host {
			return errors.New("not in a private network namespace")
		}
	}
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make the mount namespace private: %w", err)
	}
	if err := syscall.Mount("keyward-node-run", "/run", "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mount /run: %w", err)
	}
	// Paths the kubelet, containerd and the CNI library hard-code:
	// /var/log/{pods,containers}, /var/lib/kubelet/device-plugins and
	// /var/lib/cni (the CNI result cache).
	for _, m := range []string{"/var/log", "/var/lib"} {
		d := filepath.Join(dir, "host"+strings.ReplaceAll(m, "/", "-"))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := syscall.Mount(d, m, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("mount %s: %w", m, err)
		}
	}
	for name, v := range sysctls {
		f := filepath.Join(dir, "sysctl", strings.ReplaceAll(name, "/", "."))
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(f, []byte(v+"\n"), 0o644); err != nil {
			return err
		}
		if err := syscall.Mount(f, "/proc/sys/"+name, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("cover /proc/sys/%s: %w", name, err)
		}
	}
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"addr", "add", ServiceIP + "/32", "dev", "lo"},
		{"link", "add", "kw0", "type", "bridge"},
		{"addr", "add", NodeIP + "/24", "dev", "kw0"},
		{"link", "set", "kw0", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// start starts the servers and waits until the node is Ready.
func start(ctx context.Context, dir string, st state) (n *Node, err error) {
	t0 := time.Now()
	n = &Node{Dir: dir, cgroupRoot: st.CgroupRoot}
	defer func() {
		if err != nil {
			n.Stop()
			n = nil
		}
	}()
	bin := map[string]string{}
	for i, s := range binaries {
		bin[strings.TrimSuffix(s, ".sh")] = st.Binaries[i]
	}
	n.ctr = filepath.Join(filepath.Dir(bin["containerd"]), "ctr")
	n.sock = filepath.Join(dir, "containerd", "containerd.sock")

	// containerd first: it starts while the API server does.
	if err := n.startContainerd(bin["containerd"], bin["runc"]); err != nil {
		return n, err
	}

	kubeDir := filepath.Join(dir, "kube")
	f := func(name string) string { return filepath.Join(kubeDir, name) }
	n.Kube, err = testenv.StartKubeWith(ctx, kubeDir, testenv.KubeOptions{
		Users: []testenv.KubeUser{{Name: "system:node:" + Name, Groups: []string{"system:nodes"}}},
		Port:  APIPort,
		Args: []string{
			"--bind-address=0.0.0.0",
			"--advertise-address=" + NodeIP,
			"--authorization-mode=Node,RBAC",
			"--client-ca-file=" + f("ca.crt"),
			"--kubelet-client-certificate=" + f("kubelet-client.crt"),
			"--kubelet-client-key=" + f("kubelet-client.key"),
			"--kubelet-preferred-address-types=InternalIP",
			// Webhooks are called at their Service's endpoints (there is
			// no kube-proxy to route a ClusterIP).
			"--enable-aggregator-routing=true",
		},
		BeforeStart: func(k *testenv.Kube) error {
			crt, key, err := k.ClientCert("kube-apiserver-kubelet-client", "system:masters")
			if err != nil {
				return err
			}
			if err := os.WriteFile(f("kubelet-client.crt"), crt, 0o600); err != nil {
				return err
			}
			return os.WriteFile(f("kubelet-client.key"), key, 0o600)
		},
	})
	if err != nil {
		return n, err
	}
	n.Config = &rest.Config{
		Host:            n.Kube.API.URL,
		BearerToken:     n.Kube.AdminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: n.Kube.CAData},
		QPS:             200,
		Burst:           400,
		WarningHandler:  rest.NoWarnings{},
	}
	if n.Client, err = newClient(n.Config); err != nil {
		return n, err
	}
	if err := n.ImportImage(ctx, filepath.Join(dir, "images", "pause.tar")); err != nil {
		return n, err
	}
	if err := n.startKubelet(ctx, bin["kubelet"]); err != nil {
		return n, err
	}
	if err := n.CreateNamespace(ctx, "default"); err != nil {
		return n, err
	}
	n.Up = time.Since(t0)
	return n, nil
}

// containerdConfig is containerd 1.6's configuration (version 2): state
// under the run directory, the harness's pause image as the sandbox, CNI
// from test/servers/node/cni, runc from Debian.
const containerdConfig = `version = 2
root = "{{DIR}}/containerd/root"
state = "{{DIR}}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{{SOCK}}"

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "{{DIR}}/containerd/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{{PAUSE}}"
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false
    disable_apparmor = true
    # runc cannot lower oom_score_adj without CAP_SYS_RESOURCE, which a
    # container host may not grant.
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "{{DIR}}/cni/bin"
      conf_dir = "{{DIR}}/cni/net.d"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          BinaryName = "{{RUNC}}"
          Root = "{{DIR}}/containerd/runc"
          SystemdCgroup = false
`

func (n *Node) startContainerd(bin, runc string) error {
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	cniBin := filepath.Join(n.Dir, "cni", "bin")
	for _, d := range []string{cniBin, filepath.Join(n.Dir, "cni", "net.d"), filepath.Join(n.Dir, "containerd")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for _, p := range []string{"keyward-bridge", "loopback"} {
		b, err := os.ReadFile(filepath.Join(root, "test", "servers", "node", "cni", p))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(cniBin, p), b, 0o755); err != nil {
			return err
		}
	}
	conflist := `{"cniVersion":"1.0.0","name":"keyward-bridge","plugins":[{"type":"keyward-bridge"}]}`
	if err := os.WriteFile(filepath.Join(n.Dir, "cni", "net.d", "10-keyward-bridge.conflist"), []byte(conflist), 0o644); err != nil {
		return err
	}
	cfg := strings.NewReplacer("{{DIR}}", n.Dir, "{{SOCK}}", n.sock, "{{PAUSE}}", PauseImage, "{{RUNC}}", runc).Replace(containerdConfig)
	cfgPath := filepath.Join(n.Dir, "containerd", "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	env := []string{"PATH=" + filepath.Dir(bin) + ":" + filepath.Dir(runc) + ":" + os.Getenv("PATH")}
	n.containerd, err = testenv.Start("containerd", n.Dir, []string{bin, "--config", cfgPath}, env)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := exec.Command(n.ctr, "--address", n.sock, "version").Run(); err == nil {
			return nil
		}
		select {
		case <-n.containerd.Exited():
			return fmt.Errorf("containerd exited: %s", n.containerd.LogTail(3000))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd not ready after 30s: %s", n.containerd.LogTail(3000))
		}
	}
}

// ImportImage imports an image archive (docker save or OCI layout tar)
// into containerd's Kubernetes namespace; pods run it with
// imagePullPolicy Never or IfNotPresent.
func (n *Node) ImportImage(ctx context.Context, archive string) error {
	out, err := exec.CommandContext(ctx, n.ctr, "--address", n.sock, "-n", "k8s.io", "images", "import", archive).CombinedOutput()
	if err != nil {
		return fmt.Errorf("import %s: %v: %s", archive, err, out)
	}
	return nil
}

// SignalContainer sends sig to the first process of the container id (as
// in a pod's status, without the containerd:// prefix), as the kubelet
// does when it stops a container.
func (n *Node) SignalContainer(ctx context.Context, id string, sig syscall.Signal) error {
	id = strings.TrimPrefix(id, "containerd://")
	out, err := exec.CommandContext(ctx, n.ctr, "--address", n.sock, "-n", "k8s.io", "tasks", "kill", "--signal", strconv.Itoa(int(sig)), id).CombinedOutput()
	if err != nil {
		return fmt.Errorf("signal container %s: %v: %s", id, err, out)
	}
	return nil
}

// kubeletConfig is the KubeletConfiguration. Unknown fields are ignored
// silently by the kubelet, so each is spelled as in its API.
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
failSwapOn: false
cgroupDriver: cgroupfs
cgroupRoot: {{CGROOT}}
containerRuntimeEndpoint: unix://{{SOCK}}
imageServiceEndpoint: unix://{{SOCK}}
address: 0.0.0.0
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: {{DIR}}/kube/ca.crt}
authorization: {mode: Webhook}
podLogsDir: {{DIR}}/pod-logs
volumePluginDir: {{DIR}}/kubelet-plugins
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "50Mi"}
rotateCertificates: false
serializeImagePulls: false
resolvConf: /etc/resolv.conf
syncFrequency: 10s
`

func (n *Node) startKubelet(ctx context.Context, bin string) error {
	if err := makeCgroupRoot(n.cgroupRoot); err != nil {
		return err
	}
	cfg := strings.NewReplacer("{{CGROOT}}", n.cgroupRoot, "{{SOCK}}", n.sock, "{{DIR}}", n.Dir).Replace(kubeletConfig)
	cfgPath := filepath.Join(n.Dir, "kubelet-config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	kcfg := filepath.Join(n.Dir, "kubelet.kubeconfig")
	if err := os.WriteFile(kcfg, n.Kube.Kubeconfig(n.Kube.API.URL, n.Kube.Tokens["system:node:"+Name]), 0o600); err != nil {
		return err
	}
	var err error
	n.kubelet, err = testenv.Start("kubelet", n.Dir, []string{bin,
		"--config=" + cfgPath,
		"--kubeconfig=" + kcfg,
		"--root-dir=" + filepath.Join(n.Dir, "kubelet"),
		"--cert-dir=" + filepath.Join(n.Dir, "kubelet", "pki"),
		"--hostname-override=" + Name,
		"--node-ip=" + NodeIP,
		"--v=1",
	}, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for {
		node, err := Get[corev1.Node](ctx, n.Client, "Node", "", Name)
		if err == nil && ready(node) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not Ready after 90s (%v): %s", Name, err, n.kubelet.LogTail(4000))
		case <-n.kubelet.Exited():
			return fmt.Errorf("kubelet exited: %s", n.kubelet.LogTail(4000))
		case <-time.After(50 * time.Millisecond):
		}
	}
	// No node lifecycle controller lifts the taints the kubelet
	// registers with.
	patch := []byte(`{"spec":{"taints":null}}`)
	if err := n.Client.Patch(ctx, "Node", "", Name, patch); err != nil {
		return fmt.Errorf("untaint node: %w", err)
	}
	return nil
}

func ready(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// CreateNamespace creates namespace name (unless it exists) with what the
// controller-manager would add: its default ServiceAccount and the
// kube-root-ca.crt ConfigMap that projected service-account volumes read.
func (n *Node) CreateNamespace(ctx context.Context, name string) error {
	_, err := Create(ctx, n.Client, "Namespace", "", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	_, err = Create(ctx, n.Client, "ServiceAccount", name, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create %s/default ServiceAccount: %w", name, err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt"}, Data: map[string]string{"ca.crt": string(n.Kube.CAData)}}
	_, err = Create(ctx, n.Client, "ConfigMap", name, cm)
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create %s/kube-root-ca.crt: %w", name, err)
	}
	return nil
}

// Stop stops the kubelet, every container, containerd, the API server and
// etcd, by PID. The namespaces go with the last of their processes; Run's
// first process removes what remains (cgroups, the run directory).
func (n *Node) Stop() {
	if n.kubelet != nil {
		n.kubelet.Stop()
	}
	n.mu.Lock()
	hooks := n.onStop
	n.onStop = nil
	n.mu.Unlock()
	for i := len(hooks) - 1; i >= 0; i-- {
		hooks[i]()
	}
	if n.containerd != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		ctr := func(args ...string) string {
			out, _ := exec.CommandContext(ctx, n.ctr, append([]string{"--address", n.sock, "-n", "k8s.io"}, args...)...).Output()
			return string(out)
		}
		tasks := strings.Fields(ctr("tasks", "ls", "-q"))
		for _, t := range tasks {
			ctr("tasks", "kill", "--signal", "SIGKILL", t)
		}
		for _, t := range tasks {
			ctr("tasks", "delete", "--force", t)
		}
		cancel()
		n.containerd.Stop()
	}
	killCgroup(n.cgroupRoot)
	if n.Kube != nil {
		n.Kube.Stop()
	}
}

// LogTail returns the end of the kubelet's log, for a failure message.
func (n *Node) LogTail(size int64) string {
	if n.kubelet == nil {
		return ""
	}
	return n.kubelet.LogTail(size)
}

func writeState(dir string, st state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600)
}

func readState(dir string) (state, error) {
	var st state
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", filepath.Join(dir, "state.json"), err)
	}
	if len(st.Binaries) != len(binaries) {
		return st, fmt.Errorf("%s: wrong binaries", filepath.Join(dir, "state.json"))
	}
	return st, nil
}
