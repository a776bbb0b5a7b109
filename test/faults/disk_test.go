//go:build integration

package faults

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// localFault is a fault of the machine under the agent's output
// directory out.
type localFault struct {
	// setup prepares out before the agent starts (a mount).
	setup func(t *testing.T, out string)
	// inject makes writes into out fail; heal undoes it.
	inject, heal func(t *testing.T, out string)
	// elsewhere, when set, is a directory that must stay empty (where a
	// write through a swapped symlink would land).
	elsewhere func(dir string) string
	// envSecrets lists every secret in env:, so that the child also gets
	// them in its environment.
	envSecrets bool
}

// needMounts skips the test when this process cannot mount (not root, or
// no CAP_SYS_ADMIN): `make test` runs as root in CI, where it runs.
func needMounts(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: mounting a small tmpfs or a read-only bind mount needs root (CI runs as root)")
	}
	probe := t.TempDir()
	if err := unix.Mount("tmpfs", probe, "tmpfs", 0, "size=4k"); err != nil {
		t.Skipf("skipped: this process cannot mount (%v); CI runs as root with CAP_SYS_ADMIN", err)
	}
	must(t, unix.Unmount(probe, unix.MNT_DETACH))
}

// mount mounts and unmounts when the test ends (before t.TempDir's
// removal, which was registered earlier).
func mount(t *testing.T, source, target, fstype string, flags uintptr, data string) {
	t.Helper()
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		t.Fatalf("mount %s on %s: %v", fstype, target, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(target, unix.MNT_DETACH) })
}

