//go:build !no_k8s

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/keyward/keyward/internal/runner"
	"github.com/keyward/keyward/internal/server"
	"github.com/keyward/keyward/internal/version"
	"github.com/keyward/keyward/internal/webhook"
)

// The webhook is a Kubernetes feature: a build without the k8s provider
// (-tags no_k8s) leaves it and client-go out.
func init() { optionalCommands = append(optionalCommands, newWebhookCmd) }

func newWebhookCmd(g *globals) *cobra.Command {
	var (
		listen, certFile, keyFile, tlsSecret, namespace, service, webhookConfig string
		image, pullPolicy, secretsPath, kubeconfig                              string
		certIPs                                                                 []net.IP
		certLifetime, certRenewBefore                                           time.Duration
		metricsListen                                                           string
		resources                                                               webhook.Resources
	)
	cmd := &cobra.Command{
		Use:   "webhook",
		Short: "Run the Kubernetes mutating admission webhook that injects keyward into pods",
		Long: `webhook serves admission.k8s.io/v1 AdmissionReviews on POST /mutate over TLS
and injects keyward into pods annotated keyward.io/inject: "true": an in-memory
secrets volume, a "keyward render --once" init container configured from the
ConfigMap named by keyward.io/config, a native "keyward agent" sidecar with
keyward.io/agent: "true", or the "keyward exec" wrapper with keyward.io/mode: exec.
Pods of its own namespace are never changed. See charts/keyward.

TLS: with --tls-cert-file and --tls-key-file (cert-manager) the pair is read
from files and reloaded when they change; otherwise --tls-secret names a Secret
in --namespace where the first replica stores a generated CA and certificate for
the Service's DNS names, and the caBundle of --webhook-config is set to that CA.
The generated certificate is renewed while the webhook runs, --cert-renew-before
ahead of its expiry: a new CA joins the caBundle first, the new certificate is
served once the caBundle trusts it, and the old CA leaves the caBundle when it
expires; every replica serves what the shared Secret holds (checked each minute).

--metrics-listen serves /metrics (Prometheus: admissions and their latency by
result, the serving certificate's expiry time, Go and process metrics), /healthz
and /readyz over plain HTTP. The --injector-* flags set the requests and limits
of the injected containers; a pod's keyward.io/cpu-request, memory-request,
cpu-limit and memory-limit annotations override them.`,
		Example: `  keyward webhook --namespace keyward --service keyward-webhook \
    --tls-secret keyward-webhook-tls --webhook-config keyward \
    --image REGISTRY/keyward:v0.1.0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (certFile == "") != (keyFile == "") {
				return usageError("--tls-cert-file and --tls-key-file go together")
			}
			if certFile == "" && tlsSecret == "" {
				return usageError("webhook needs --tls-cert-file and --tls-key-file, or --tls-secret")
			}
			if certFile != "" && (cmd.Flags().Changed("cert-lifetime") || cmd.Flags().Changed("cert-renew-before")) {
				return usageError("--cert-lifetime and --cert-renew-before apply to the generated certificate (--tls-secret), not to --tls-cert-file")
			}
			if namespace == "" {
				return usageError("webhook needs --namespace (env POD_NAMESPACE): its own namespace is never injected")
			}
			rr, err := resources.Requirements()
			if err != nil {
				return usageError("injected containers' resources (--injector-*): %v", err)
			}
			dns := []string{service, service + "." + namespace, service + "." + namespace + ".svc", service + "." + namespace + ".svc.cluster.local"}
			selfSigned := webhook.SelfSigned{
				Namespace: namespace, SecretName: tlsSecret, DNSNames: dns, IPs: certIPs, WebhookConfig: webhookConfig,
				Lifetime: certLifetime,
			}
			if cmd.Flags().Changed("cert-renew-before") {
				selfSigned.RenewBefore = certRenewBefore // otherwise the default, at most half the lifetime
			}
			if err := selfSigned.Validate(); certFile == "" && err != nil {
				return usageError("%v", err)
			}
			ctx, stop := runner.StopOnSignal(cmd.Context())
			defer stop()
			rc, err := kubeRESTConfig(kubeconfig)
			if err != nil {
				return err
			}
			// One ConfigMap GET per admission: client-go's default of 5
			// requests/s would queue a burst of pod creations (a rollout)
			// behind its rate limiter.
			rc.QPS, rc.Burst = 200, 400
			kube, err := webhook.NewKube(rc)
			if err != nil {
				return err
			}
			var (
				getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)
				renew   func(context.Context) error
			)
			if certFile != "" {
				fc, err := webhook.NewFileCertificate(certFile, keyFile)
				if err != nil {
					return err
				}
				getCert = fc.GetCertificate
			} else {
				cert, err := kube.Bootstrap(ctx, selfSigned, g.logger)
				if err != nil {
					return err
				}
				getCert, renew = cert.GetCertificate, cert.Run
			}
			m := webhook.NewMutator(webhook.Options{
				Image: image, PullPolicy: corev1.PullPolicy(pullPolicy), SecretsPath: secretsPath, Namespace: namespace,
				Resources: &rr,
			}, kube)
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen: %w", err)
			}
			var metrics *webhook.Metrics
			var srv *server.Server
			if metricsListen != "" {
				srv = server.New(server.Options{Listen: metricsListen, Logger: g.logger})
				if err := srv.Listen(); err != nil {
					ln.Close()
					return err
				}
				metrics = webhook.NewMetrics(srv.Registry(), getCert)
				srv.AddReadyCheck("certificate", func() error {
					if c, err := getCert(nil); err != nil || c == nil || !time.Now().Before(c.Leaf.NotAfter) {
						return errors.New("the serving certificate has expired")
					}
					return nil
				})
			}
			g.logger.Info("webhook serving", "addr", ln.Addr().String(), "namespace", namespace)
			// Serving, renewing and the metrics listener end together:
			// the end of any stops the others.
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			var wg sync.WaitGroup
			if renew != nil {
				wg.Go(func() {
					defer cancel()
					_ = renew(ctx)
				})
			}
			metricsErr := make(chan error, 1)
			if srv != nil {
				wg.Go(func() {
					defer cancel()
					metricsErr <- srv.Serve(ctx)
				})
			}
			err = webhook.Serve(ctx, ln, webhook.NewHandler(m, g.logger, metrics), getCert)
			cancel()
			wg.Wait()
			if err == nil && srv != nil {
				err = <-metricsErr
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", ":8443", "HTTPS listen address")
	f.StringVar(&certFile, "tls-cert-file", "", "serving certificate (PEM), e.g. from cert-manager; reloaded on change")
	f.StringVar(&keyFile, "tls-key-file", "", "serving key (PEM)")
	f.StringVar(&tlsSecret, "tls-secret", "", "Secret in --namespace that stores the generated certificate")
	f.StringVar(&namespace, "namespace", g.env.getenv("POD_NAMESPACE"), "the webhook's own namespace, never injected (env POD_NAMESPACE)")
	f.StringVar(&service, "service", "keyward-webhook", "the webhook's Service name, for the generated certificate's DNS names")
	f.StringVar(&webhookConfig, "webhook-config", "", "MutatingWebhookConfiguration whose caBundle is set to the generated CA")
	f.IPSliceVar(&certIPs, "cert-ip", nil, "extra IP addresses in the generated certificate")
	f.DurationVar(&certLifetime, "cert-lifetime", webhook.DefaultCertLifetime, "lifetime of each generated CA and certificate")
	f.DurationVar(&certRenewBefore, "cert-renew-before", 0, "renew the generated certificate this long before it expires (at most half of --cert-lifetime; default the smaller of 720h and that)")
	f.StringVar(&image, "image", webhook.ImageFor(version.Get().Version), "image of the injected keyward containers (a release binary defaults to its own release image)")
	f.StringVar(&pullPolicy, "image-pull-policy", string(corev1.PullIfNotPresent), "imagePullPolicy of the injected containers")
	f.StringVar(&secretsPath, "secrets-path", webhook.DefaultSecretsPath, "default mount path of the secrets volume in the app containers")
	f.StringVar(&metricsListen, "metrics-listen", "", `serve /metrics, /healthz and /readyz over HTTP on this address (e.g. ":9090"); "" for none`)
	f.StringVar(&resources.CPURequest, "injector-cpu-request", webhook.DefaultResources.CPURequest, `CPU request of the injected containers ("" for none)`)
	f.StringVar(&resources.MemoryRequest, "injector-memory-request", webhook.DefaultResources.MemoryRequest, `memory request of the injected containers ("" for none)`)
	f.StringVar(&resources.CPULimit, "injector-cpu-limit", webhook.DefaultResources.CPULimit, `CPU limit of the injected containers ("" for none)`)
	f.StringVar(&resources.MemoryLimit, "injector-memory-limit", webhook.DefaultResources.MemoryLimit, `memory limit of the injected containers ("" for none)`)
	f.StringVar(&kubeconfig, "kubeconfig", g.env.getenv("KUBECONFIG"), "kubeconfig when not in a cluster (env KUBECONFIG)")
	cmd.AddCommand(newInstallBinaryCmd(g))
	return cmd
}

// newInstallBinaryCmd is what the exec mode's init container runs: the
// image has no shell or cp, so keyward copies itself.
func newInstallBinaryCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "install-binary DEST",
		Short:  "Copy this keyward binary to DEST (mode 0555), for keyward.io/mode: exec",
		Args:   cobra.ExactArgs(1),
		Hidden: true,
		RunE: func(_ *cobra.Command, args []string) error {
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("install binary: %w", err)
			}
			return copyBinary(self, args[0])
		},
	}
}

func copyBinary(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("install binary: %w", err)
	}
	defer in.Close()
	out, err := os.CreateTemp(filepath.Dir(dst), ".keyward-*")
	if err != nil {
		return fmt.Errorf("install binary: %w", err)
	}
	defer os.Remove(out.Name())
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("install binary: %w", err)
	}
	if err := out.Chmod(0o555); err != nil {
		out.Close()
		return fmt.Errorf("install binary: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("install binary: %w", err)
	}
	if err := os.Rename(out.Name(), dst); err != nil {
		return fmt.Errorf("install binary: %w", err)
	}
	return nil
}

// kubeRESTConfig is the in-cluster config, else the kubeconfig.
func kubeRESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("kubernetes config: %w", err)
		}
		return rc, nil
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubernetes config %s: %w", kubeconfig, err)
	}
	return rc, nil
}
