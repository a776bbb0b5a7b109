package kubernetes

import (
	"errors"
	"fmt"
	"log/slog"

	"k8s.io/client-go/rest"

	"github.com/keyward/keyward/providers"
)

// newForWorkload returns a Provider that reads as the workload: the API
// server w names, authenticated by the workload's ServiceAccount token
// (its API-server audience), and nothing of keyward's own credentials, so
// it reads exactly what the workload's RBAC allows. The token is asked for
// when the client is built, at the first Fetch.
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
		token, err := w.Token("")
		if err != nil {
			return nil, fmt.Errorf("ServiceAccount %s/%s: %w", w.Namespace, w.ServiceAccount, err)
		}
		cfg := &rest.Config{
			Host:            w.APIServer,
			BearerToken:     token,
			TLSClientConfig: rest.TLSClientConfig{CAData: w.APIServerCA},
		}
		return newRESTSecrets(cfg)
	}
	return p, nil
}