// TestFullDisk fills the filesystem of the output directory (a 64 KiB
// tmpfs) and rotates the secrets: the render fails with ENOSPC, every
// file keeps its last good content byte for byte, the child is not
// signalled, render errors are counted and no temp file is left; once
// space is freed the render is retried by itself and the rotation lands
// with one SIGHUP.
func TestFullDisk(t *testing.T) {
	t.Parallel()
	needMounts(t)
	runLocalFault(t, localFault{
		setup: func(t *testing.T, out string) {
			mount(t, "tmpfs", out, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64k,mode=0700")
		},
		inject: func(t *testing.T, out string) {
			f, err := os.Create(filepath.Join(out, "filler"))
			must(t, err)
			defer f.Close()
			buf := make([]byte, 4096)
			for {
				if _, err := f.Write(buf); err != nil {
					if !errors.Is(err, syscall.ENOSPC) {
						t.Fatalf("filling the disk: %v", err)
					}
					break
				}
			}
		},
		heal: func(t *testing.T, out string) { must(t, os.Remove(filepath.Join(out, "filler"))) },
	})
}

// TestNoSignalWhenRenderFails is TestReadOnlyMount with every secret
// also in the child's environment (env: lists them). A rotation whose files cannot be written changes nothing the
// child can see, since its environment only changes by a restart: it must
// not be signalled until the files are written.
func TestNoSignalWhenRenderFails(t *testing.T) {
	t.Parallel()
	needMounts(t)
	runLocalFault(t, localFault{
		envSecrets: true,
		setup:      func(t *testing.T, out string) { mount(t, out, out, "", unix.MS_BIND, "") },
		inject: func(t *testing.T, out string) {
			must(t, unix.Mount("", out, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""))
		},
		heal: func(t *testing.T, out string) {
			must(t, unix.Mount("", out, "", unix.MS_REMOUNT|unix.MS_BIND, ""))
		},
	})
}

// TestReadOnlyMount remounts the output directory read-only (a bind
// mount) and rotates the secrets: as for a full disk, nothing is lost and
// the rotation lands once the directory is writable again.
func TestReadOnlyMount(t *testing.T) {
	t.Parallel()
	needMounts(t)
	runLocalFault(t, localFault{
		setup: func(t *testing.T, out string) { mount(t, out, out, "", unix.MS_BIND, "") },
		inject: func(t *testing.T, out string) {
			must(t, unix.Mount("", out, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""))
		},
		heal: func(t *testing.T, out string) {
			must(t, unix.Mount("", out, "", unix.MS_REMOUNT|unix.MS_BIND, ""))
		},
	})
}

// TestDirectorySwappedForSymlink replaces the output directory by a
// symlink to another directory while the agent runs, and rotates the
// secrets: keyward must not write through the link (the other directory
// stays empty), the real directory keeps its files, the child is not
// signalled; once the directory is back the rotation lands.
func TestDirectorySwappedForSymlink(t *testing.T) {
	t.Parallel()
	runLocalFault(t, localFault{
		inject: func(t *testing.T, out string) {
			must(t, os.Rename(out, out+".real"))
			must(t, os.Mkdir(out+".elsewhere", 0o700))
			must(t, os.Symlink(filepath.Base(out)+".elsewhere", out))
		},
		heal: func(t *testing.T, out string) {
			must(t, os.Remove(out))
			must(t, os.Rename(out+".real", out))
		},
		elsewhere: func(out string) string { return out + ".elsewhere" },
	})
}

func runLocalFault(t *testing.T, f localFault) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	must(t, os.Mkdir(out, 0o700))
	if f.setup != nil {
		f.setup(t, out)
	}
	gens := &generations{}
	writeSource := func(v map[string]string) {
		tmp := filepath.Join(dir, ".src.yaml.writing")
		must(t, os.WriteFile(tmp, []byte(fmt.Sprintf("password: %s\napi_key: %s\n", v["password"], v["api_key"])), 0o600))
		must(t, os.Rename(tmp, filepath.Join(dir, "src.yaml")))
	}
	g1 := gens.next()
	writeSource(g1)
	cfg := `version: 1
secrets:
  DB_PASSWORD: file:src.yaml#password
  API_KEY: file:src.yaml#api_key
files:
  - {path: out/app.env, secrets: [DB_PASSWORD, API_KEY]}
  - {path: out/password, secret: DB_PASSWORD}
  - {path: out/pair/password, secret: DB_PASSWORD, atomic_dir: true}
  - {path: out/pair/api_key, secret: API_KEY, atomic_dir: true}
on_change: {signal: HUP}
watch: {debounce: 20ms}
`
	if f.envSecrets {
		cfg += "env: {DB_PASSWORD: DB_PASSWORD, API_KEY: API_KEY}\n"
	} else {
		// The child reads the files; its environment gets no secret (a
		// rotated value could reach it only by a restart).
		cfg += "env: {}\n"
	}
	a := startAgent(t, dir, agentOptions{config: cfg, child: true, secrets: gens.values})
	a.waitReady()
	a.waitFor("the child to start", waitLong, func() bool { s, _ := a.childCounts(); return s == 1 })
	files := []string{
		filepath.Join(out, "app.env"), filepath.Join(out, "password"),
		filepath.Join(out, "pair", "password"), filepath.Join(out, "pair", "api_key"),
	}
	rendered := func(v map[string]string) bool {
		envf := string(readFile(files[0]))
		return string(readFile(files[1])) == v["password"] && string(readFile(files[2])) == v["password"] &&
			string(readFile(files[3])) == v["api_key"] && strings.Contains(envf, v["password"]) && strings.Contains(envf, v["api_key"])
	}
	if !rendered(g1) {
		t.Fatal("the first render does not hold the source's values")
	}
	good := snapshot(files)
	renderErrors := func() float64 { return sum(a.metrics(), "keyward_errors_total", `stage="render"`) }
	before := renderErrors()

	var fig figures
	f.inject(t, out)
	fig.faults++
	g2 := gens.next()
	writeSource(g2)
	// The files are read where they were (the real directory, when it
	// was swapped for a link).
	held, heldGood := files, good
	if f.elsewhere != nil {
		held, heldGood = nil, map[string][]byte{}
		for _, p := range files {
			real := strings.Replace(p, out, out+".real", 1)
			held = append(held, real)
			heldGood[real] = good[p]
		}
	}
	wroteElsewhere := func() []string {
		if f.elsewhere == nil {
			return nil
		}
		entries, _ := os.ReadDir(f.elsewhere(out))
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	a.waitFor("a render error to be counted", waitLong, func() bool { return renderErrors() > before || len(wroteElsewhere()) > 0 })
	fig.lost += a.hold(t, "fault", 3*time.Second, held, heldGood)
	a.expectChild("during the fault", 0)
	if names := wroteElsewhere(); len(names) > 0 {
		t.Errorf("keyward wrote through the symlink that replaced its directory: %q", names)
		fig.lost++
	}
	real := out
	if f.elsewhere != nil {
		real = out + ".real"
	}
	pair := []string{"password", "api_key", "..data"}
	if data, err := os.Readlink(filepath.Join(real, "pair", "..data")); err == nil {
		pair = append(pair, data)
	}
	left := append(unexpected(real, "app.env", "password", "pair", "filler"), unexpected(filepath.Join(real, "pair"), pair...)...)
	fig.leftovers = len(left)
	if len(left) > 0 {
		t.Errorf("failed renders left temp files: %q", left)
	}

	f.heal(t, out)
	a.waitFor("the rotation once the fault is gone", waitLong, func() bool { return rendered(g2) })
	a.waitFor("the child's SIGHUP", waitLong, func() bool { _, s := a.childCounts(); return len(s) >= 1 })
	fig.lost += a.hold(t, "after recovery", time.Second, files, snapshot(files))
	a.expectChild("at the end", 1)
	if c, body := a.readyz(); c != 200 {
		t.Errorf("after recovery: /readyz %d %q", c, body)
	}
	fig.note = fmt.Sprintf("render errors counted: %v", renderErrors()-before)
	if code := a.stop(); code != 0 {
		t.Errorf("agent exit code %d after SIGTERM, want 0", code)
	}
	report(t, fig)
}
