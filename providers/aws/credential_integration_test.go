//go:build integration

package aws

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keyward/keyward/providers"
)

// TestCredentialMoto obtains temporary credentials from moto's STS: of a
// role with AssumeRole (moto's GetCallerIdentity then names the assumed
// role and session), and, from the static keys of the default chain, with
// GetSessionToken; the Value is credential_process JSON of the same parts.
// Not parallel: it points STS at moto through the environment.
func TestCredentialMoto(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL_STS", moto.Endpoint)
	p := newProvider(t, moto.Endpoint)
	const role = "arn:aws:iam::" + testAccount + ":role/deployer"
	cases := []struct {
		name   string
		req    providers.CredentialRequest
		caller string
	}{
		{"assume role", providers.CredentialRequest{RoleARN: role, SessionName: "kw-test", Duration: time.Hour}, ":assumed-role/deployer/kw-test"},
		{"session token", providers.CredentialRequest{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sec, err := p.Credential(t.Context(), c.req)
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Version                                                int
				AccessKeyId, SecretAccessKey, SessionToken, Expiration string
			}
			if err := json.Unmarshal(sec.Value.Bytes(), &doc); err != nil || doc.Version != 1 {
				t.Fatalf("not credential_process JSON: %v", err)
			}
			for k, v := range map[string]string{"AccessKeyId": doc.AccessKeyId, "SecretAccessKey": doc.SecretAccessKey, "SessionToken": doc.SessionToken} {
				if v == "" || sec.Data[k] != v {
					t.Fatalf("%s missing, or differs between Value and Data", k)
				}
			}
			exp, err := time.Parse(time.RFC3339, doc.Expiration)
			if err != nil || sec.Lease == nil || exp.Sub(sec.Lease.Expires()).Abs() > time.Second || !exp.After(time.Now()) {
				t.Fatalf("expiration %q, lease %+v", doc.Expiration, sec.Lease)
			}
			if doc.AccessKeyId == "testing" {
				t.Fatal("the default chain's long-lived key was handed out")
			}
			cfg, err := config.LoadDefaultConfig(t.Context(), config.WithRegion(testRegion),
				config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(doc.AccessKeyId, doc.SecretAccessKey, doc.SessionToken)))
			if err != nil {
				t.Fatal(err)
			}
			id, err := sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = awssdk.String(moto.Endpoint) }).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(awssdk.ToString(id.Arn), c.caller) {
				t.Fatalf("caller %s, want one containing %q", awssdk.ToString(id.Arn), c.caller)
			}
		})
	}
}
