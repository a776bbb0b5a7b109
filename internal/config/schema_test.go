package config

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

const schemaPath = "../../docs/config.schema.json"

// compileSchema compiles docs/config.schema.json.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", schemaPath, err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("config.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("config.schema.json")
	if err != nil {
		t.Fatalf("compiling %s: %v", schemaPath, err)
	}
	return sch
}

// validateSchema validates YAML text against the schema, as an editor
// would: the YAML is read into JSON values first.
func validateSchema(t *testing.T, sch *jsonschema.Schema, src []byte) error {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		return err
	}
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("YAML to JSON: %v", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	return sch.Validate(inst)
}

// exampleConfigs returns every keyward.yaml or keyward.*.yaml under the
// repository's examples/ directory.
func exampleConfigs(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir("../../examples", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if !d.IsDir() && (name == "keyward.yaml" || strings.HasPrefix(name, "keyward.") && strings.HasSuffix(name, ".yaml")) {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking examples/: %v", err)
	}
	if len(out) == 0 {
		t.Fatal("no keyward.yaml under examples/")
	}
	return out
}

func TestSchemaAcceptsExamples(t *testing.T) {
	t.Parallel()
	sch := compileSchema(t)
	files := append(exampleConfigs(t), "testdata/design.yaml", "testdata/tokens.yaml")
	for _, path := range files {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := validateSchema(t, sch, src); err != nil {
				t.Errorf("schema rejects %s: %v", path, err)
			}
			if _, err := Load(t.Context(), path); err != nil {
				t.Errorf("Load: %v", err)
			}
		})
	}
}

