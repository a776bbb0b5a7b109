package vault

import (
	"context"
	"errors"
	"fmt"

	"github.com/keyward/keyward/providers"
)

// actAs makes p log in as the workload w: with its ServiceAccount token
// (the audience of auth.audience) through the kubernetes or jwt method,
// never with credentials of keyward's own (a token, an AppRole, a JWT or
// a TLS client certificate from the node's disk).
func (p *Provider) actAs(w *providers.Workload) error {
	a := p.set.auth
	switch {
	case a.Method != MethodKubernetes && a.Method != MethodJWT:
		return fmt.Errorf("auth.method %q: not available when acting as a pod (use kubernetes or jwt: the pod's ServiceAccount token logs in)", a.Method)
	case a.JWTFile != "":
		return errors.New("auth.jwt_file: not available when acting as a pod (the pod's ServiceAccount token is presented; auth.audience selects it)")
	case p.set.tls.ClientCert != "" || p.set.tls.ClientKey != "":
		return errors.New("tls.client_cert and tls.client_key: not available when acting as a pod (they are the node's identity)")
	case w.Token == nil:
		return errors.New("no ServiceAccount token for the pod")
	}
	audience := a.Audience
	p.workloadJWT = func() (string, error) {
		jwt, err := w.Token(audience)
		if err != nil {
			return "", fmt.Errorf("ServiceAccount %s/%s: %w", w.Namespace, w.ServiceAccount, err)
		}
		return jwt, nil
	}
	return nil
}

// loginJWT is the JWT the kubernetes and jwt methods present: the
// workload's when p acts for one, else jwt_file's (default the pod's
// projected token), read again at every login.
func (p *Provider) loginJWT(ctx context.Context, a AuthOptions) (string, error) {
	if p.workloadJWT != nil {
		return p.workloadJWT()
	}
	path := a.JWTFile
	if path == "" {
		path = DefaultKubernetesTokenPath
	}
	return readCredentialFile(ctx, "jwt_file", path)
}
