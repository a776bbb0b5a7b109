//go:build integration

package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testenv"
)

// TestTokenSources writes keyward's own Vault token (real Vault) and
// temporary AWS credentials of a role (moto's STS) into files with
// `keyward render --once`, from the config's source: keys.
func TestTokenSources(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	v, err := testenv.StartVault(ctx, dir)
	if err != nil {
		t.Fatalf("vault (test/servers/vault.sh) is required under the integration tag: %v", err)
	}
	t.Cleanup(v.Stop)
	m, err := testenv.StartMoto(ctx)
	if err != nil {
		t.Fatalf("moto (test/servers/moto.sh) is required under the integration tag: %v", err)
	}
	t.Cleanup(m.Stop)
	testenv.WriteFile(t, filepath.Join(dir, "keyward.yaml"), `version: 1
tokens:
  vault:
    source: vault
    file: out/vault-token
  deploy:
    source: aws
    role_arn: arn:aws:iam::123456789012:role/deployer
    session_name: kw-cli
    file: out/aws-credentials
    file_format: credentials
    profile: deploy
  process:
    source: aws
    file: out/aws.json
    file_format: credential_process
`)
	r := keyward(t, dir, []string{
		"VAULT_ADDR=" + v.Addr, "VAULT_TOKEN=" + testenv.VaultRootToken,
		"AWS_ENDPOINT_URL=" + m.Endpoint, "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing",
		"AWS_CONFIG_FILE=" + filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "none"), "AWS_EC2_METADATA_DISABLED=true",
	}, "render", "--once", "-c", "keyward.yaml")
	if r.code != 0 {
		t.Fatalf("render --once: exit %d\n%s", r.code, r.stderr)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, "out", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if read("vault-token") != testenv.VaultRootToken {
		t.Error("the vault token file does not hold keyward's token")
	}
	creds := read("aws-credentials")
	if !strings.HasPrefix(creds, "[deploy]\naws_access_key_id = ") || !strings.Contains(creds, "aws_session_token = ") || strings.Contains(creds, "= testing\n") {
		t.Error("the credentials file is no profile of temporary credentials")
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(read("aws.json")), &doc); err != nil || doc["Version"] != float64(1) || doc["SessionToken"] == "" || doc["AccessKeyId"] == "testing" {
		t.Error("aws.json is no credential_process JSON of temporary credentials")
	}
	checkNoSecret(t, r.stdout+r.stderr, testenv.VaultRootToken)
}
