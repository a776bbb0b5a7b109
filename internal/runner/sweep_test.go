package runner

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers"
)

// TestOnceSweepsBeforeFetching: the leftovers of an interrupted write (a
// temp file and an atomic_dir snapshot that ..data does not point to) are
// removed at start even when a store fails and nothing is rendered, while
// files that are not keyward's stay.
func TestOnceSweepsBeforeFetching(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	tmp := filepath.Join(out, ".db.env.keyward-0123456789abcdef.tmp")
	snap := filepath.Join(out, "..2026_01_02_03_04_05.keyward-fedcba9876543210")
	mine := filepath.Join(out, ".db.env.tmp-not-keyward")
	testenv.WriteFile(t, tmp, "old-secret-value")
	testenv.WriteFile(t, filepath.Join(snap, "db.env"), "old-secret-value")
	testenv.WriteFile(t, mine, "keep")
	// A token file's directory is swept too: its temp file is an old
	// access token.
	tokDir := filepath.Join(dir, "tok")
	tokTmp := filepath.Join(tokDir, ".api.keyward-0123456789abcdef.tmp")
	testenv.WriteFile(t, tokTmp, "old-access-token")
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), `version: 1
secrets:
  DB_PASSWORD: file:missing.yaml#db.password
files:
  - path: `+filepath.Join(out, "db.env")+`
    format: dotenv
    secrets: [DB_PASSWORD]
tokens:
  api:
    token_url: https://127.0.0.1:1/token
    client_id: file:missing.yaml#client_id
    client_secret: file:missing.yaml#client_secret
    file: `+filepath.Join(tokDir, "api")+`
`)
	cfg, err := config.Load(t.Context(), filepath.Join(dir, "keyward.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(cfg, Env{}, Options{FileGroup: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Once(t.Context(), OnceOptions{Render: true}); !errors.Is(err, providers.ErrNotFound) {
		t.Fatalf("Once with a missing source = %v, want not found", err)
	}
	for _, p := range []string{tmp, snap, tokTmp} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("leftover %s still there after a start whose store failed (%v)", filepath.Base(p), err)
		}
	}
	if _, err := os.Lstat(mine); err != nil {
		t.Errorf("a file that is not keyward's was removed: %v", err)
	}
}
