package providers_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/keyward/keyward/providers"
)

type params = map[string]string

// parseTests holds every documented spelling of DESIGN §1 and the Ref
// each must parse into (Raw aside).
var parseTests = []struct {
	in   string
	want providers.Ref
}{
	// Canonical SCHEME://PATH[?query][#field] for each builtin kind.
	{"vault://secret/payments/db#password", providers.Ref{Scheme: "vault", Path: "secret/payments/db", Field: "password"}},
	{"vault://secret/payments/db?version=3#password", providers.Ref{Scheme: "vault", Path: "secret/payments/db", Field: "password", Params: params{"version": "3"}}},
	{"vault://database/creds/ro", providers.Ref{Scheme: "vault", Path: "database/creds/ro"}},
	{"awssm://prod/stripe#api_key", providers.Ref{Scheme: "awssm", Path: "prod/stripe", Field: "api_key"}},
	{"awssm://prod/stripe?version-stage=AWSPREVIOUS#api_key", providers.Ref{Scheme: "awssm", Path: "prod/stripe", Field: "api_key", Params: params{"version-stage": "AWSPREVIOUS"}}},
	{"awssm://prod/stripe?version-id=01234567-89ab", providers.Ref{Scheme: "awssm", Path: "prod/stripe", Params: params{"version-id": "01234567-89ab"}}},
	{"awssm://arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/stripe-AbCdEf#api_key", providers.Ref{Scheme: "awssm", Path: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/stripe-AbCdEf", Field: "api_key"}},
	{"gcpsm://my-project/stripe#key", providers.Ref{Scheme: "gcpsm", Path: "my-project/stripe", Field: "key"}},
	{"gcpsm://projects/my-project/secrets/stripe/versions/5", providers.Ref{Scheme: "gcpsm", Path: "projects/my-project/secrets/stripe/versions/5"}},
	{"k8s://payments/tls#tls.crt", providers.Ref{Scheme: "k8s", Path: "payments/tls", Field: "tls.crt"}},
	{"k8s://payments/db", providers.Ref{Scheme: "k8s", Path: "payments/db"}},
	{"file:///etc/kw/dev.yaml#partner.client_id", providers.Ref{Scheme: "file", Path: "/etc/kw/dev.yaml", Field: "partner.client_id"}},
	{"file:///etc/kw/cert.pem", providers.Ref{Scheme: "file", Path: "/etc/kw/cert.pem"}},
	{"file:dev.yaml#key", providers.Ref{Scheme: "file", Path: "dev.yaml", Field: "key"}},
	{"file:../secrets/.env#DB_PASSWORD", providers.Ref{Scheme: "file", Path: "../secrets/.env", Field: "DB_PASSWORD"}},
	{"file:/etc/kw/dev.yaml#k", providers.Ref{Scheme: "file", Path: "/etc/kw/dev.yaml", Field: "k"}},
	{"file:dev.json?format=json#a.b", providers.Ref{Scheme: "file", Path: "dev.json", Field: "a.b", Params: params{"format": "json"}}},
	// Declared instance names are schemes too.
	{"vault-eu://secret/partner#client_secret", providers.Ref{Scheme: "vault-eu", Path: "secret/partner", Field: "client_secret"}},
	{"my_store2://x", providers.Ref{Scheme: "my_store2", Path: "x"}},
	// Percent-escapes and query escapes.
	{"k8s://ns/a%23b#c%2Ed%25", providers.Ref{Scheme: "k8s", Path: "ns/a#b", Field: "c.d%"}},
	{"awssm://x?version-stage=A%2BB+C", providers.Ref{Scheme: "awssm", Path: "x", Params: params{"version-stage": "A+B C"}}},
	{"vault://p?a=1&b=2", providers.Ref{Scheme: "vault", Path: "p", Params: params{"a": "1", "b": "2"}}},
	{"vault://p#a#b", providers.Ref{Scheme: "vault", Path: "p", Field: "a#b"}},
	// ECS / secrets-init ARN form.
	{"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf", providers.Ref{Scheme: "awssm", Path: "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"}},
	{"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db:password", providers.Ref{Scheme: "awssm", Path: "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db", Field: "password"}},
	{"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db:password:AWSPREVIOUS", providers.Ref{Scheme: "awssm", Path: "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db", Field: "password", Params: params{"version-stage": "AWSPREVIOUS"}}},
	{"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db:password:AWSCURRENT:0123-abcd", providers.Ref{Scheme: "awssm", Path: "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db", Field: "password", Params: params{"version-stage": "AWSCURRENT", "version-id": "0123-abcd"}}},
	{"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db::AWSPREVIOUS", providers.Ref{Scheme: "awssm", Path: "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db", Params: params{"version-stage": "AWSPREVIOUS"}}},
	{"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db:::0123-abcd", providers.Ref{Scheme: "awssm", Path: "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db", Params: params{"version-id": "0123-abcd"}}},
	{"arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:db", providers.Ref{Scheme: "awssm", Path: "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:db"}},
	// berglas.
	{"sm://my-project/api-key", providers.Ref{Scheme: "gcpsm", Path: "my-project/api-key"}},
	{"sm://my-project/api-key#3", providers.Ref{Scheme: "gcpsm", Path: "my-project/api-key", Params: params{"version": "3"}}},
	// secrets-init GCP form.
	{"gcp:secretmanager:projects/p/secrets/s", providers.Ref{Scheme: "gcpsm", Path: "projects/p/secrets/s"}},
	{"gcp:secretmanager:projects/p/secrets/s/versions/7", providers.Ref{Scheme: "gcpsm", Path: "projects/p/secrets/s/versions/7"}},
	{"gcp:secretmanager:projects/p/secrets/s#field", providers.Ref{Scheme: "gcpsm", Path: "projects/p/secrets/s", Field: "field"}},
	// bank-vaults vault-env.
	{"vault:secret/data/path#key", providers.Ref{Scheme: "vault", Path: "secret/data/path", Field: "key"}},
	{"vault:secret/data/path#key#2", providers.Ref{Scheme: "vault", Path: "secret/data/path", Field: "key", Params: params{"version": "2"}}},
	{"vault:secret/data/path", providers.Ref{Scheme: "vault", Path: "secret/data/path"}},
	{"vault:secret/data/path?x=1#key#2", providers.Ref{Scheme: "vault", Path: "secret/data/path", Field: "key", Params: params{"x": "1", "version": "2"}}},
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tt := range parseTests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := providers.Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got.Raw != tt.in {
				t.Errorf("Raw = %q, want the input", got.Raw)
			}
			got.Raw = ""
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q)\n got %#v\nwant %#v", tt.in, got, tt.want)
			}
		})
	}
}

