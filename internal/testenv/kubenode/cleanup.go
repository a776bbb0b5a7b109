//go:build linux

package kubenode

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const cgroupFS = "/sys/fs/cgroup"

// hierarchies returns the mounted cgroup hierarchies: each v1 controller
// directory and the v2 one, whether it is /sys/fs/cgroup itself or its
// "unified" subdirectory (hybrid mode, where runc uses it too).
func hierarchies() []string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(cgroupFS, &st); err == nil && st.Type == 0x63677270 { // CGROUP2_SUPER_MAGIC
		return []string{cgroupFS}
	}
	entries, _ := os.ReadDir(cgroupFS)
	var hs []string
	for _, e := range entries {
		p := filepath.Join(cgroupFS, e.Name())
		if err := syscall.Statfs(p, &st); err != nil {
			continue
		}
		if st.Type == 0x27e0eb || st.Type == 0x63677270 { // CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC
			hs = append(hs, p)
		}
	}
	return hs
}

// makeCgroupRoot creates the kubelet's cgroupRoot, which must exist in
// every v1 hierarchy it uses (a v2-only host needs just the directory).
func makeCgroupRoot(root string) error {
	for _, h := range hierarchies() {
		if filepath.Base(h) == "unified" {
			continue
		}
		d := filepath.Join(h, root)
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("cgroup %s: %w", d, err)
		}
		if _, err := os.Stat(filepath.Join(h, "cpuset.cpus")); err == nil && h != cgroupFS {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
					return fmt.Errorf("cgroup %s: %w", filepath.Join(d, f), err)
				}
			}
		}
	}
	return nil
}

// killCgroup kills every process in the cgroup root (in any hierarchy)
// until none is left or 10 s have passed, then removes its cgroups.
func killCgroup(root string) {
	if root == "" || root == "/" {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := cgroupProcs(root)
		if len(pids) == 0 || time.Now().After(deadline) {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, h := range hierarchies() {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(h, root), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.Reverse(dirs) // children first
		for _, d := range dirs {
			for i := 0; i < 20; i++ {
				if err := syscall.Rmdir(d); err == nil || errors.Is(err, fs.ErrNotExist) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
}

func cgroupProcs(root string) []int {
	var pids []int
	for _, h := range hierarchies() {
		_ = filepath.WalkDir(filepath.Join(h, root), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(pids, pid) {
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// procStart returns a process's start time (field 22 of /proc/PID/stat),
// which tells it apart from a later process with the same PID.
func procStart(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// sweep removes what a run left: the processes in its cgroups, its
// processes in its network namespace (containerd's shims, which leave
// the node's cgroups), the cgroups, and the run directory. A process in
// that namespace is killed only if its executable is one of the node's
// binaries, so a reused namespace inode cannot make it kill another's.
func sweep(dir string, st state) {
	killCgroup(st.CgroupRoot)
	if st.NetNS != "" {
		ours := map[string]bool{}
		for _, b := range st.Binaries {
			ours[b] = true
			if filepath.Base(b) == "containerd" {
				ours[filepath.Join(filepath.Dir(b), "containerd-shim-runc-v2")] = true
			}
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			var left []int
			procs, _ := os.ReadDir("/proc")
			for _, p := range procs {
				pid, err := strconv.Atoi(p.Name())
				if err != nil || pid == os.Getpid() {
					continue
				}
				ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
				if err != nil || ns != st.NetNS {
					continue
				}
				exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
				if err != nil || !ours[exe] {
					continue
				}
				_ = syscall.Kill(pid, syscall.SIGKILL)
				left = append(left, pid)
			}
			if len(left) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		killCgroup(st.CgroupRoot)
	}
	_ = os.RemoveAll(dir)
}

// sweepStale sweeps the runs whose first process is gone (killed before
// it could clean up).
func sweepStale() {
	states, _ := filepath.Glob(filepath.Join(os.TempDir(), "keyward-node-*", "state.json"))
	for _, s := range states {
		dir := filepath.Dir(s)
		st, err := readState(dir)
		if err != nil {
			continue
		}
		if st.Owner > 0 && procStart(st.Owner) != "" && procStart(st.Owner) == st.OwnerStart {
			continue // still running
		}
		fmt.Fprintf(os.Stderr, "kubenode: removing what an interrupted run left in %s\n", dir)
		sweep(dir, st)
	}
}