// TestSchemaAndLoaderAgree: each config is rejected by the schema and by
// the loader, so that neither can drift from the other unnoticed.
func TestSchemaAndLoaderAgree(t *testing.T) {
	t.Parallel()
	sch := compileSchema(t)
	const base = "version: 1\nsecrets: {A: vault://a#b}\n"
	const tok = "tokens:\n  t:\n    token_url: https://a/t\n    client_id: vault://a#i\n    client_secret: vault://a#s\n    file: /t\n"
	const jwtTok = "tokens:\n  t:\n    token_url: https://a/t\n    client_id: vault://a#i\n    auth: private_key_jwt\n    file: /t\n"
	const tlsTok = "tokens:\n  t:\n    token_url: https://a/t\n    client_id: vault://a#i\n    auth: tls_client_auth\n    file: /t\n"
	bad := map[string]string{
		"unknown top-level key":        base + "secretz: {}\n",
		"unknown key in file entry":    base + "files:\n  - path: /a\n    secret: A\n    fromat: raw\n",
		"unknown key in token entry":   base + tok + "    scope: [x]\n",
		"unknown key in watch":         base + "watch: {interval: 5m, splay: 1s}\n",
		"unknown key in on_change":     base + "on_change: {reload: true}\n",
		"unknown key in server":        base + "server: {listen: \"127.0.0.1:1\", tls: true}\n",
		"wrong version":                "version: 2\n",
		"version as string":            "version: \"1\"\n",
		"missing version":              "secrets: {A: vault://a#b}\n",
		"bad format enum":              base + "files:\n  - path: /a\n    format: xml\n    secret: A\n",
		"bad auth enum":                base + tok + "    auth: header\n",
		"bad file_format enum":         base + tok + "    file_format: xml\n",
		"file_format without file":     base + "server: {listen: \"127.0.0.1:1\"}\ntokens:\n  t: {token_url: \"https://a/t\", client_id: \"vault://a#i\", client_secret: \"vault://a#s\", file_format: json}\n",
		"raw with secrets":             base + "files:\n  - path: /a\n    format: raw\n    secrets: [A]\n",
		"template with both":           base + "files:\n  - path: /a\n    template: x\n    template_file: y\n",
		"file without content":         base + "files:\n  - path: /a\n",
		"file without path":            base + "files:\n  - secret: A\n",
		"mode unquoted":                base + "files:\n  - path: /a\n    secret: A\n    mode: 0400\n",
		"mode world-writable":          base + "files:\n  - path: /a\n    secret: A\n    mode: \"0602\"\n",
		"mode executable":              base + "files:\n  - path: /a\n    secret: A\n    mode: \"0500\"\n",
		"mode 0000":                    base + "files:\n  - path: /a\n    secret: A\n    mode: \"0000\"\n",
		"mode unreadable by owner":     base + "files:\n  - path: /a\n    secret: A\n    mode: \"0240\"\n",
		"negative owner":               base + "files:\n  - path: /a\n    secret: A\n    owner: -1\n",
		"bad secret name":              "version: 1\nsecrets: {a-b: vault://a#b}\n",
		"bad instance name":            "version: 1\nproviders: {Vault: {kind: vault}}\n",
		"reserved instance name":       "version: 1\nproviders: {arn: {kind: awssm}}\n",
		"provider without kind":        "version: 1\nproviders: {v: {address: x}}\n",
		"provider unknown kind":        "version: 1\nproviders: {v: {kind: consul}}\n",
		"bad duration":                 base + "watch: {interval: 5 minutes}\n",
		"duration as number":           base + "watch: {interval: 300}\n",
		"jitter out of range":          base + "watch: {jitter: 1.5}\n",
		"two on_change actions":        base + "on_change: {signal: HUP, restart: true}\n",
		"restart false":                base + "on_change: {restart: false}\n",
		"bad signal":                   base + "on_change: {signal: KILL}\n",
		"on_change scalar":             base + "on_change: restart\n",
		"http token_url":               base + "tokens:\n  t:\n    token_url: http://auth.example/t\n    client_id: vault://a#i\n    client_secret: vault://a#s\n    file: /t\n",
		"reserved token param":         base + tok + "    params: {grant_type: password}\n",
		"server without listen":        base + "server: {allow_remote: true}\n",
		"keep_env duplicate":           base + "keep_env: [A, A]\n",
		"empty secrets list in file":   base + "files:\n  - path: /a\n    format: dotenv\n    secrets: []\n",
		"file path names a directory":  base + "files:\n  - path: out/\n    secret: A\n",
		"unknown dotenv dialect":       base + "files:\n  - path: /a\n    secrets: [A]\n    dialect: ruby\n",
		"dialect on a json file":       base + "files:\n  - path: /a\n    format: json\n    secrets: [A]\n    dialect: node\n",
		"private_key_jwt without key":  base + jwtTok,
		"private_key_jwt with secret":  base + jwtTok + "    private_key: vault://a#k\n    client_secret: vault://a#s\n",
		"private_key_jwt bad alg":      base + jwtTok + "    private_key: vault://a#k\n    signing_alg: HS256\n",
		"tls without certificate":      base + tlsTok + "    private_key: vault://a#k\n",
		"tls with key_id":              base + tlsTok + "    private_key: vault://a#k\n    certificate: vault://a#c\n    key_id: k1\n",
		"basic with private_key":       base + tok + "    private_key: vault://a#k\n",
		"basic with signing_alg":       base + tok + "    signing_alg: RS256\n",
		"basic without secret":         base + "tokens:\n  t:\n    token_url: https://a/t\n    client_id: vault://a#i\n    file: /t\n",
		"refresh grant without token":  base + tok + "    grant: refresh_token\n",
		"refresh_token without grant":  base + tok + "    refresh_token: vault://a#r\n",
		"unknown grant":                base + tok + "    grant: password\n",
		"auth none with client creds":  base + "tokens:\n  t:\n    token_url: https://a/t\n    client_id: vault://a#i\n    auth: none\n    file: /t\n",
		"auth none with secret":        base + tok + "    auth: none\n    grant: refresh_token\n    refresh_token: vault://a#r\n",
		"reserved refresh_token param": base + tok + "    params: {refresh_token: x}\n",
		"unknown source":               base + "tokens:\n  t: {source: azure, file: /t}\n",
		"vault source with token_url":  base + "tokens:\n  t: {source: vault, token_url: \"https://a/t\", file: /t}\n",
		"gcp source with role_arn":     base + "tokens:\n  t: {source: gcp, role_arn: \"arn:aws:iam::123456789012:role/x\", file: /t}\n",
		"gcp scopes and audience":      base + "tokens:\n  t: {source: gcp, scopes: [a], audience: b, file: /t}\n",
		"aws format for oauth2":        base + tok + "    file_format: credentials\n",
		"profile without credentials":  base + "tokens:\n  t: {source: aws, profile: p, file: /t}\n",
		"aws bad role_arn":             base + "tokens:\n  t: {source: aws, role_arn: deployer, file: /t}\n",
		"verify without jwks_url":      base + tok + "    verify: {issuer: x}\n",
		"verify http jwks_url":         base + tok + "    verify: {jwks_url: \"http://auth.example/jwks\"}\n",
		"verify unknown key":           base + tok + "    verify: {jwks_url: \"https://a/jwks\", aud: x}\n",
		"verify on vault source":       base + "tokens:\n  t: {source: vault, file: /t, verify: {jwks_url: \"https://a/jwks\"}}\n",
		"oauth2 key role_arn":          base + tok + "    role_arn: arn:aws:iam::123456789012:role/x\n",
		"tls on vault source":          base + "tokens:\n  t: {source: vault, file: /t, tls: {ca_cert: ca.pem}}\n",
		"tls on gcp without verify":    base + "tokens:\n  t: {source: gcp, file: /t, tls: {ca_cert: ca.pem}}\n",
		"tls unknown key":              base + tok + "    tls: {ca_cert: ca.pem, skip_verify: true}\n",
		"tls empty ca_cert":            base + tok + "    tls: {ca_cert: \"\"}\n",
	}
	for name, src := range bad {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if err := validateSchema(t, sch, []byte(src)); err == nil {
				t.Errorf("schema accepts it")
			}
			if _, err := Parse([]byte(src), "keyward.yaml"); err == nil {
				t.Errorf("Parse accepts it")
			}
		})
	}
}

