package render

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func atomicFiles(dir string, names ...string) []File {
	var files []File
	for _, n := range names {
		files = append(files, File{Path: filepath.Join(dir, n), Format: FormatRaw, Secret: strings.ToUpper(n), AtomicDir: true, UID: -1, GID: -1})
	}
	return files
}

// tsDirs lists the timestamped data directories in dir.
func tsDirs(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if isTSDir(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

func readlink(t *testing.T, p string) string {
	t.Helper()
	s, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAtomicDirLayout(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "secrets")
	files := atomicFiles(dir, "a", "b")
	files[1].Mode = 0o400

	res, err := Render(files, resolved(map[string]string{"A": "a1", "B": "b1"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changed) != 2 {
		t.Errorf("result %+v", res)
	}
	ts := tsDirs(t, dir)
	if len(ts) != 1 || !strings.HasPrefix(ts[0], "..20") {
		t.Fatalf("timestamped dirs: %v", ts)
	}
	if got := readlink(t, filepath.Join(dir, "..data")); got != ts[0] {
		t.Errorf("..data -> %s, want %s", got, ts[0])
	}
	for _, n := range []string{"a", "b"} {
		if got := readlink(t, filepath.Join(dir, n)); got != "..data/"+n {
			t.Errorf("%s -> %s", n, got)
		}
	}
	if got := readFile(t, filepath.Join(dir, "a")) + readFile(t, filepath.Join(dir, "b")); got != "a1b1" {
		t.Errorf("content %q", got)
	}
	if m := statMode(t, filepath.Join(dir, ts[0])); m != 0o700 {
		t.Errorf("timestamped dir mode %#o", m)
	}
	if m := statMode(t, filepath.Join(dir, ts[0], "b")); m != 0o400 {
		t.Errorf("b mode %#o", m)
	}
	if _, err := os.Lstat(filepath.Join(dir, "..data_tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("..data_tmp left")
	}

	// Unchanged: no swap at all.
	res, err = Render(files, resolved(map[string]string{"A": "a1", "B": "b1"}))
	if err != nil || len(res.Changed) != 0 || len(res.Unchanged) != 2 {
		t.Fatalf("unchanged render: %+v, %v", res, err)
	}
	if got := tsDirs(t, dir); !slices.Equal(got, ts) {
		t.Errorf("swapped although unchanged: %v -> %v", ts, got)
	}

	// Changed: a new directory, the old one removed.
	res, err = Render(files, resolved(map[string]string{"A": "a2", "B": "b1"}))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Changed, []string{files[0].Path}) || !slices.Equal(res.Unchanged, []string{files[1].Path}) {
		t.Errorf("result %+v", res)
	}
	ts2 := tsDirs(t, dir)
	if len(ts2) != 1 || ts2[0] == ts[0] {
		t.Fatalf("after swap: %v (before %v)", ts2, ts)
	}
	if got := readFile(t, filepath.Join(dir, "a")) + readFile(t, filepath.Join(dir, "b")); got != "a2b1" {
		t.Errorf("content %q", got)
	}

	// Rendering only a keeps b (carried over into the new directory).
	if _, err := Render(files[:1], resolved(map[string]string{"A": "a3"})); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "a")) + readFile(t, filepath.Join(dir, "b")); got != "a3b1" {
		t.Errorf("content after partial render %q", got)
	}
	if m := statMode(t, filepath.Join(dir, "..data", "b")); m != 0o400 {
		t.Errorf("carried-over b mode %#o", m)
	}
	if got := tsDirs(t, dir); len(got) != 1 {
		t.Errorf("timestamped dirs: %v", got)
	}
}

func TestAtomicDirTargets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// A regular file from an earlier non-atomic layout becomes a link.
	writeRaw(t, filepath.Join(dir, "a"), "plain")
	// A symlink that points elsewhere is refused, and its target untouched.
	other := filepath.Join(t.TempDir(), "other")
	writeRaw(t, other, "precious")
	if err := os.Symlink(other, filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	files := atomicFiles(dir, "a", "b")
	secrets := resolved(map[string]string{"A": "a1", "B": "b1"})
	_, err := Render(files, secrets)
	if !errors.Is(err, ErrSymlink) {
		t.Fatalf("err = %v", err)
	}
	if got := readFile(t, filepath.Join(dir, "a")); got != "plain" {
		t.Errorf("a changed although b was refused: %q", got)
	}
	if got := readFile(t, other); got != "precious" {
		t.Errorf("symlink target written: %q", got)
	}
	if ts := tsDirs(t, dir); len(ts) != 0 {
		t.Errorf("staged dirs left: %v", ts)
	}

	files[1].AllowSymlink = true
	if _, err := Render(files, secrets); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		if got := readlink(t, filepath.Join(dir, n)); got != "..data/"+n {
			t.Errorf("%s -> %s", n, got)
		}
	}
	if got := readFile(t, other); got != "precious" {
		t.Errorf("symlink target written: %q", got)
	}

	// A deleted link is restored without a swap.
	ts := tsDirs(t, dir)
	if err := os.Remove(filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	res, err := Render(files, secrets)
	if err != nil || !slices.Equal(res.Changed, []string{files[0].Path}) {
		t.Fatalf("relink: %+v, %v", res, err)
	}
	if got := tsDirs(t, dir); !slices.Equal(got, ts) || readFile(t, filepath.Join(dir, "a")) != "a1" {
		t.Errorf("relink swapped or failed: %v", got)
	}

	// ..data that is not ours is refused.
	bad := t.TempDir()
	if err := os.Symlink("/etc", filepath.Join(bad, "..data")); err != nil {
		t.Fatal(err)
	}
	if _, err := Render(atomicFiles(bad, "a"), secrets); err == nil || !strings.Contains(err.Error(), "does not point to a ..timestamp directory") {
		t.Errorf("foreign ..data: %v", err)
	}
}

// TestAtomicDirConsistentReads reads both files after every step of a swap
// and checks they are always from the same generation. It sets a package
// hook, so it is not parallel.
func TestAtomicDirConsistentReads(t *testing.T) {
	dir := t.TempDir()
	files := atomicFiles(dir, "a", "b")
	if _, err := Render(files, resolved(map[string]string{"A": "a0", "B": "b0"})); err != nil {
		t.Fatal(err)
	}
	var steps []string
	gen := "0"
	testHookAtomicStep = func(step string) {
		steps = append(steps, step)
		a := readFile(t, filepath.Join(dir, "a"))
		b := readFile(t, filepath.Join(dir, "b"))
		if a[1:] != b[1:] {
			t.Errorf("after %s: a=%q b=%q (mixed generations)", step, a, b)
		}
		gen = a[1:]
	}
	defer func() { testHookAtomicStep = nil }()

	for _, g := range []string{"1", "2", "3"} {
		steps = nil
		if _, err := Render(files, resolved(map[string]string{"A": "a" + g, "B": "b" + g})); err != nil {
			t.Fatal(err)
		}
		if want := []string{"staged", "data_tmp", "swapped", "cleaned"}; !slices.Equal(steps, want) {
			t.Errorf("steps %v, want %v", steps, want)
		}
		if gen != g {
			t.Errorf("generation %s after render %s", gen, g)
		}
		if ts := tsDirs(t, dir); len(ts) != 1 {
			t.Errorf("timestamped dirs: %v", ts)
		}
	}
}

// TestAtomicDirMembersAppearTogether: the members of a group appear all
// at once, with the swap of ..data: at no step of a first render is one
// member readable while another is missing, and a member added to the
// group appears with the new generation of the others, never beside the
// old one. It sets a package hook, so it is not parallel.
func TestAtomicDirMembersAppearTogether(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "group")
	var steps []string
	check := func(step string, names []string) {
		steps = append(steps, step)
		seen := map[string][]string{} // generation -> members holding it
		for _, n := range names {
			b, err := os.ReadFile(filepath.Join(dir, n))
			switch {
			case errors.Is(err, fs.ErrNotExist):
				seen["missing"] = append(seen["missing"], n)
			case err != nil:
				t.Fatal(err)
			default:
				seen[string(b[1:])] = append(seen[string(b[1:])], n)
			}
		}
		if len(seen) > 1 {
			t.Errorf("after step %s: members of different generations or missing: %v", step, seen)
		}
	}
	defer func() { testHookAtomicStep = nil }()

	names := []string{"a", "b", "c"}
	testHookAtomicStep = func(step string) { check(step, names) }
	if _, err := Render(atomicFiles(dir, names...), resolved(map[string]string{"A": "a1", "B": "b1", "C": "c1"})); err != nil {
		t.Fatal(err)
	}
	check("end of the first render", names)
	if !slices.Contains(steps, "swapped") {
		t.Fatalf("steps %v: no swap", steps)
	}

	// A member d joins the group: until the swap it is missing and the
	// others are generation 1 (d's absence is then not checked against
	// them); after it, all four are generation 2.
	steps = nil
	all := []string{"a", "b", "c", "d"}
	swapped := false
	testHookAtomicStep = func(step string) {
		if step == "swapped" {
			swapped = true
		}
		if swapped {
			check(step, all)
		} else {
			check(step, names)
		}
	}
	if _, err := Render(atomicFiles(dir, all...), resolved(map[string]string{"A": "a2", "B": "b2", "C": "c2", "D": "d2"})); err != nil {
		t.Fatal(err)
	}
	check("end of the second render", all)
}

func TestAtomicDirDiskFull(t *testing.T) {
	t.Parallel()
	dir := mountTinyTmpfs(t)
	files := atomicFiles(dir, "a", "b")
	if _, err := Render(files, resolved(map[string]string{"A": "a0", "B": "b0"})); err != nil {
		t.Fatal(err)
	}
	ts := tsDirs(t, dir)
	fill(t, dir)
	_, err := Render(files, resolved(map[string]string{"A": "a1", "B": strings.Repeat("b", 32<<10)}))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("err = %v, want ENOSPC", err)
	}
	if want := "render " + dir + " (atomic_dir): no space left on device"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if got := readFile(t, filepath.Join(dir, "a")) + readFile(t, filepath.Join(dir, "b")); got != "a0b0" {
		t.Errorf("content %q", got)
	}
	if got := tsDirs(t, dir); !slices.Equal(got, ts) {
		t.Errorf("timestamped dirs %v, want %v", got, ts)
	}
}

func TestAtomicDirOwner(t *testing.T) {
	t.Parallel()
	needRoot(t)
	dir := filepath.Join(publicDir(t, 0), "d")
	files := atomicFiles(dir, "a", "b")
	for i := range files {
		files[i].UID, files[i].GID = 65534, 65534
	}
	if _, err := Render(files, resolved(map[string]string{"A": "a", "B": "b"})); err != nil {
		t.Fatal(err)
	}
	// The directories are keyward's (root's here), searchable by the
	// files' owner; the files are the owner's.
	for _, p := range []string{dir, filepath.Join(dir, "..data") + "/"} {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 0 || st.Mode&0o7777 != 0o711 {
			t.Errorf("%s: owner %d mode %#o", p, st.Uid, st.Mode&0o7777)
		}
	}
	for _, n := range []string{"a", "b"} {
		p := filepath.Join(dir, n)
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 65534 || st.Gid != 65534 {
			t.Errorf("%s owned by %d:%d", p, st.Uid, st.Gid)
		}
		if err := readAs(t, 65534, 65534, p); err != nil {
			t.Errorf("owner cannot read %s: %v", p, err)
		}
	}
}
