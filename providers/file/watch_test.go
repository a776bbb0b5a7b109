package file

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyward/keyward/providers"
)

// watchTimeout bounds how long a test waits for an expected notification.
// It is never slept: tests wait on the notification channel.
const watchTimeout = 10 * time.Second

// watching runs p.Watch on refs in the background until the test ends and
// returns the channel of notified ref paths. It consumes the initial
// notification of every ref, so that when it returns the watch is in place.
func wWatching(t *testing.T, p *Provider, refs ...providers.Ref) <-chan string {
	t.Helper()
	ch := make(chan string, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Watch(ctx, refs, func(r providers.Ref) { ch <- r.Path }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Watch returned %v, want context.Canceled", err)
		}
	})
	initial := map[string]bool{}
	for range refs {
		select {
		case path := <-ch:
			initial[path] = true
		case err := <-done:
			t.Fatalf("Watch ended early: %v", err)
		case <-time.After(watchTimeout):
			t.Fatal("no initial notification")
		}
	}
	for _, r := range refs {
		if !initial[r.Path] {
			t.Fatalf("no initial notification for %s", r.Path)
		}
	}
	return ch
}

// expect waits for a notification of path, skipping those of other paths
// listed in allowed; any other path fails the test.
func wExpect(t *testing.T, ch <-chan string, path string, allowed ...string) {
	t.Helper()
	deadline := time.After(watchTimeout)
	for {
		select {
		case got := <-ch:
			if got == path {
				return
			}
			ok := false
			for _, a := range allowed {
				ok = ok || a == got
			}
			if !ok {
				t.Fatalf("notified for %s while waiting for %s", got, path)
			}
		case <-deadline:
			t.Fatalf("no notification for %s within %v", path, watchTimeout)
		}
	}
}

func wRef(path string) providers.Ref { return providers.Ref{Scheme: "file", Path: path} }

func wWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestWatchReplacements drives each way a file gets replaced and checks
// that the watched file is reported, and that neither an unrelated file
// beside it nor the change itself is reported for the other watched file
// in the directory: each case writes the unrelated file first, so a
// notification for other.yaml would arrive before the expected one and
// fail wExpect.
func TestWatchReplacements(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		change func(t *testing.T, dir, path string)
	}{
		{"write in place", func(t *testing.T, _, path string) { wWrite(t, path, "b: 2\n") }},
		{"truncate", func(t *testing.T, _, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}},
		{"chmod", func(t *testing.T, _, path string) {
			if err := os.Chmod(path, 0o400); err != nil {
				t.Fatal(err)
			}
		}},
		{"rename over (atomic editor save)", func(t *testing.T, dir, path string) {
			tmp := filepath.Join(dir, ".secrets.yaml.swp")
			wWrite(t, tmp, "b: 2\n")
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}},
		{"backup then new file (vim)", func(t *testing.T, _, path string) {
			if err := os.Rename(path, path+"~"); err != nil {
				t.Fatal(err)
			}
			wWrite(t, path, "b: 2\n")
		}},
		{"remove", func(t *testing.T, _, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "secrets.yaml")
			other := filepath.Join(dir, "other.yaml")
			wWrite(t, path, "a: 1\n")
			wWrite(t, other, "x: 1\n")
			ch := wWatching(t, New(dir, Options{}), wRef("other.yaml"), wRef("secrets.yaml"))
			wWrite(t, filepath.Join(dir, "unrelated.yaml"), "u: 1\n")
			c.change(t, dir, path)
			wExpect(t, ch, "secrets.yaml")
		})
	}
}

