package providers

import (
	"context"
	"slices"
)

// Workload is the identity of the workload a provider instance acts for
// when that is not keyward's own: keyward csi-provider mounts secrets for
// a pod with the pod's ServiceAccount token, never with the node's
// credentials. A kind that supports it (k8s, vault, awssm, gcpsm)
// authenticates as the workload and refuses the options that name
// credentials of keyward's own; the caller refuses the other kinds.
type Workload struct {
	// Namespace and ServiceAccount name the workload's ServiceAccount.
	Namespace, ServiceAccount string
	// Token returns the workload's ServiceAccount token for an audience
	// ("" is the Kubernetes API server's own); an error when the
	// workload has none for it. Never logged.
	Token func(audience string) (string, error)
	// APIServer is the Kubernetes API server's URL and APIServerCA its
	// CA bundle (PEM; empty for the system roots), for reads as the
	// workload.
	APIServer   string
	APIServerCA []byte
	// Annotations, when set, returns the annotations of the workload's
	// ServiceAccount as they are now (read with keyward's own
	// credential): the cloud kinds take the identity the workload
	// federates to from them, as EKS (eks.amazonaws.com/role-arn) and GKE
	// (iam.gke.io/gcp-service-account) do. Nil when unknown.
	Annotations func(ctx context.Context) (map[string]string, error)
	// NodeKinds are the kinds whose instances act with keyward's own
	// identity all the same (an operator's choice: keyward csi-provider
	// --node-identity-kinds); NewSet gives them no Workload.
	NodeKinds []string
}

// forKind is w for an instance of kind: nil when kind is one of its
// NodeKinds.
func (w *Workload) forKind(kind string) *Workload {
	if w == nil || slices.Contains(w.NodeKinds, kind) {
		return nil
	}
	return w
}
