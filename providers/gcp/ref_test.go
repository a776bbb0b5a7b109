package gcp

import (
	"errors"
	"strings"
	"testing"

	"github.com/keyward/keyward/providers"
)

func TestParseTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ref  string
		want target // Project "" = the instance's default
	}{
		{"gcpsm://my-project/db-password", target{"my-project", "db-password", "latest"}},
		{"gcpsm://my-project/db-password#user", target{"my-project", "db-password", "latest"}},
		{"gcpsm://my-project/db_password?version=3", target{"my-project", "db_password", "3"}},
		{"gcpsm://my-project/db?version=latest", target{"my-project", "db", "latest"}},
		{"gcpsm://my-project/db?version=prod", target{"my-project", "db", "prod"}},
		{"gcpsm://123456789012/db", target{"123456789012", "db", "latest"}},
		{"gcpsm://example.com:my-project/db", target{"example.com:my-project", "db", "latest"}},
		{"gcpsm://db-password", target{"", "db-password", "latest"}},
		{"gcpsm://db-password?version=2", target{"", "db-password", "2"}},
		{"gcpsm://projects/my-project/secrets/db", target{"my-project", "db", "latest"}},
		{"gcpsm://projects/my-project/secrets/db/versions/7", target{"my-project", "db", "7"}},
		{"gcpsm://projects/my-project/secrets/db/versions/latest#k", target{"my-project", "db", "latest"}},
		{"gcpsm://projects/db", target{"projects", "db", "latest"}}, // a project named "projects"
		// berglas: #VERSION becomes ?version=
		{"sm://my-project/api-key", target{"my-project", "api-key", "latest"}},
		{"sm://my-project/api-key#5", target{"my-project", "api-key", "5"}},
		// secrets-init
		{"gcp:secretmanager:projects/my-project/secrets/api-key", target{"my-project", "api-key", "latest"}},
		{"gcp:secretmanager:projects/my-project/secrets/api-key/versions/2", target{"my-project", "api-key", "2"}},
		{"gcp:secretmanager:projects/my-project/secrets/api-key/versions/2#field", target{"my-project", "api-key", "2"}},
		// a named instance
		{"gcp-eu://my-project/db", target{"my-project", "db", "latest"}},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			t.Parallel()
			ref, err := providers.Parse(tt.ref)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if ref.Scheme != KindName && !strings.HasPrefix(tt.ref, "gcp-eu:") {
				t.Errorf("scheme %q, want %q", ref.Scheme, KindName)
			}
			got, err := parseTarget(ref)
			if err != nil {
				t.Fatalf("parseTarget: %v", err)
			}
			if got != tt.want {
				t.Errorf("parseTarget = %+v, want %+v", got, tt.want)
			}
			if err := CheckRef(ref); err != nil {
				t.Errorf("CheckRef: %v", err)
			}
		})
	}
}

func TestCheckRefRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ref, want string
	}{
		{"gcpsm://my-project/db/extra", "expected PROJECT/SECRET"},
		{"gcpsm://projects/p-project/secrets", "expected projects/PROJECT/secrets/SECRET"},
		{"gcpsm://projects/my-project/secrets/db/versions", "expected projects/PROJECT/secrets/SECRET"},
		{"gcpsm://projects/my-project/secrets/db/versions/", "empty version"},
		{"gcpsm://projects/my-project/keys/db", "expected projects/PROJECT/secrets/SECRET"},
		{"gcpsm://projects/my-project/secrets/db/aliases/x", "expected projects/PROJECT/secrets/SECRET"},
		{"gcpsm://projects/my-project/locations/europe-west1/secrets/db", "regional secrets"},
		{"gcpsm://My-Project/db", "not a project ID"},
		{"gcpsm://abc/db", "not a project ID"},
		{"gcpsm:///db", "not a project ID"},
		{"gcpsm://my-project/", "secret ID"},
		{"gcpsm://my-project/db.password", "secret ID"},
		{"gcpsm://my-project/db?version=0", "not latest, a version number or an alias"},
		{"gcpsm://my-project/db?version=-1", "not latest, a version number or an alias"},
		{"gcpsm://my-project/db?version=1a", "not latest, a version number or an alias"},
		{"gcpsm://my-project/db?version=a.b", "not latest, a version number or an alias"},
		{"gcpsm://projects/my-project/secrets/db/versions/2?version=3", "version given twice"},
		{"gcp:secretmanager:projects/my-project/secrets/db/versions/x.y", "not latest"},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			t.Parallel()
			ref, err := providers.Parse(tt.ref)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			err = CheckRef(ref)
			if err == nil {
				t.Fatalf("CheckRef accepted it")
			}
			if !errors.Is(err, providers.ErrInvalidReference) {
				t.Errorf("CheckRef = %v, want an error wrapping ErrInvalidReference", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CheckRef = %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

// TestUnknownParam checks that the Set rejects options the kind does not
// take, so that a typo is an error rather than ignored.
func TestUnknownParam(t *testing.T) {
	t.Parallel()
	set := providers.NewSet(providers.Instance{}, nil)
	ref, err := providers.Parse("gcpsm://my-project/db?versoin=2")
	if err != nil {
		t.Fatal(err)
	}
	if err := set.CheckRef(ref); !errors.Is(err, providers.ErrInvalidReference) || !strings.Contains(err.Error(), "versoin") {
		t.Errorf("CheckRef = %v, want an unknown-option error", err)
	}
}