// TestSchemaProviderOptions checks the per-kind provider options: each
// kind's documented keys validate, and a misspelt one is flagged by the
// schema just as the provider itself rejects it when `keyward check` builds
// the instance.
func TestSchemaProviderOptions(t *testing.T) {
	t.Parallel()
	sch := compileSchema(t)
	good := []string{
		"{kind: vault, address: https://v:8200, namespace: ns, tls: {ca_cert: ca.pem}, auth: {method: approle, role_id_file: r, secret_id_file: s}}",
		"{kind: awssm, region: eu-west-1, profile: p, role_arn: 'arn:aws:iam::1:role/r', endpoint: 'http://127.0.0.1:5000'}",
		"{kind: awssm, region: eu-west-1, endpoint: 'https://vpce.internal:443', tls: {ca_cert: /etc/kw/corp-ca.pem}}",
		"{kind: gcpsm, project: p, endpoint: '127.0.0.1:9', insecure: true}",
		"{kind: gcpsm, project: p, endpoint: '10.88.0.1:8443', tls: {ca_cert: ca.pem, server_name: sm.internal}}",
		"{kind: k8s, kubeconfig: kc, context: c, watch_scope: namespace}",
		"{kind: file}",
		"{kind: file, max_size: 4MiB, allow_non_regular: true}",
		"{kind: file, max_size: 65536}",
	}
	bad := []string{
		"{kind: vault, adress: https://v:8200}",
		"{kind: vault, auth: {method: userpass}}",
		"{kind: awssm, regio: eu-west-1}",
		"{kind: gcpsm, projekt: p}",
		"{kind: gcpsm, tls: {ca_path: /etc/ssl/certs}}",
		"{kind: k8s, watch_scope: cluster}",
		"{kind: file, root: /etc}",
		"{kind: file, max_size: lots}",
		"{kind: file, max_size: 0}",
	}
	for _, p := range good {
		if err := validateSchema(t, sch, []byte("version: 1\nproviders:\n  x: "+p+"\n")); err != nil {
			t.Errorf("schema rejects %s: %v", p, err)
		}
	}
	for _, p := range bad {
		if err := validateSchema(t, sch, []byte("version: 1\nproviders:\n  x: "+p+"\n")); err == nil {
			t.Errorf("schema accepts %s", p)
		}
	}
}