// TestStringRoundTrip: the canonical spelling parses back to the same Ref.
func TestStringRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tt := range parseTests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			r, err := providers.Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			s := r.String()
			back, err := providers.Parse(s)
			if err != nil {
				t.Fatalf("Parse(%q) (String of %q): %v", s, tt.in, err)
			}
			if back.Raw != s {
				t.Errorf("Raw = %q, want %q", back.Raw, s)
			}
			r.Raw, back.Raw = "", ""
			if !reflect.DeepEqual(back, r) {
				t.Errorf("round trip through %q\n got %#v\nwant %#v", s, back, r)
			}
			if back.String() != s {
				t.Errorf("String is not stable: %q then %q", s, back.String())
			}
		})
	}
}

func TestStringCanonical(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"sm://p/s#3":                                        "gcpsm://p/s?version=3",
		"vault:secret/data/path#key#2":                      "vault://secret/data/path?version=2#key",
		"gcp:secretmanager:projects/p/secrets/s":            "gcpsm://projects/p/secrets/s",
		"arn:aws:secretsmanager:r:1:secret:n:k:AWSPREVIOUS": "awssm://arn:aws:secretsmanager:r:1:secret:n?version-stage=AWSPREVIOUS#k",
		"file:dev.yaml#a":                                   "file:dev.yaml#a",
		"file:/etc/x":                                       "file:///etc/x",
		"vault://p?b=2&a=1":                                 "vault://p?a=1&b=2",
		"k8s://ns/a%23b#c%3Fd":                              "k8s://ns/a%23b#c%3Fd",
	}
	for in, want := range tests {
		r, err := providers.Parse(in)
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if got := r.String(); got != want {
			t.Errorf("Parse(%q).String() = %q, want %q", in, got, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	arn := "arn:aws:secretsmanager:"
	tests := []struct {
		in  string
		pos int
		msg string // a substring of the message
	}{
		{"", 1, "empty reference"},
		{"vault", 1, "missing scheme"},
		{"/etc/kw/dev.yaml", 1, "missing scheme"},
		{"Vault://x", 1, "scheme must be lower-case"},
		{"1x://y", 1, "must be lower-case"},
		{" vault://x", 1, "leading or trailing space"},
		{"vault://x ", 10, "leading or trailing space"},
		{"vault://x\ty", 10, "control character"},
		{"vault://x\x7f", 10, "control character"},
		{"vault://", 9, "empty path"},
		{"vault://#k", 9, "empty path"},
		{"vault://?a=1", 9, "empty path"},
		{"vault://x#", 10, "empty field"},
		{"vault://x?", 10, "empty query"},
		{"vault://x?a", 11, "key=value"},
		{"vault://x?=1", 11, "key=value"},
		{"vault://x?a=1&&b=2", 15, "key=value"},
		{"vault://x?a=1&a=2", 15, "given twice"},
		{"vault://x?a=", 13, "empty value"},
		{"vault://x?a=%zz", 13, "invalid escape in query value"},
		{"vault://x?%zz=1", 11, "invalid escape in query key"},
		{"vault://x%zz", 10, "invalid percent-escape"},
		{"vault://x%41%4", 13, "invalid percent-escape"},
		{"vault://x#a%2", 12, "invalid percent-escape"},
		{"file://rel/path", 8, "absolute path"},
		{"file://", 8, "absolute path"},
		{"file:", 6, "empty path"},
		{"k8s:", 5, "empty path"},
		{"arn:aws:s3:::bucket/key", 1, "not an AWS Secrets Manager secret ARN"},
		{arn + "us-east-1:123:secret", 44, "incomplete"},
		{arn + ":123:secret:x", 24, "empty region"},
		{arn + "r::secret:x", 26, "empty account"},
		{arn + "r:1:other:x", 28, "resource type"},
		{arn + "r:1:secret:", 35, "empty secret name"},
		{arn + "r:1:secret:n#k", 36, "'#' or '?'"},
		{arn + "r:1:secret:n?x=1", 36, "'#' or '?'"},
		{arn + "r:1:secret:n:k:s:i:extra", 43, "too many"},
		{"sm://project", 6, "sm://PROJECT/SECRET"},
		{"sm://p/s/x", 6, "sm://PROJECT/SECRET"},
		{"sm:///s", 6, "sm://PROJECT/SECRET"},
		{"sm://p/s?version=1#2", 19, "version given twice"},
		{"sm:p/s", 1, "sm://PROJECT/SECRET"},
		{"gcp:p/s", 1, "gcp:secretmanager:projects"},
		{"gcp:secretmanager:p/s", 19, "projects/PROJECT/secrets/SECRET"},
		{"gcp:secretmanager:", 19, "empty path"},
		{"vault:p#k#", 10, "empty version"},
		{"vault:p#a%2#3", 10, "invalid percent-escape"},
		{"vault:##0", 7, "empty field"},
		{"vault:p?version=1#k#2", 21, "version given twice"},
		{"vault:", 7, "empty path"},
		{"vault:#k", 7, "empty path"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			_, err := providers.Parse(tt.in)
			var pe *providers.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) = %v, want a *ParseError", tt.in, err)
			}
			if pe.Pos != tt.pos {
				t.Errorf("Pos = %d, want %d (%v)", pe.Pos, tt.pos, err)
			}
			if !strings.Contains(pe.Msg, tt.msg) {
				t.Errorf("Msg = %q, want it to contain %q", pe.Msg, tt.msg)
			}
			if !errors.Is(err, providers.ErrInvalidReference) {
				t.Errorf("error does not wrap ErrInvalidReference")
			}
			if pe.Ref != tt.in {
				t.Errorf("Ref = %q, want the input", pe.Ref)
			}
			if !strings.Contains(err.Error(), "position") {
				t.Errorf("message %q does not give the position", err)
			}
		})
	}
}

