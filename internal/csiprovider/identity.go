package csiprovider

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/tlsclient"
	"github.com/keyward/keyward/providers"
)

// Reviewer verifies a ServiceAccount token and returns the identity it
// proves ("system:serviceaccount:NS:NAME"). Mounts are shared between pods
// only through identities a Reviewer verified. A token it refuses is an
// error wrapping providers.ErrPermissionDenied; any other error (the API
// server unreachable) fails the mount as unavailable, to be retried.
type Reviewer func(ctx context.Context, token, audience string) (string, error)

// maxReviewAge bounds how long a verified token's identity is remembered.
const maxReviewAge = 10 * time.Minute

// TokenReviewer is a Reviewer that asks the Kubernetes API server
// (TokenReview, authentication.k8s.io/v1) at apiServer, trusting ca, with
// the csi-provider's own credential (it needs the system:auth-delegator
// ClusterRole, or create on tokenreviews).
func TokenReviewer(apiServer string, ca []byte, credential func() (string, error)) (Reviewer, error) {
	client, err := kubeClient(ca)
	if err != nil {
		return nil, err
	}
	url := strings.TrimSuffix(apiServer, "/") + "/apis/authentication.k8s.io/v1/tokenreviews"
	return func(ctx context.Context, token, audience string) (string, error) {
		spec := map[string]any{"token": token}
		if audience != "" {
			spec["audiences"] = []string{audience}
		}
		body, err := json.Marshal(map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec})
		if err != nil {
			return "", err
		}
		cred, err := credential()
		if err != nil {
			return "", fmt.Errorf("token review: own credential: %w", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+cred)
		resp, err := client.Do(req)
		if err != nil {
			return "", fmt.Errorf("token review: %w", err)
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return "", fmt.Errorf("token review: %w", err)
		}
		switch resp.StatusCode {
		case http.StatusCreated, http.StatusOK:
		case http.StatusUnauthorized, http.StatusForbidden:
			return "", fmt.Errorf("token review: HTTP %d: csi-provider may not create TokenReviews (the chart's csiProvider.tokenReview binds system:auth-delegator): %w", resp.StatusCode, providers.ErrPermissionDenied)
		default:
			return "", fmt.Errorf("token review: HTTP %d", resp.StatusCode)
		}
		var out struct {
			Status struct {
				Authenticated bool `json:"authenticated"`
				User          struct {
					Username string `json:"username"`
				} `json:"user"`
			} `json:"status"`
		}
		if err := json.Unmarshal(data, &out); err != nil {
			return "", fmt.Errorf("token review: %w", err)
		}
		if !out.Status.Authenticated || out.Status.User.Username == "" {
			return "", fmt.Errorf("token review: the pod's ServiceAccount token is not valid: %w", providers.ErrPermissionDenied)
		}
		return out.Status.User.Username, nil
	}, nil
}

// kubeClient is an HTTP client of the Kubernetes API server, trusting ca
// (PEM; the system roots when empty).
func kubeClient(ca []byte) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if len(ca) > 0 {
		pool, err := tlsclient.ParsePool("kube CA bundle", ca)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, nil
}

// workloadKinds are the provider kinds that act as the pod
// (providers.Workload): k8s reads with the pod's ServiceAccount token,
// vault logs in with it (kubernetes or jwt auth), awssm exchanges it for
// its role's credentials (STS AssumeRoleWithWebIdentity) and gcpsm for a
// federated Google token (workload identity federation, optionally
// impersonating a Google service account).
var workloadKinds = []string{"k8s", "vault", "awssm", "gcpsm"}

// actsAsPod says whether an instance of kind acts as the pod: a workload
// kind the operator did not give the node's identity
// (--node-identity-kinds; providers.Workload.NodeKinds).
func (s *Server) actsAsPod(kind string) bool {
	return slices.Contains(workloadKinds, kind) && !slices.Contains(s.opts.NodeIdentityKinds, kind)
}

// AnnotationReader returns the annotations of ServiceAccount
// namespace/name: the cloud kinds take the identity a pod federates to
// from them (eks.amazonaws.com/role-arn, iam.gke.io/gcp-service-account).
type AnnotationReader func(ctx context.Context, namespace, name string) (map[string]string, error)

// ServiceAccountAnnotations is an AnnotationReader that gets the
// ServiceAccount from the Kubernetes API server at apiServer, trusting
// ca, with the csi-provider's own credential (it needs get on
// serviceaccounts). The annotations only name what a pod asks to become;
// the cloud decides whether the pod's token may (the role's trust
// policy, the service account's workloadIdentityUser binding).
func ServiceAccountAnnotations(apiServer string, ca []byte, credential func() (string, error)) (AnnotationReader, error) {
	client, err := kubeClient(ca)
	if err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(apiServer, "/") + "/api/v1/namespaces/"
	return func(ctx context.Context, namespace, name string) (map[string]string, error) {
		if !validName.MatchString(namespace) || !validName.MatchString(name) {
			return nil, fmt.Errorf("ServiceAccount %q/%q: not a valid name", namespace, name)
		}
		cred, err := credential()
		if err != nil {
			return nil, fmt.Errorf("ServiceAccount %s/%s: own credential: %w", namespace, name, err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+namespace+"/serviceaccounts/"+name, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Authorization", "Bearer "+cred)
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("ServiceAccount %s/%s: %w", namespace, name, err)
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("ServiceAccount %s/%s: %w", namespace, name, err)
		}
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusUnauthorized, http.StatusForbidden:
			// keyward's own permission, not the pod's: the mount fails at
			// once, saying what to grant, instead of being retried.
			return nil, fmt.Errorf("ServiceAccount %s/%s: HTTP %d: csi-provider may not read ServiceAccounts (the chart's csiProvider.readServiceAccounts grants it), so their role annotations cannot be used; or name the role in the SecretProviderClass: %w", namespace, name, resp.StatusCode, providers.ErrPermissionDenied)
		default:
			return nil, fmt.Errorf("ServiceAccount %s/%s: HTTP %d", namespace, name, resp.StatusCode)
		}
		var sa struct {
			Metadata struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(data, &sa); err != nil {
			return nil, fmt.Errorf("ServiceAccount %s/%s: %w", namespace, name, err)
		}
		return sa.Metadata.Annotations, nil
	}, nil
}

// validName is a Kubernetes namespace or ServiceAccount name (DNS
// subdomain), so that neither can change the request's path.
var validName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)

