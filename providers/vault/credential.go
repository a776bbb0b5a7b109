package vault

import (
	"context"
	"fmt"

	"github.com/keyward/keyward/providers"
)

var _ providers.CredentialSource = (*Provider)(nil)

// Credential implements providers.CredentialSource: keyward's own Vault
// token, for an application that talks to Vault itself (what Vault
// Agent's token sink writes). It is renewed first when due, or obtained
// again by the auth method (see RenewToken); its Lease says when it
// expires (nil for a token without a TTL, such as a root token). A request
// with any field set is refused: the token is the instance's.
func (p *Provider) Credential(ctx context.Context, req providers.CredentialRequest) (providers.Secret, error) {
	if req.RoleARN != "" || req.SessionName != "" || len(req.Scopes) > 0 || req.Audience != "" || req.Duration != 0 {
		return providers.Secret{}, fmt.Errorf("vault: keyward's token takes no role, scopes, audience or duration: %w", providers.ErrInvalidReference)
	}
	st, err := p.RenewToken(ctx)
	if err != nil {
		return providers.Secret{}, err
	}
	p.mu.Lock()
	t := p.tok
	p.mu.Unlock()
	sec := providers.Secret{Value: providers.StringValue(t.value)}
	if !st.Expires.IsZero() {
		now := p.now()
		sec.Lease = &providers.Lease{Duration: st.Expires.Sub(now), Renewable: st.Renewable, Obtained: now}
	}
	return sec, nil
}
