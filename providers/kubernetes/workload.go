package kubernetes

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"k8s.io/client-go/rest"

	"github.com/keyward/keyward/providers"
)

// newForWorkload returns a Provider that reads as the workload: the API
// server w names, authenticated by the workload's ServiceAccount token
// (its API-server audience), and nothing of keyward's own credentials, so
// it reads exactly what the workload's RBAC allows. The token is asked
// for at every request: the workload's tokens are renewed (and a pod's
// are invalidated when it is deleted) while the client lives on.
func newForWorkload(opts Options, w *providers.Workload, logger *slog.Logger) (*Provider, error) {
	if opts.Kubeconfig != "" || opts.Context != "" {
		return nil, errors.New("kubeconfig and context: not available when reading as a workload (the workload's own ServiceAccount is used)")
	}
	if w.APIServer == "" || w.Token == nil {
		return nil, errors.New("no Kubernetes API server or ServiceAccount token for the workload")
	}
	p, err := newProvider(configSource{opts: opts}, logger)
	if err != nil {
		return nil, err
	}
	p.connect = func() (secretsAPI, error) {
		cfg := &rest.Config{
			Host:            w.APIServer,
			TLSClientConfig: rest.TLSClientConfig{CAData: w.APIServerCA},
		}
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &workloadAuth{rt: rt, w: w} })
		return newRESTSecrets(cfg)
	}
	return p, nil
}

// workloadAuth sets the workload's current token on each request.
type workloadAuth struct {
	rt http.RoundTripper
	w  *providers.Workload
}

func (a *workloadAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	token, err := a.w.Token("")
	if err != nil {
		return nil, fmt.Errorf("ServiceAccount %s/%s: %w", a.w.Namespace, a.w.ServiceAccount, err)
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+token)
	return a.rt.RoundTrip(req)
}
