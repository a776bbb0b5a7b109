package render

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestRender(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secrets := resolved(map[string]string{"DB_PASSWORD": "pa ss", "STRIPE_KEY": "sk_live_1", "TLS_CERT": "-----BEGIN-----\n"})
	files := []File{
		{Path: filepath.Join(dir, "app.env"), Format: FormatDotenv, Secrets: []string{"STRIPE_KEY", "DB_PASSWORD"}, Mode: 0o400, UID: -1, GID: -1},
		rawFile(filepath.Join(dir, "tls", "tls.crt"), "TLS_CERT"),
		{Path: filepath.Join(dir, "s.json"), Format: FormatJSON, Secrets: []string{"DB_PASSWORD"}, UID: -1, GID: -1},
		{Path: filepath.Join(dir, "s.yaml"), Format: FormatYAML, Secrets: []string{"DB_PASSWORD"}, UID: -1, GID: -1},
		{Path: filepath.Join(dir, "config.ini"), Format: FormatTemplate, Template: "password = {{ secret \"DB_PASSWORD\" }}\n", UID: -1, GID: -1},
	}
	res, err := Render(files, secrets)
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, f := range files {
		all = append(all, f.Path)
	}
	if !slices.Equal(res.Changed, all) || len(res.Unchanged) != 0 {
		t.Errorf("first render: %+v", res)
	}
	want := map[string]string{
		files[0].Path: "DB_PASSWORD='pa ss'\nSTRIPE_KEY=sk_live_1\n",
		files[1].Path: "-----BEGIN-----\n",
		files[2].Path: "{\n  \"DB_PASSWORD\": \"pa ss\"\n}\n",
		files[3].Path: "DB_PASSWORD: \"pa ss\"\n",
		files[4].Path: "password = pa ss\n",
	}
	for p, w := range want {
		if got := readFile(t, p); got != w {
			t.Errorf("%s = %q, want %q", p, got, w)
		}
	}
	if m := statMode(t, files[0].Path); m != 0o400 {
		t.Errorf("mode %#o", m)
	}

	// Rotation of one secret changes only the files that use it.
	secrets["STRIPE_KEY"] = resolved(map[string]string{"X": "sk_live_2"})["X"]
	res, err = Render(files, secrets)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Changed, all[:1]) || !slices.Equal(res.Unchanged, all[1:]) {
		t.Errorf("second render: %+v", res)
	}
}

func TestRenderAllOrNothing(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-value"
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	writeRaw(t, good, "old")
	files := []File{
		rawFile(good, "A"),
		{Path: filepath.Join(dir, "a.env"), Format: FormatDotenv, Secrets: []string{"A", "X"}, UID: -1, GID: -1},
		{Path: filepath.Join(dir, "b.ini"), Format: FormatTemplate, Template: "\n\n{{ secret \"A\" | nosuch }}", UID: -1, GID: -1},
		rawFile(filepath.Join(dir, "c"), "A"),
	}
	_, err := Render(files, resolved(map[string]string{"A": secret}))
	want := "render: 2 files failed: " + files[1].Path + ` (dotenv): secret "X" not resolved; ` +
		files[2].Path + ` (template): line 3: function "nosuch" not defined`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
	var re *Error
	if !errors.As(err, &re) || len(re.Failures) != 2 {
		t.Errorf("not an *Error with 2 failures: %#v", err)
	}
	assertNoLeak(t, err, secret)
	if got := readFile(t, good); got != "old" {
		t.Errorf("good file written: %q", got)
	}
	if _, err := os.Stat(files[3].Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("c written")
	}
}

func TestWriteChecksAllTargetsFirst(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "new", "b")
	writeRaw(t, a, "old a")
	dirTarget := filepath.Join(dir, "isdir")
	if err := os.Mkdir(dirTarget, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(a, link); err != nil {
		t.Fatal(err)
	}
	files := []File{rawFile(a, "A"), rawFile(b, "A"), rawFile(dirTarget, "A"), rawFile(link, "A")}
	_, err := Write(files, [][]byte{[]byte("1"), []byte("2"), []byte("3"), []byte("4")})
	want := "render: 2 files failed: " + dirTarget + " (raw): target is a directory; " + link + " (raw): target is a symlink"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
	if !errors.Is(err, ErrDirectory) || !errors.Is(err, ErrSymlink) {
		t.Errorf("errors.Is does not see the sentinels")
	}
	if got := readFile(t, a); got != "old a" {
		t.Errorf("a rewritten: %q", got)
	}
	if _, err := os.Stat(filepath.Dir(b)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("b's directory created")
	}
}

// TestWriteAllOrNothingDiskFull: the second file does not fit, so the first
// one, which would, is not replaced either.
func TestWriteAllOrNothingDiskFull(t *testing.T) {
	t.Parallel()
	full := mountTinyTmpfs(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(full, "sub", "b")
	writeRaw(t, a, "old a")
	fill(t, full)
	files := []File{rawFile(a, "A"), rawFile(b, "B")}
	_, err := Write(files, [][]byte{[]byte("new a"), bytes.Repeat([]byte("b"), 32<<10)})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("err = %v, want ENOSPC", err)
	}
	if !strings.HasPrefix(err.Error(), "render "+b+" (raw): ") {
		t.Errorf("error %q does not name %s", err, b)
	}
	if got := readFile(t, a); got != "old a" {
		t.Errorf("a replaced although b failed: %q", got)
	}
	if tmp := tempNames(t, dir); len(tmp) > 0 {
		t.Errorf("temp files left in %s: %v", dir, tmp)
	}
	if _, err := os.Stat(filepath.Dir(b)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory created for b was not removed: %v", err)
	}
}

func TestBuildValidation(t *testing.T) {
	t.Parallel()
	secrets := resolved(map[string]string{"A": "a"})
	tests := []struct {
		file File
		want string
	}{
		{File{Path: "rel", Format: FormatRaw, Secret: "A"}, "path is not absolute"},
		{File{Path: "/x", Format: "toml", Secrets: []string{"A"}}, `unknown format "toml"`},
		{File{Path: "/x", Format: FormatRaw}, "raw takes exactly one secret"},
		{File{Path: "/x", Format: FormatRaw, Secret: "A", Secrets: []string{"A"}}, "raw takes exactly one secret"},
		{File{Path: "/x", Format: FormatTemplate}, "exactly one of the keys template and template_file"},
		{File{Path: "/x", Format: FormatTemplate, Template: "x", TemplateFile: "/t"}, "exactly one of the keys template and template_file"},
		{File{Path: "/x", Format: FormatJSON, Secret: "A"}, "json takes a list of secrets"},
		{File{Path: "/x", Format: FormatRaw, Secret: "A", Mode: 0o1777}, "outside 0777"},
		{File{Path: "/x", Format: FormatRaw, Secret: "A", Mode: 0o040}, "mode 0040 does not let the file's owner read it"},
		{File{Path: "/d/..data", Format: FormatRaw, Secret: "A", AtomicDir: true}, `must not start with ".."`},
	}
	for _, tt := range tests {
		_, err := Build([]File{tt.file}, secrets)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err = %v, want %q", tt.file, err, tt.want)
		}
	}
	_, err := Build([]File{rawFile("/x/y", "A"), rawFile("/x//y", "A")}, secrets)
	if err == nil || !strings.Contains(err.Error(), "path appears more than once") {
		t.Errorf("duplicate: %v", err)
	}
}