func TestParseErrorHide(t *testing.T) {
	t.Parallel()
	// Each input holds the secret-looking part "Hunter2x" where a message
	// might quote it: scheme, path, query key and value, field, version.
	for _, in := range []string{
		"Hunter2x ",
		"Hunter2x://p",
		"vault://Hunter2x%zz",
		"vault://x?Hunter2x=1&Hunter2x=2",
		"vault://x?Hunter2x=",
		"vault://x?Hunter2x",
		"vault://x?a=Hunter2x%zz",
		"vault://x?Hunter2x%zz=1",
		"vault://x#Hunter2x%2",
		"vault:p?version=Hunter2x#k#2",
		"sm://p/Hunter2x/x",
		"gcp:secretmanager:Hunter2x/s",
		"arn:aws:secretsmanager:Hunter2x:1:other:x",
	} {
		_, err := providers.Parse(in)
		var pe *providers.ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("Parse(%q) = %v, want a *ParseError", in, err)
		}
		pe.Hide = true
		if msg := strings.ToLower(pe.Error()); strings.Contains(msg, "hunter2x") {
			t.Errorf("hidden ParseError of %q quotes the input: %q", in, msg)
		}
	}
}

func TestSchemeOf(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"vault://x":                              "vault",
		"vault:secret/x#k":                       "vault",
		"file:dev.yaml":                          "file",
		"vault-eu://x":                           "vault-eu",
		"arn:aws:secretsmanager:r:a:secret:n":    "awssm",
		"arn:aws:s3:::b":                         "arn",
		"sm://p/s":                               "gcpsm",
		"gcp:secretmanager:projects/p/secrets/s": "gcpsm",
		"postgres://user:pw@h/db":                "postgres",
		"plain value":                            "",
		"":                                       "",
		":x":                                     "",
		"C:\\path":                               "",
		"http_proxy=1":                           "",
	}
	for in, want := range tests {
		if got := providers.SchemeOf(in); got != want {
			t.Errorf("SchemeOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRefKeyAndWhole(t *testing.T) {
	t.Parallel()
	a, _ := providers.Parse("vault://p?version=2#a")
	b, _ := providers.Parse("vault:p#b#2")
	c, _ := providers.Parse("vault://p?version=3#a")
	if a.Key() != b.Key() {
		t.Errorf("fields of one secret have different keys")
	}
	if a.Key() == c.Key() {
		t.Errorf("different versions share a key")
	}
	if w := a.Whole(); w.Field != "" || w.Path != a.Path || a.Field != "a" {
		t.Errorf("Whole = %#v", w)
	}
}

func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.in)
	}
	for _, s := range []string{
		"", "vault", "file://", "file:", "vault:p#k#", "sm://p", "arn:aws:secretsmanager:r:a:secret:n:::",
		"vault://x%zz", "vault://x?a=1&a=2", "k8s://ns/s#a%2", "gcp:secretmanager:", "vault://p#a%23b?c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r, err := providers.Parse(in)
		if err != nil {
			var pe *providers.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) error is %T, want *ParseError: %v", in, err, err)
			}
			if pe.Pos < 1 || pe.Pos > len(in)+1 {
				t.Fatalf("Parse(%q): Pos %d outside 1..%d", in, pe.Pos, len(in)+1)
			}
			if !errors.Is(err, providers.ErrInvalidReference) {
				t.Fatalf("Parse(%q): error does not wrap ErrInvalidReference", in)
			}
			if pe.Ref != in {
				t.Fatalf("Parse(%q): ParseError names %q, not the input", in, pe.Ref)
			}
			return
		}
		s := r.String()
		back, err := providers.Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q) = %#v, but its String %q does not parse: %v", in, r, s, err)
		}
		if back.Scheme != r.Scheme || back.Path != r.Path || back.Field != r.Field || !reflect.DeepEqual(back.Params, r.Params) {
			t.Fatalf("round trip of %q through %q:\n got %#v\nwant %#v", in, s, back, r)
		}
		if back.String() != s {
			t.Fatalf("String not stable for %q: %q then %q", in, s, back.String())
		}
	})
}