// TestWatchKubeletLayout lays a directory out the way the kubelet's
// AtomicWriter does for a mounted Secret, then swaps ..data to a new
// timestamped directory the way it does on rotation.
func TestWatchKubeletLayout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ts := func(name, content string) {
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		wWrite(t, filepath.Join(d, "password"), content)
		wWrite(t, filepath.Join(d, "username"), "app")
	}
	ts("..2026_01_01_00_00_00.1", "old")
	wMust(t, os.Symlink("..2026_01_01_00_00_00.1", filepath.Join(dir, "..data")))
	wMust(t, os.Symlink("..data/password", filepath.Join(dir, "password")))
	wMust(t, os.Symlink("..data/username", filepath.Join(dir, "username")))

	p := New(dir, Options{})
	ch := wWatching(t, p, wRef("password"))
	got, err := p.Fetch(context.Background(), wRef("password"))
	if err != nil || got.Value.Reveal() != "old" {
		t.Fatalf("fetch before the swap: %v", err)
	}

	ts("..2026_01_01_00_01_00.2", "new")
	wMust(t, os.Symlink("..2026_01_01_00_01_00.2", filepath.Join(dir, "..data_tmp")))
	wMust(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	wMust(t, os.RemoveAll(filepath.Join(dir, "..2026_01_01_00_00_00.1")))
	wExpect(t, ch, "password")
	got, err = p.Fetch(context.Background(), wRef("password"))
	if err != nil || got.Value.Reveal() != "new" {
		t.Fatalf("fetch after the swap: %v", err)
	}
}

// TestWatchSymlinkElsewhere watches a file that is a symlink into another
// directory: writes to the target are seen, and so is re-pointing the link.
func TestWatchSymlinkElsewhere(t *testing.T) {
	t.Parallel()
	conf, store := t.TempDir(), t.TempDir()
	target := filepath.Join(store, "real.env")
	wWrite(t, target, "A=1\n")
	link := filepath.Join(conf, "app.env")
	wMust(t, os.Symlink(target, link))
	ch := wWatching(t, New(conf, Options{}), wRef(link))

	wWrite(t, target, "A=2\n")
	wExpect(t, ch, link)

	// Re-point the link to a second target, then write that target.
	target2 := filepath.Join(t.TempDir(), "real2.env")
	wWrite(t, target2, "A=3\n")
	wMust(t, os.Symlink(target2, link+".tmp"))
	wMust(t, os.Rename(link+".tmp", link))
	wExpect(t, ch, link)
	wWrite(t, target2, "A=4\n")
	wExpect(t, ch, link)
}

// TestWatchMissingDirectory starts watching a file whose directory does not
// exist yet; creating the directory and then the file is reported.
func TestWatchMissingDirectory(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	path := filepath.Join(root, "a", "b", "secret.json")
	ch := wWatching(t, New(root, Options{}), wRef(path))
	wMust(t, os.MkdirAll(filepath.Dir(path), 0o700))
	wExpect(t, ch, path)
	wWrite(t, path, `{"k":"v"}`)
	wExpect(t, ch, path)

	// The directory removed and made again: still watched.
	wMust(t, os.RemoveAll(filepath.Join(root, "a")))
	wExpect(t, ch, path)
	wMust(t, os.MkdirAll(filepath.Dir(path), 0o700))
	wWrite(t, path, `{"k":"w"}`)
	wExpect(t, ch, path)
}

// TestWatchSeveralRefs: two files in one directory and one elsewhere; each
// change reports its own ref.
func TestWatchSeveralRefs(t *testing.T) {
	t.Parallel()
	d1, d2 := t.TempDir(), t.TempDir()
	a, b, c := filepath.Join(d1, "a.yaml"), filepath.Join(d1, "b.yaml"), filepath.Join(d2, "c.yaml")
	for _, p := range []string{a, b, c} {
		wWrite(t, p, "k: v\n")
	}
	ch := wWatching(t, New("", Options{}), wRef(a), wRef(b), wRef(c))
	wWrite(t, c, "k: 2\n")
	wExpect(t, ch, c)
	wWrite(t, b, "k: 2\n")
	wExpect(t, ch, b, c)
	wWrite(t, a, "k: 2\n")
	wExpect(t, ch, a, b, c)
}

func TestWatchCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := New(t.TempDir(), Options{}).Watch(ctx, []providers.Ref{wRef("x")}, func(providers.Ref) {})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch = %v", err)
	}
}

func wMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
