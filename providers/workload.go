package providers

// Workload is the identity of the workload a provider instance acts for
// when that is not keyward's own: keyward csi-provider mounts secrets for
// a pod with the pod's ServiceAccount token, never with the node's
// credentials. A kind that supports it (k8s) authenticates as the workload
// and ignores its own credential options; the caller refuses the others.
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
}
