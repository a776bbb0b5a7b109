package rotate

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/keyward/keyward/providers"
)

// Token sources (TokenSpec.Source): an OAuth2 grant, or the credential a
// provider instance hands out (providers.CredentialSource).
const (
	// SourceOAuth2 is an OAuth2 grant at TokenURL (the default).
	SourceOAuth2 = "oauth2"
	// SourceVault is keyward's own Vault token, of a vault instance.
	SourceVault = "vault"
	// SourceAWS is temporary AWS credentials, of an awssm instance.
	SourceAWS = "aws"
	// SourceGCP is a Google access or ID token, of a gcpsm instance.
	SourceGCP = "gcp"
)

// AWS credential file formats (TokenSpec.FileFormat, source aws).
const (
	// TokenFileCredentialProcess is the JSON a credential_process prints
	// (Version 1, AccessKeyId, SecretAccessKey, SessionToken, Expiration):
	// credential_process = cat FILE in an AWS config profile.
	TokenFileCredentialProcess = "credential_process"
	// TokenFileCredentials is a shared credentials file with one profile
	// (TokenSpec.Profile, default "default").
	TokenFileCredentials = "credentials"
)

// awsParts are the parts of AWS credentials, as the aws provider names
// them in the Secret's Data.
var awsParts = []string{"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}

// sourced obtains st's token from its provider instance's credential.
func (t *Tokens) sourced(ctx context.Context, st *tokenState) (*Token, error) {
	s := st.spec
	issued := time.Now()
	sec, err := t.opts.Providers.Credential(ctx, s.Provider, s.Credential)
	if err != nil {
		return nil, &TokenError{Token: s.Name, Op: "obtain " + s.Source + " credentials", Err: err}
	}
	t.learn(s.Name, s.Source, sec.Value)
	parts := map[string]providers.Value{}
	for k, v := range sec.Data {
		if str, ok := v.(string); ok {
			parts[k] = providers.StringValue(str)
			t.learn(s.Name, s.Source+"."+k, parts[k])
		}
	}
	if sec.Value.Len() == 0 {
		return nil, &TokenError{Token: s.Name, Op: "obtain " + s.Source + " credentials", Err: fmt.Errorf("provider %s handed out an empty credential", s.Provider)}
	}
	tok := &Token{AccessToken: sec.Value, TokenType: "Bearer", Issued: issued, parts: parts}
	if s.Source == SourceAWS {
		tok.TokenType = "aws-credentials"
		for _, k := range awsParts[:3] {
			if parts[k].Len() == 0 {
				return nil, &TokenError{Token: s.Name, Op: "obtain aws credentials", Err: fmt.Errorf("no %s in them", k)}
			}
		}
	}
	if sec.Lease != nil && sec.Lease.Duration > 0 {
		tok.ExpiresAt = sec.Lease.Expires()
	} else {
		// No known expiry (a Vault token without TTL): look again after
		// the default lifetime.
		life := s.DefaultLifetime
		if life <= 0 {
			life = DefaultTokenLifetime
		}
		tok.ExpiresAt = issued.Add(life)
	}
	return tok, nil
}

// encodeAWS returns AWS credentials in one of the AWS file formats.
func (tok *Token) encodeAWS(format, profile string) []byte {
	if format == TokenFileCredentialProcess {
		return append(tok.AccessToken.Bytes(), '\n')
	}
	if profile == "" {
		profile = "default"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[%s]\n", profile)
	keys := map[string]string{"AccessKeyId": "aws_access_key_id", "SecretAccessKey": "aws_secret_access_key", "SessionToken": "aws_session_token"}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return keys[names[i]] < keys[names[j]] })
	for _, k := range names {
		fmt.Fprintf(&b, "%s = %s\n", keys[k], tok.parts[k].Reveal())
	}
	fmt.Fprintf(&b, "# expires %s; written by keyward, which replaces it before then\n", tok.ExpiresAt.UTC().Format(time.RFC3339))
	return []byte(b.String())
}