// annotations is the pod's ServiceAccount's annotations reader for its
// workload; nil without an AnnotationReader or a ServiceAccount name.
func (s *Server) annotations(pod Pod) func(context.Context) (map[string]string, error) {
	if s.opts.Annotations == nil || pod.Namespace == "" || pod.ServiceAccount == "" {
		return nil
	}
	read, ns, name := s.opts.Annotations, pod.Namespace, pod.ServiceAccount
	return func(ctx context.Context) (map[string]string, error) { return read(ctx, ns, name) }
}

// identities remembers the identity each token (by hash) was verified as,
// until the token expires (at most maxReviewAge), so a pod's remounts cost
// no review.
type identities struct {
	review Reviewer
	now    func() time.Time

	mu   sync.Mutex
	seen map[[32]byte]reviewed
}

type reviewed struct {
	who   string
	until time.Time
}

// identity is the sharing identity of a mount's pod: the one identity all
// its tokens verify as, which must be the ServiceAccount the driver names,
// when there is a reviewer; otherwise the tokens themselves and the
// ServiceAccount the driver names (hashed: its annotations are read), which
// share only with the same pod's remounts. "" when the pod has no token.
func (ids *identities) identity(ctx context.Context, pod Pod) (string, error) {
	if len(pod.Tokens) == 0 {
		return "", nil
	}
	auds := make([]string, 0, len(pod.Tokens))
	for a := range pod.Tokens {
		auds = append(auds, a)
	}
	sort.Strings(auds)
	if ids.review == nil {
		h := sha256.New()
		fmt.Fprintf(h, "%q/%q;", pod.Namespace, pod.ServiceAccount)
		for _, a := range auds {
			fmt.Fprintf(h, "%q=%q;", a, pod.Tokens[a].Token)
		}
		return "tokens:" + hex.EncodeToString(h.Sum(nil)), nil
	}
	who := ""
	for _, a := range auds {
		w, err := ids.verify(ctx, pod.Tokens[a], a)
		if err != nil {
			return "", err
		}
		if who != "" && w != who {
			return "", fmt.Errorf("the pod's ServiceAccount tokens are of different identities: %w", providers.ErrPermissionDenied)
		}
		who = w
	}
	// The driver names the pod's ServiceAccount (the annotations its role
	// or Google service account are read from, the session name) apart
	// from its tokens, and passes on a token a SecretProviderClass or a
	// volume's attributes set when the CSIDriver requests none: the
	// tokens must be that ServiceAccount's, or the identity's pooled
	// providers would read another ServiceAccount's annotations.
	if pod.Namespace != "" || pod.ServiceAccount != "" {
		if want := "system:serviceaccount:" + pod.Namespace + ":" + pod.ServiceAccount; who != want {
			return "", fmt.Errorf("the pod's ServiceAccount tokens are of %s, not of its ServiceAccount %s/%s: %w", who, pod.Namespace, pod.ServiceAccount, providers.ErrPermissionDenied)
		}
	}
	return "sa:" + who, nil
}

func (ids *identities) verify(ctx context.Context, t Token, audience string) (string, error) {
	sum := sha256.Sum256([]byte(audience + "\x00" + t.Token))
	now := ids.now()
	ids.mu.Lock()
	if r, ok := ids.seen[sum]; ok && now.Before(r.until) {
		ids.mu.Unlock()
		return r.who, nil
	}
	ids.mu.Unlock()
	who, err := ids.review(ctx, t.Token, audience)
	if err != nil {
		return "", err
	}
	until := now.Add(maxReviewAge)
	if exp, err := time.Parse(time.RFC3339, t.ExpirationTimestamp); err == nil && exp.Before(until) {
		until = exp
	}
	ids.mu.Lock()
	defer ids.mu.Unlock()
	for k, r := range ids.seen {
		if !now.Before(r.until) {
			delete(ids.seen, k)
		}
	}
	ids.seen[sum] = reviewed{who: who, until: until}
	return who, nil
}

// shareKey is the key under which a mount's result may serve another:
// the identity its providers act as, the config's provider instances (as
// written) and its references by name.
func shareKey(identity string, providersYAML []byte, refs map[string]providers.Ref) string {
	names := make([]string, 0, len(refs))
	for n := range refs {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	fmt.Fprintf(h, "%q\x00%q\x00", identity, providersYAML)
	for _, n := range names {
		fmt.Fprintf(h, "%q=%q;", n, refs[n].String())
	}
	return hex.EncodeToString(h.Sum(nil))
}
