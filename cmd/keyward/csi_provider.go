package main

import (
	"context"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/csiprovider"
	"github.com/keyward/keyward/internal/runner"
	"github.com/keyward/keyward/internal/tlsclient"
	"github.com/keyward/keyward/providers"
)

func init() { optionalCommands = append(optionalCommands, newCSIProviderCmd) }

func newCSIProviderCmd(g *globals) *cobra.Command {
	var (
		socketDir, apiServer, apiServerCA string
		nodeKinds                         []string
		cacheTTL                          time.Duration
		cacheMax                          int
		review                            bool
	)
	cmd := &cobra.Command{
		Use:   "csi-provider",
		Short: "Serve the Secrets Store CSI Driver's provider API: pods mount keyward-rendered files",
		Long: `csi-provider serves the Kubernetes Secrets Store CSI Driver's provider API
(Version, Mount) on the unix socket keyward.sock of --socket-dir, mode 0600 (the
driver runs as root). It runs as a DaemonSet beside the driver (charts/keyward,
csiProvider.enabled).

A SecretProviderClass with provider: keyward carries a keyward config in its
parameter "config": its secrets and files (the same references and formats as
keyward render). Each Mount resolves the secrets and returns the files to the
driver, which writes them into the pod's volume; keyward writes nothing. A file
without mode: takes the driver's permission. There is no child and no token
endpoint: env, tokens, server, watch, on_change, template_file, owner and group
are refused. The driver's rotation reconciler mounts again; each secret's object
version is the store's version (a keyed hash of the value for a store without
one), so it sees changes.

Each mount acts as its pod: k8s references are read from the API server with the
pod's ServiceAccount token (the driver passes it when the CSIDriver object's
tokenRequests lists the audience ""), so a pod receives only what its own RBAC
allows; vault logs in with it (kubernetes or jwt auth); awssm exchanges it (audience
sts.amazonaws.com) with STS AssumeRoleWithWebIdentity for the role of the instance's
role_arn or of the ServiceAccount's eks.amazonaws.com/role-arn annotation; gcpsm
exchanges it at Google's STS for a federated token of the instance's
workload_identity_provider, impersonating the Google service account of the
instance's service_account or of the iam.gke.io/gcp-service-account annotation when
there is one. The annotations are read with this process's own ServiceAccount (get
on serviceaccounts). The providers of a mount never see this process's environment,
shared config files or a metadata server. A provider kind without a per-pod
identity (file) is refused unless --node-identity-kinds names it, and a kind it
names acts with this process's own identity instead of the pod's: every pod on the
node can then read what this process can.

Mounts share work only between identical identities: concurrent mounts with the
same config and identity wait for one fetch, and its result serves them for
--cache-ttl (default 10s; at most --cache-max-bytes of values, zeroed when
dropped). The identity of a pod is its ServiceAccount as the API server's
TokenReview verifies its tokens (--token-review); without it, only a pod's own
remounts share.
Exit status: 0 stopped by SIGTERM or SIGINT, 1 the socket could not be served,
2 a bad flag.`,
		Example: `  # beside the driver (the chart's DaemonSet does this)
  keyward csi-provider --socket-dir /var/run/secrets-store-csi-providers`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, k := range nodeKinds {
				if !slices.Contains(providers.Kinds(), k) {
					return usageError("--node-identity-kinds: %q is not a provider kind of this build (%v)", k, providers.Kinds())
				}
			}
			opts := csiprovider.Options{Logger: g.logger, NodeIdentityKinds: nodeKinds, CacheTTL: cacheTTL, CacheMaxBytes: cacheMax}
			if cacheTTL == 0 {
				opts.CacheTTL = -1
			}
			if err := kubeAPIServer(cmd.Context(), g, apiServer, apiServerCA, &opts); err != nil {
				return err
			}
			l, err := csiprovider.Listen(socketDir)
			if err != nil {
				return err
			}
			ctx, stop := runner.StopOnSignal(cmd.Context())
			defer stop()
			_, ownErr := os.Stat(filepath.Join(saDir, "token"))
			if review && ownErr != nil {
				g.logger.Warn("no ServiceAccount of its own to review tokens with: only a pod's own remounts share fetches", "err", ownErr)
				review = false
			}
			own := func() (string, error) {
				b, err := os.ReadFile(filepath.Join(saDir, "token"))
				return strings.TrimSpace(string(b)), err
			}
			if review && opts.APIServer != "" {
				r, err := csiprovider.TokenReviewer(opts.APIServer, opts.APIServerCA, own)
				if err != nil {
					return err
				}
				opts.Reviewer = r
			}
			if ownErr == nil && opts.APIServer != "" {
				a, err := csiprovider.ServiceAccountAnnotations(opts.APIServer, opts.APIServerCA, own)
				if err != nil {
					return err
				}
				opts.Annotations = a
			}
			srv := csiprovider.New(opts)
			g.logger.Info("serving the CSI driver's provider API", "socket", l.Addr().String())
			return csiprovider.Serve(ctx, l, srv)
		},
	}
	cmd.Flags().StringVar(&socketDir, "socket-dir", csiprovider.DefaultSocketDir, "the driver's providers directory, where keyward.sock is created")
	cmd.Flags().StringSliceVar(&nodeKinds, "node-identity-kinds", nil, "provider kinds that pods use with this process's own identity instead of their own (file; or awssm, gcpsm, vault, k8s to give up per-pod identity for them); none by default")
	cmd.Flags().DurationVar(&cacheTTL, "cache-ttl", csiprovider.DefaultCacheTTL, "how long a mount's secrets serve other mounts of the same identity and config (0: not at all; concurrent mounts still share one fetch)")
	cmd.Flags().IntVar(&cacheMax, "cache-max-bytes", csiprovider.DefaultCacheMaxBytes, "the most bytes of secret values cached (least recently used dropped first, zeroed)")
	cmd.Flags().BoolVar(&review, "token-review", true, "verify pods' ServiceAccount tokens with the API server's TokenReview (needs system:auth-delegator), so that pods of one ServiceAccount share fetches; without it only a pod's own remounts share")
	cmd.Flags().StringVar(&apiServer, "kube-api-server", "", "the Kubernetes API server's URL, where k8s references are read as the pod's ServiceAccount (default: the cluster's, in-cluster)")
	cmd.Flags().StringVar(&apiServerCA, "kube-ca-file", "", "its CA bundle (default: the in-cluster ServiceAccount's ca.crt)")
	return cmd
}

// saDir is where the kubelet mounts the csi-provider's own ServiceAccount.
const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// kubeAPIServer sets the API server that k8s references are read from as
// the pod: the flags, else the cluster the process runs in; outside a
// cluster without the flag, k8s references are refused. A CA file that
// is not a CA bundle (read as internal/tlsclient reads every CA file) is
// a usage error naming it.
func kubeAPIServer(ctx context.Context, g *globals, url, caFile string, opts *csiprovider.Options) error {
	if url == "" {
		host, port := g.env.getenv("KUBERNETES_SERVICE_HOST"), g.env.getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			g.logger.Warn("no Kubernetes API server (not in a cluster, no --kube-api-server): k8s references are refused")
			return nil
		}
		url = "https://" + net.JoinHostPort(host, port)
		if caFile == "" {
			caFile = filepath.Join(saDir, "ca.crt")
		}
	}
	opts.APIServer = url
	if caFile != "" {
		certs, err := tlsclient.ReadBundle(ctx, caFile)
		if err != nil {
			return usageError("--kube-ca-file: %w", err)
		}
		var ca []byte
		for _, c := range certs {
			ca = append(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		opts.APIServerCA = ca
	}
	return nil
}
