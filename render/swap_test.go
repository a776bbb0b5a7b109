package render

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// swapForSymlink moves dir aside to dir+".old" and puts a symlink to
// elsewhere in its place, as an attacker with write access to the parent
// would during a rotation.
func swapForSymlink(t *testing.T, dir, elsewhere string) {
	t.Helper()
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, dir); err != nil {
		t.Fatal(err)
	}
}

// entries lists a directory's names.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// TestParentSwappedForSymlink swaps a target's directory for a symlink at
// each step of a write of a plain file and of an atomic_dir group: the
// write is refused, nothing is written through the symlink, nothing is
// left in either directory, and the moved directory's files are intact.
// It sets package hooks, so it is not parallel.
func TestParentSwappedForSymlink(t *testing.T) {
	defer func() { testHookWriteStep, testHookAtomicStep = nil, nil }()
	tests := []struct {
		name   string
		atomic bool
		step   string // the write or atomic step at which the swap happens
	}{
		{"plain/opened", false, "opened"},
		{"plain/created", false, "created"},
		{"plain/rename", false, "rename"},
		{"atomic/opened", true, "opened"},
		{"atomic/created", true, "created"},
		{"atomic/staged", true, "staged"},
		{"atomic/data_tmp", true, "data_tmp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir, elsewhere := filepath.Join(root, "secrets"), filepath.Join(root, "elsewhere")
			mkdir(t, elsewhere)
			files := []File{rawFile(filepath.Join(dir, "a"), "A"), rawFile(filepath.Join(dir, "b"), "B")}
			for i := range files {
				files[i].AtomicDir = tt.atomic
			}
			if _, err := Render(files, resolved(map[string]string{"A": "a0", "B": "b0"})); err != nil {
				t.Fatal(err)
			}
			swapped := false
			swap := func(step string) {
				if step == tt.step && !swapped {
					swapped = true
					swapForSymlink(t, dir, elsewhere)
				}
			}
			testHookWriteStep = func(step, _ string) { swap(step) }
			testHookAtomicStep = swap
			_, err := Render(files, resolved(map[string]string{"A": "a1", "B": "b1"}))
			testHookWriteStep, testHookAtomicStep = nil, nil
			if !swapped {
				t.Fatalf("step %s never happened", tt.step)
			}
			if !errors.Is(err, ErrDirReplaced) {
				t.Fatalf("err = %v, want ErrDirReplaced", err)
			}
			if got := entries(t, elsewhere); len(got) > 0 {
				t.Errorf("written through the symlink: %v", got)
			}
			old := dir + ".old"
			if got := readFile(t, filepath.Join(old, "a")) + readFile(t, filepath.Join(old, "b")); got != "a0b0" {
				t.Errorf("moved directory's files: %q", got)
			}
			want := 2
			if tt.atomic {
				want = 4 // a, b, ..data and its snapshot
			}
			if got := entries(t, old); len(got) != want {
				t.Errorf("moved directory holds %v", got)
			}
		})
	}
}

// TestParentIsSymlink: a target whose directory is a symlink is refused;
// its ancestors may be symlinks.
func TestParentIsSymlink(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	real := filepath.Join(root, "real")
	mkdir(t, real)
	link := filepath.Join(root, "link")
	symlink(t, real, link)

	for _, atomic := range []bool{false, true} {
		f := rawFile(filepath.Join(link, "s"), "A")
		f.AtomicDir = atomic
		_, err := Render([]File{f}, resolved(map[string]string{"A": "v"}))
		if !errors.Is(err, ErrDirSymlink) {
			t.Errorf("atomic=%v: err = %v, want ErrDirSymlink", atomic, err)
		}
	}
	if _, err := WriteFile(filepath.Join(link, "s"), []byte("v"), noOwner); !errors.Is(err, ErrDirSymlink) {
		t.Errorf("WriteFile: err = %v", err)
	} else if want := "write " + filepath.Join(link, "s") + ": parent " + link + ": directory is a symlink"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if got := entries(t, real); len(got) > 0 {
		t.Errorf("written through the symlink: %v", got)
	}

	// Below a symlinked ancestor, in a directory that is not one: fine,
	// and so is creating the missing directories there.
	for _, p := range []string{filepath.Join(link, "sub", "s"), filepath.Join(link, "sub", "s2")} {
		if _, err := WriteFile(p, []byte("v"), noOwner); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if got := readFile(t, filepath.Join(real, "sub", "s2")); got != "v" {
		t.Errorf("content %q", got)
	}
}

// TestSameDirectoryTwoPaths: two targets in one directory named through
// two paths (an ancestor symlink) share its lock instead of waiting for
// themselves.
func TestSameDirectoryTwoPaths(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	real := filepath.Join(root, "real")
	mkdir(t, filepath.Join(real, "d"))
	symlink(t, real, filepath.Join(root, "alias"))
	for _, atomic := range []bool{false, true} {
		files := []File{rawFile(filepath.Join(real, "d", "a"), "A"), rawFile(filepath.Join(root, "alias", "d", "b"), "A")}
		files[1].AtomicDir = atomic
		if _, err := Render(files, resolved(map[string]string{"A": "v"})); err != nil {
			t.Fatalf("atomic=%v: %v", atomic, err)
		}
	}
}

// TestFirstAtomicRenderRefusedLeavesNothing: the members of a group's
// first render are linked before the swap; when the directory is swapped
// for a symlink then, the render is refused and removes those links with
// the snapshot: the moved directory is left empty. It sets a package hook,
// so it is not parallel.
func TestFirstAtomicRenderRefusedLeavesNothing(t *testing.T) {
	defer func() { testHookAtomicStep = nil }()
	root := t.TempDir()
	dir, elsewhere := filepath.Join(root, "secrets"), filepath.Join(root, "elsewhere")
	mkdir(t, elsewhere)
	mkdir(t, dir)
	files := atomicFiles(dir, "a", "b")
	swapped := false
	testHookAtomicStep = func(step string) {
		if step == "prelinked" && !swapped {
			swapped = true
			swapForSymlink(t, dir, elsewhere)
		}
	}
	_, err := Render(files, resolved(map[string]string{"A": "a0", "B": "b0"}))
	testHookAtomicStep = nil
	if !swapped {
		t.Fatal("step prelinked never happened")
	}
	if !errors.Is(err, ErrDirReplaced) {
		t.Fatalf("err = %v, want ErrDirReplaced", err)
	}
	if got := entries(t, dir+".old"); len(got) > 0 {
		t.Errorf("the refused first render left %v", got)
	}
	if got := entries(t, elsewhere); len(got) > 0 {
		t.Errorf("written through the symlink: %v", got)
	}
}
