package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/keyward/providers"
)

func TestFromEnv(t *testing.T) {
	t.Parallel()
	schemes := []string{"vault", "awssm", "gcpsm", "k8s", "file", "vault-eu"}
	tests := []struct {
		name     string
		environ  []string
		builtin  bool // pass Schemes = nil
		fileRefs bool
		want     map[string]string // name -> canonical reference
		errs     []string          // substrings of the problems, in name order
	}{
		{
			name:    "references and plain values",
			environ: []string{"DB=vault://secret/db#password", "PATH=/usr/bin:/bin", "HOME=/root", "URL=https://example.com/x", "K=k8s://ns/s#key", "EMPTY=", "NOEQ"},
			want:    map[string]string{"DB": "vault://secret/db#password", "K": "k8s://ns/s#key"},
		},
		{
			name:    "compatibility spellings",
			environ: []string{"A=arn:aws:secretsmanager:eu-west-1:1:secret:db:pw", "B=sm://p/s", "C=vault:secret/data/x#key", "D=gcp:secretmanager:projects/p/secrets/s", "E=vault:secret/data/x#key#3"},
			want:    map[string]string{"A": "awssm://arn:aws:secretsmanager:eu-west-1:1:secret:db#pw", "B": "gcpsm://p/s", "C": "vault://secret/data/x#key", "D": "gcpsm://projects/p/secrets/s", "E": "vault://secret/data/x?version=3#key"},
		},
		{
			name: "ordinary values that share a scheme are left alone",
			environ: []string{
				"VAULT_HOSTPORT=vault:8200", "V2=vault:sealed", "V3=vault:secret/data/x", "V4=vault:a b/c#d",
				"K8S_API=k8s:6443", "AWS=awssm:prod/x", "G=gcpsm:p/s",
				"DSN=file:app.db?_auth=1&_auth_user=admin&_auth_pass=S3cretPassw0rd", "SQLITE=file:test.db", "ABS=file:///var/lib/app.db",
			},
			want: map[string]string{},
		},
		{
			name:     "file: values with --env-file-refs",
			environ:  []string{"A=file:dev.yaml#k", "B=file:///etc/kw/dev.yaml#k", "C=vault://x#y"},
			fileRefs: true,
			want:     map[string]string{"A": "file:dev.yaml#k", "B": "file:///etc/kw/dev.yaml#k", "C": "vault://x#y"},
		},
		{
			name:    "declared instance and unknown scheme",
			environ: []string{"A=vault-eu://x#y", "B=postgres://u:pw@db/x", "C=redis:6379"},
			want:    map[string]string{"A": "vault-eu://x#y"},
		},
		{
			name:    "default schemes are the builtin kinds",
			environ: []string{"A=vault-eu://x#y", "B=awssm://prod/x"},
			builtin: true,
			want:    map[string]string{"B": "awssm://prod/x"},
		},
		{
			name:    "last duplicate wins",
			environ: []string{"A=plain", "A=vault://x#y"},
			want:    map[string]string{"A": "vault://x#y"},
		},
		{
			name:    "bad references reported together without their text",
			environ: []string{"Z=vault://", "OK=vault://x#y", "A=vault://secret/db?version=#topsecret", "M=k8s://x#", "Q=awssm://p?topsecret=1&topsecret=2"},
			errs:    []string{"A: vault reference: invalid reference at position", "M: k8s reference: invalid reference at position 8: empty field", "Q: awssm reference: invalid reference at position 23: query parameter given twice", "Z: vault reference: invalid reference at position 9: empty path"},
		},
		{
			name:     "a file: DSN with --env-file-refs is an error without its text",
			environ:  []string{"DB=file:app.db?_auth=1&_auth_user=admin&_auth_pass=topsecret"},
			fileRefs: true,
			errs:     []string{"DB: invalid file reference (the details are not shown"},
		},
		{
			name:    "a reference the provider refuses",
			environ: []string{"V=vault://secret/topsecret?version=0"},
			errs:    []string{"V: invalid vault reference (the details are not shown"},
		},
		{
			name:    "a provider not in this build",
			environ: []string{"G=gcpsm://nobuild/topsecret"},
			errs:    []string{"G: provider gcpsm is not available in this build"},
		},
	}
	// check stands for providers.Set.CheckRef: its messages quote the
	// reference, as the real ones do.
	check := func(r providers.Ref) error {
		switch {
		case strings.HasPrefix(r.Path, "nobuild/"):
			return fmt.Errorf("%s: not in this build: %w", r.Raw, providers.ErrUnavailable)
		case r.Scheme == "file" && len(r.Params) > 0, r.Params["version"] == "0":
			return fmt.Errorf("%s: unknown option: %w", r.Raw, providers.ErrInvalidReference)
		}
		return nil
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := EnvOptions{Schemes: schemes, FileRefs: tt.fileRefs, Check: check}
			if tt.builtin {
				opts.Schemes = nil
			}
			refs, _, err := FromEnv(tt.environ, opts)
			if tt.errs != nil {
				if err == nil {
					t.Fatalf("no error; refs %v", refs)
				}
				ps := problemsOf(t, err)
				if len(ps) != len(tt.errs) {
					t.Fatalf("problems %v, want %d", ps, len(tt.errs))
				}
				for i, w := range tt.errs {
					if !strings.Contains(ps[i].Msg, w) {
						t.Errorf("problem %d = %q, want %q", i, ps[i].Msg, w)
					}
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, EnvSource+": ") || strings.Contains(msg, "topsecret") || strings.Contains(msg, "://") {
					t.Errorf("Error() = %q", msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for name, r := range refs {
				got[name] = r.String()
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("FromEnv = %v, want %v", got, tt.want)
			}
			names := EnvNames(refs)
			if !slices.IsSorted(names) || len(names) != len(tt.want) {
				t.Errorf("EnvNames = %v", names)
			}
		})
	}
}

// TestFromEnvNearMiss checks the warnings about values that look like a
// mistyped reference: they name the variable and the closest spelling, and
// no part of the value; ordinary values get none.
func TestFromEnvNearMiss(t *testing.T) {
	t.Parallel()
	schemes := []string{"vault", "awssm", "gcpsm", "k8s", "file", "vault-eu"}
	tests := []struct {
		val      string
		fileRefs bool
		closest  string // "" for no warning
	}{
		{val: "vualt://secret/topsecret#pw", closest: "vault://"},
		{val: "valut://secret/topsecret#pw", closest: "vault://"},
		{val: "awsm://prod/topsecret", closest: "awssm://"},
		{val: "awssn://prod/topsecret", closest: "awssm://"},
		{val: "gcpsm:/p/topsecret", closest: "gcpsm://"},
		{val: "gcsm://p/topsecret", closest: "gcpsm://"},
		{val: "k8://ns/topsecret#k", closest: "k8s://"},
		{val: "VAULT://secret/topsecret#k", closest: "vault://"},
		{val: "Vault://secret/topsecret#k", closest: "vault://"},
		{val: "vault:/secret/topsecret#k", closest: "vault://"},
		{val: "vault-ue://secret/topsecret#k", closest: "vault-eu://"},
		{val: "vault:secret/data/topsecret", closest: "vault:MOUNT/PATH#KEY"},
		{val: "arn:aws:secretmanager:r:1:secret:topsecret", closest: "arn:aws:secretsmanager:"},
		{val: "gcp:secretsmanager:projects/p/secrets/topsecret", closest: "gcp:secretmanager:"},
		{val: "file:dev.yaml#topsecret", closest: "--env-file-refs"},
		{val: "flie:///etc/topsecret.yaml#k", fileRefs: true, closest: "file://"},
		// Ordinary values.
		{val: "flie:///etc/topsecret.yaml#k"},
		{val: "file:topsecret.db"},
		{val: "file:topsecret.db?mode=ro"},
		{val: "https://example.com/topsecret"},
		{val: "s3://bucket/topsecret"},
		{val: "kms://key/topsecret"},
		{val: "gs://bucket/topsecret"},
		{val: "postgres://u:topsecret@db/x"},
		{val: "vault:8200"},
		{val: "vault:8200/v1/topsecret"},
		{val: "vault:sealed"},
		{val: "C:/topsecret"},
		{val: "topsecret"},
		{val: "db:/topsecret"},
		{val: "hashicorp://topsecret"},
	}
	for _, tt := range tests {
		_, warns, err := FromEnv([]string{"VAR=" + tt.val}, EnvOptions{Schemes: schemes, FileRefs: tt.fileRefs})
		if err != nil {
			t.Errorf("%q: %v", tt.val, err)
			continue
		}
		if tt.closest == "" {
			if len(warns) > 0 {
				t.Errorf("%q: warnings %v, want none", tt.val, warns)
			}
			continue
		}
		if len(warns) != 1 || warns[0].Var != "VAR" || !strings.Contains(warns[0].Msg, tt.closest) {
			t.Errorf("%q: warnings %v, want one for VAR naming %s", tt.val, warns, tt.closest)
			continue
		}
		if strings.Contains(strings.ToLower(warns[0].Msg), "topsecret") {
			t.Errorf("%q: warning quotes the value: %q", tt.val, warns[0].Msg)
		}
	}
}

// FuzzFromEnvNeverQuotesValue checks that no problem or warning about a
// variable carries its value, whatever the value.
func FuzzFromEnvNeverQuotesValue(f *testing.F) {
	for _, s := range []string{
		"vault://x?%zz", "file:app.db?_auth=1&_auth_pass=S3cretPassw0rd", "vualt://x", "vault:a/b",
		"arn:aws:secretsmanager:r:1:secret:", "sm://p", "k8s://ns/s#", "Vault://x", "gcp:secretmanager:x",
	} {
		f.Add(s, true)
	}
	schemes := []string{"vault", "awssm", "gcpsm", "k8s", "file"}
	f.Fuzz(func(t *testing.T, val string, fileRefs bool) {
		secret := "Qz9SECRETqZ"
		val = strings.ReplaceAll(val, "\x00", "") + secret
		_, warns, err := FromEnv([]string{"V=" + val}, EnvOptions{Schemes: schemes, FileRefs: fileRefs})
		if err != nil && strings.Contains(strings.ToLower(err.Error()), strings.ToLower(secret)) {
			t.Fatalf("error quotes the value of V")
		}
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("error is %T, want *Error", err)
		}
		for _, w := range warns {
			if strings.Contains(strings.ToLower(w.Msg), strings.ToLower(secret)) {
				t.Fatalf("warning quotes the value of V")
			}
		}
	})
}
