package csiprovider

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	_ "github.com/keyward/keyward/providers/builtin"
)

// serve starts a Server on a real unix socket in a temporary directory
// and returns a client of the driver's own types connected to it.
func serve(t testing.TB, opts Options) v1alpha1.CSIDriverProviderClient {
	t.Helper()
	return serveServer(t, New(opts))
}

// serveServer serves srv as serve does.
func serveServer(t testing.TB, srv *Server) v1alpha1.CSIDriverProviderClient {
	t.Helper()
	dir := t.TempDir()
	l, err := Listen(dir)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, SocketName)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, srv) }()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if _, err := os.Lstat(sock); !os.IsNotExist(err) {
			t.Errorf("socket left behind after Serve returned: %v", err)
		}
	})
	return v1alpha1.NewCSIDriverProviderClient(conn)
}

func attributes(t testing.TB, config string, extra map[string]string) string {
	t.Helper()
	m := map[string]string{ConfigKey: config, PodNameKey: "app-0", PodNamespaceKey: "default", ServiceAccountKey: "app"}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestVersion(t *testing.T) {
	c := serve(t, Options{})
	v, err := c.Version(context.Background(), &v1alpha1.VersionRequest{Version: "v1alpha1"})
	if err != nil {
		t.Fatal(err)
	}
	if v.RuntimeName != RuntimeName || v.Version != "v1alpha1" || v.RuntimeVersion == "" {
		t.Fatalf("Version = %+v", v)
	}
}

func TestMountFileProvider(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "db.json")
	if err := os.WriteFile(db, []byte(`{"user":"app","password":"s3cr3t-one"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "api-key")
	if err := os.WriteFile(key, []byte("k-123"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := `version: 1
secrets:
  DB_PASSWORD: file://` + db + `#password
  API_KEY: file://` + key + `
files:
  - path: app.env
    secrets: [DB_PASSWORD, API_KEY]
  - path: conf/key
    secret: API_KEY
    mode: "0400"
  - path: dsn.txt
    template: 'postgres://app:{{ secret "DB_PASSWORD" }}@db/app'
`
	c := serve(t, Options{NodeIdentityKinds: []string{"file"}, CacheTTL: -1})
	resp, err := c.Mount(context.Background(), &v1alpha1.MountRequest{Attributes: attributes(t, cfg, nil), Permission: "420", TargetPath: "/var/lib/kubelet/pods/x/volumes/v"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*v1alpha1.File{}
	for _, f := range resp.Files {
		got[f.Path] = f
	}
	if len(got) != 3 {
		t.Fatalf("files %v, want app.env, conf/key, dsn.txt", keys(got))
	}
	if f := got["app.env"]; f == nil || f.Mode != 0o644 || !strings.Contains(string(f.Contents), "DB_PASSWORD=") || !strings.Contains(string(f.Contents), "s3cr3t-one") {
		t.Errorf("app.env: mode %o or content not the dotenv of both secrets", f.GetMode())
	}
	if f := got["conf/key"]; f == nil || f.Mode != 0o400 || string(f.Contents) != "k-123" {
		t.Errorf("conf/key: mode %o, or not the raw value", f.GetMode())
	}
	if f := got["dsn.txt"]; f == nil || string(f.Contents) != "postgres://app:s3cr3t-one@db/app" {
		t.Errorf("dsn.txt: not the rendered template")
	}
	versions := map[string]string{}
	for _, ov := range resp.ObjectVersion {
		versions[ov.Id] = ov.Version
	}
	if len(versions) != 2 || versions["DB_PASSWORD"] == "" || versions["API_KEY"] == "" {
		t.Fatalf("object versions %v, want one per secret", versions)
	}
	for _, v := range versions {
		if strings.Contains(v, "s3cr3t") || strings.Contains(v, "k-123") {
			t.Fatal("leaked value in an object version")
		}
	}

	// A rotation changes the object version of that secret only.
	if err := os.WriteFile(key, []byte("k-456"), 0o600); err != nil {
		t.Fatal(err)
	}
	resp2, err := c.Mount(context.Background(), &v1alpha1.MountRequest{Attributes: attributes(t, cfg, nil), Permission: "420"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ov := range resp2.ObjectVersion {
		changed := ov.Version != versions[ov.Id]
		if changed != (ov.Id == "API_KEY") {
			t.Errorf("object version of %s changed=%v after API_KEY rotated", ov.Id, changed)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestMountRefusals(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	if err := os.WriteFile(key, []byte("v"), 0o600); err != nil {
		t.Fatal(err)
	}
	ref := "file://" + key
	cases := []struct {
		name, config string
		opts         Options
		code         codes.Code
		want         string
	}{
		{"no config", "", Options{}, codes.InvalidArgument, `"config" (the keyward config) is missing`},
		{"env", "version: 1\nsecrets: {A: " + ref + "}\nenv: {A: A}\nfiles: [{path: a, secret: A}]\n", Options{NodeIdentityKinds: []string{"file"}}, codes.InvalidArgument, "env (there is no child process"},
		{"tokens", "version: 1\nsecrets: {A: " + ref + "}\ntokens: {t: {token_url: 'http://127.0.0.1:1/t', client_id: " + ref + ", client_secret: " + ref + ", file: t}}\nfiles: [{path: a, secret: A}]\n", Options{NodeIdentityKinds: []string{"file"}}, codes.InvalidArgument, "tokens and server"},
		{"absolute path", "version: 1\nsecrets: {A: " + ref + "}\nfiles: [{path: /etc/a, secret: A}]\n", Options{NodeIdentityKinds: []string{"file"}}, codes.InvalidArgument, "files[0].path: must be a relative path inside the volume"},
		{"escaping path", "version: 1\nsecrets: {A: " + ref + "}\nfiles: [{path: ../a, secret: A}]\n", Options{NodeIdentityKinds: []string{"file"}}, codes.InvalidArgument, "files[0].path: must be a relative path inside the volume"},
		{"node identity not allowed", "version: 1\nsecrets: {A: " + ref + "}\nfiles: [{path: a, secret: A}]\n", Options{}, codes.PermissionDenied, "provider kind file is not available to pods"},
		{"k8s without an API server", "version: 1\nsecrets: {A: 'k8s://default/db#password'}\nfiles: [{path: a, secret: A}]\n", Options{}, codes.PermissionDenied, "provider kind k8s is not available to pods through keyward csi-provider (the provider knows no Kubernetes API server"},
		{"bad config", "version: 1\nsecrets: {A: nope}\nfiles: [{path: a, secret: A}]\n", Options{}, codes.InvalidArgument, "SecretProviderClass parameter config"},
		{"missing file", "version: 1\nsecrets: {A: file://" + dir + "/none}\nfiles: [{path: a, secret: A}]\n", Options{NodeIdentityKinds: []string{"file"}}, codes.NotFound, "A"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := serve(t, tc.opts)
			_, err := c.Mount(context.Background(), &v1alpha1.MountRequest{Attributes: attributes(t, tc.config, nil)})
			st, _ := status.FromError(err)
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.want) {
				t.Fatalf("Mount error %v (%s), want %v containing %q", st.Code(), st.Message(), tc.code, tc.want)
			}
			if strings.Count(st.Message(), "\n") > 0 {
				t.Errorf("error is not one line: %q", st.Message())
			}
		})
	}
}
