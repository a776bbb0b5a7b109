package runner

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/testenv"
	_ "github.com/keyward/keyward/providers/file"
)

// TestOnce: one run resolves the config's secrets and the references of
// the environment (under env:), renders the files, and the child's
// environment built from its values has both.
func TestOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	testenv.WriteFile(t, filepath.Join(dir, "dev.yaml"), "db:\n  user: app-user\n  password: app-password-1\n")
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), `version: 1
secrets:
  DB_USER: file:dev.yaml#db.user
  DB_PASSWORD: file:dev.yaml#db.password
env:
  PGUSER: DB_USER
files:
  - path: `+filepath.Join(dir, "out", "db.env")+`
    format: dotenv
    secrets: [DB_PASSWORD]
`)
	cfg, err := config.Load(t.Context(), filepath.Join(dir, "keyward.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	environ := []string{"PATH=/bin", "API_KEY=file:" + filepath.Join(dir, "dev.yaml") + "#db.password"}
	r, err := New(cfg, Env{Environ: environ}, Options{EnvRefs: true, EnvFileRefs: true, FileGroup: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := slices.Sorted(func(yield func(string) bool) {
		for n := range r.Refs() {
			if !yield(n) {
				return
			}
		}
	}); !slices.Equal(got, []string{"DB_PASSWORD", "DB_USER", EnvRefPrefix + "API_KEY"}) {
		t.Fatalf("refs %v", got)
	}
	res, err := r.Once(t.Context(), OnceOptions{Render: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := testenv.ReadFile(t, filepath.Join(dir, "out", "db.env")); got != "DB_PASSWORD=app-password-1\n" {
		t.Errorf("rendered file is not the config's")
	}
	env, err := ChildEnv(cfg, environ, r.envRefs, res.Values, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"API_KEY=app-password-1", "PATH=/bin", "PGUSER=app-user"}
	slices.Sort(env)
	if !slices.Equal(env, want) {
		t.Errorf("the child's environment is not the config's and the environment's values (%d variables)", len(env))
	}
}

// TestFileGroupUsage: a --file-group below -1 is a usage error naming it,
// before any provider is built.
func TestFileGroupUsage(t *testing.T) {
	t.Parallel()
	_, err := New(nil, Env{}, Options{FileGroup: -2})
	var ue *UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--file-group -2") {
		t.Errorf("New with --file-group -2 = %v, want a usage error naming it", err)
	}
}
