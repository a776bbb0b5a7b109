package file_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/keyward/keyward/providers"
)

// TestOneFileOneSecret: a path relative to the base directory, the same
// path spelt absolute, and one with a "." in it are one file, so one read
// through the provider set; a file elsewhere, or the same one read in
// another format, is not.
func TestOneFileOneSecret(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{"dev.yaml": "db:\n  user: u\n  password: pw\n", "other.yaml": "a: b\n"})
	set := providers.NewSet(providers.Instance{BaseDir: dir}, nil)
	defer set.Close()
	refs := map[string]providers.Ref{}
	for name, s := range map[string]string{
		"REL":    "file:dev.yaml#db.user",
		"ABS":    "file://" + filepath.Join(dir, "dev.yaml") + "#db.password",
		"DOT":    "file:./dev.yaml",
		"OTHER":  "file:other.yaml#a",
		"FORMAT": "file:dev.yaml?format=raw",
	} {
		r, err := providers.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		refs[name] = r
	}
	plan, failures := set.Plan(refs)
	if len(failures) > 0 {
		t.Fatalf("Plan: %v", failures)
	}
	var groups [][]string
	for _, s := range plan.Sources() {
		groups = append(groups, s.Names)
		if !filepath.IsAbs(s.Ref.Path) {
			t.Errorf("identity %s is not an absolute path", s.Ref)
		}
	}
	slices.SortFunc(groups, func(a, b []string) int { return len(b) - len(a) })
	if len(groups) != 3 || !slices.Equal(groups[0], []string{"ABS", "DOT", "REL"}) {
		t.Errorf("files %v, want ABS, DOT and REL as one, OTHER and FORMAT apart", groups)
	}
	got, err := set.Resolve(t.Context(), refs)
	if err != nil {
		t.Fatal(err)
	}
	if got["REL"].Value.Reveal() != "u" || got["ABS"].Value.Reveal() != "pw" {
		t.Error("the fields of one file were misassigned")
	}
}
