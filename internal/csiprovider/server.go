// Package csiprovider is keyward as a provider of the Kubernetes Secrets
// Store CSI Driver: a gRPC server of the driver's provider API
// (sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1) on a unix
// socket of the driver's providers directory. A SecretProviderClass's
// parameters carry a keyward config (its secrets and files); each Mount
// resolves its secrets through the providers package and returns the
// rendered files to the driver, which writes them into the pod's volume.
// keyward writes nothing to disk.
package csiprovider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/keyward/keyward/internal/config"
	"github.com/keyward/keyward/internal/server"
	"github.com/keyward/keyward/internal/version"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/render"
)

// Defaults of keyward csi-provider.
const (
	// DefaultSocketDir is the driver's providers directory.
	DefaultSocketDir = "/var/run/secrets-store-csi-providers"
	// SocketName is the socket's name in it: the driver finds a provider
	// by the SecretProviderClass's provider: keyward.
	SocketName = "keyward.sock"
	// DefaultMountTimeout bounds one Mount when the driver's call has no
	// deadline.
	DefaultMountTimeout = 30 * time.Second
	// RuntimeName is what Version reports.
	RuntimeName = "keyward"
)

// Options configure a Server.
type Options struct {
	// Logger receives the server's log lines (never a value or token);
	// nil discards them.
	Logger *slog.Logger
	// NodeIdentityKinds are the provider kinds a SecretProviderClass may
	// use with the provider's own identity rather than the pod's: every
	// pod of the node can then read whatever the provider can (the file
	// kind reads the provider container's files). Empty by default.
	NodeIdentityKinds []string
	// APIServer is the Kubernetes API server's URL and APIServerCA its CA
	// bundle (PEM): k8s references are read there as the pod's
	// ServiceAccount. Without APIServer the k8s kind is refused.
	APIServer   string
	APIServerCA []byte
	// Reviewer verifies the pods' ServiceAccount tokens, so that mounts of
	// pods of the same ServiceAccount share their fetches; nil shares
	// only between the remounts of one pod (the same tokens).
	Reviewer Reviewer
	// CacheTTL is how long a mount's resolved secrets serve later mounts
	// of the same identity and config (0: DefaultCacheTTL; negative: not
	// at all; concurrent mounts still share one fetch).
	CacheTTL time.Duration
	// CacheMaxBytes bounds the values cached (0: DefaultCacheMaxBytes).
	CacheMaxBytes int
	// ObserveCalls, when set, receives every call the mounts' providers
	// make to their stores (metrics, tests).
	ObserveCalls func(providers.Call)
	// Getenv is the environment the providers of a mount see; nil means
	// none, so that a SecretProviderClass never picks up the
	// credentials of the provider's own environment.
	Getenv func(string) string
	// Annotations reads a pod's ServiceAccount's annotations (the role
	// or Google service account it federates to); nil: not read.
	Annotations AnnotationReader
}

// Server implements the driver's CSIDriverProviderServer.
type Server struct {
	v1alpha1.UnimplementedCSIDriverProviderServer

	opts   Options
	logger *slog.Logger
	shared *shared
	ids    *identities
	pool   *pool
}

// New returns a Server.
func New(opts Options) *Server {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.Getenv == nil {
		opts.Getenv = func(string) string { return "" }
	}
	ttl := opts.CacheTTL
	if ttl == 0 {
		ttl = DefaultCacheTTL
	}
	maxBytes := opts.CacheMaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultCacheMaxBytes
	}
	return &Server{opts: opts, logger: logger,
		shared: newShared(ttl, maxBytes, time.Now),
		ids:    &identities{review: opts.Reviewer, now: time.Now, seen: map[[32]byte]reviewed{}},
		pool:   &pool{idle: DefaultLoginIdle, max: DefaultLoginMax, now: time.Now, sets: map[string]*pooled{}},
	}
}

// Version reports keyward's name and version.
func (s *Server) Version(context.Context, *v1alpha1.VersionRequest) (*v1alpha1.VersionResponse, error) {
	return &v1alpha1.VersionResponse{Version: "v1alpha1", RuntimeName: RuntimeName, RuntimeVersion: version.Get().Version}, nil
}

// Mount resolves the secrets of the SecretProviderClass's keyward config
// and returns its files with an object version per secret. A config
// error is InvalidArgument, a kind the pod may not use PermissionDenied;
// a failed fetch keeps the provider's error, which names the reference
// and never a value.
func (s *Server) Mount(ctx context.Context, req *v1alpha1.MountRequest) (*v1alpha1.MountResponse, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultMountTimeout)
		defer cancel()
	}
	r, err := parseRequest(req.GetAttributes(), req.GetPermission())
	if err != nil {
		s.logger.Warn("mount refused", "err", err)
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	log := s.logger.With("pod", r.pod.Namespace+"/"+r.pod.Name)
	// This set's instances are built only when it fetches itself (a pod
	// without tokens, no identity to pool by); otherwise it only checks
	// the references, and the identity's pooled set, whose instances are
	// built once, fetches.
	set := s.newSet(r.cfg, s.workload(r.pod, nil))
	defer func() {
		if err := set.Close(); err != nil {
			log.Warn("closing providers", "err", err)
		}
	}()
	refs := map[string]providers.Ref{}
	for name, sec := range r.cfg.Secrets {
		refs[name] = sec.Ref
	}
	if err := s.checkRefs(set, refs); err != nil {
		log.Warn("mount refused", "err", err)
		return nil, err
	}
	identity := "node"
	if s.usesWorkload(set, refs) {
		if identity, err = s.ids.identity(ctx, r.pod); err != nil {
			log.Warn("mount refused", "err", err)
			return nil, status.Error(grpcCode(err), err.Error())
		}
	}
	fetcher := set // no identity to share logins with
	if identity != "" {
		pset, release := s.pool.acquire(shareKey(identity, r.providersYAML, nil), r.pod.Tokens, func(p *pooled) *providers.Set {
			return s.newSet(r.cfg, s.workload(r.pod, p.token))
		})
		defer release()
		fetcher = pset
	}
	if err := checkInstances(fetcher, refs); err != nil {
		log.Warn("mount refused", "err", err)
		return nil, err
	}
	key := shareKey(identity, r.providersYAML, refs)
	res, shared, err := s.shared.resolve(ctx, key, func(ctx context.Context) (map[string]providers.Resolved, error) {
		return fetcher.Resolve(ctx, refs)
	})
	if err != nil {
		log.Warn("mount failed", "err", err)
		return nil, status.Error(grpcCode(err), err.Error())
	}
	resp, err := s.respond(r, res)
	if err != nil {
		log.Warn("mount failed", "err", err)
		return nil, err
	}
	log.Info("mounted", "secrets", len(resp.ObjectVersion), "files", len(resp.Files), "shared", shared)
	return resp, nil
}

// respond renders the mount's files from res, the mount's own copy of its
// secrets, and zeroes res: the contents are in the response alone.
func (s *Server) respond(r *request, res map[string]providers.Resolved) (*v1alpha1.MountResponse, error) {
	defer zero(res)
	files := make([]render.File, len(r.cfg.Files))
	for i, f := range r.cfg.Files {
		files[i] = render.File{
			Path: f.Path, Format: render.Format(f.Format), Dialect: render.Dialect(f.Dialect),
			Secrets: f.Secrets, Secret: f.Secret, Template: f.Template,
			Mode: r.files[i].mode, UID: -1, GID: -1,
		}
	}
	contents, err := render.Build(files, res)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	resp := &v1alpha1.MountResponse{}
	for i, f := range r.files {
		resp.Files = append(resp.Files, &v1alpha1.File{Path: f.rel, Mode: int32(f.mode.Perm()), Contents: contents[i]})
	}
	resp.ObjectVersion = objectVersions(res)
	return resp, nil
}

// objectVersions is an object version per secret, by name: the store's
// version, or for a store without one a keyed hash of the value
// (providers.ContentVersion, whose key is random per process).
func objectVersions(res map[string]providers.Resolved) []*v1alpha1.ObjectVersion {
	names := make([]string, 0, len(res))
	for name := range res {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]*v1alpha1.ObjectVersion, 0, len(names))
	for _, name := range names {
		v := res[name].Version
		if v == "" {
			v = res[name].Value.Fingerprint()
		}
		out = append(out, &v1alpha1.ObjectVersion{Id: name, Version: v})
	}
	return out
}

// workload is the pod's identity for the providers of its mount.
// With latest set, the tokens are those it returns (the latest of the
// identity's pods: a pooled set outlives the pod it was built for).
func (s *Server) workload(pod Pod, latest func(audience string) (Token, bool)) *providers.Workload {
	if latest == nil {
		latest = func(audience string) (Token, bool) { t, ok := pod.Tokens[audience]; return t, ok }
	}
	return &providers.Workload{
		Namespace: pod.Namespace, ServiceAccount: pod.ServiceAccount,
		APIServer: s.opts.APIServer, APIServerCA: s.opts.APIServerCA,
		Annotations: s.annotations(pod), NodeKinds: s.opts.NodeIdentityKinds,
		Token: func(audience string) (string, error) {
			t, ok := latest(audience)
			if !ok || t.Token == "" {
				return "", fmt.Errorf("the driver passed no ServiceAccount token for audience %q (the CSIDriver object's tokenRequests must list it)", audience)
			}
			return t.Token, nil
		},
	}
}

// newSet is the provider set of one mount: the default instances and
// those the config declares, seeing only Options.Getenv; the workload
// kinds act as the pod, w.
func (s *Server) newSet(cfg *config.Config, w *providers.Workload) *providers.Set {
	base := providers.Instance{BaseDir: cfg.Dir, Getenv: s.opts.Getenv, Logger: s.logger, Workload: w}
	var declared []providers.Instance
	for name, p := range cfg.Providers {
		declared = append(declared, providers.Instance{Name: name, Kind: p.Kind, Decode: p.Decode, Workload: w})
	}
	set := providers.NewSet(base, declared)
	if s.opts.ObserveCalls != nil {
		set.ObserveCalls(s.opts.ObserveCalls)
	}
	return set
}

// usesWorkload says whether a reference is read as the pod.
func (s *Server) usesWorkload(set *providers.Set, refs map[string]providers.Ref) bool {
	for _, ref := range refs {
		if s.actsAsPod(set.KindOf(ref.Scheme)) {
			return true
		}
	}
	return false
}

// allowed says whether a mount may use kind: one that acts as the pod
// (when the server has what it needs), or one the operator allowed with
// the node's identity.
func (s *Server) allowed(kind string) bool {
	if slices.Contains(workloadKinds, kind) {
		return kind != "k8s" || s.opts.APIServer != ""
	}
	return slices.Contains(s.opts.NodeIdentityKinds, kind)
}

// checkRefs validates every reference without I/O and without building
// an instance, and refuses a kind the pod may not use.
func (s *Server) checkRefs(set *providers.Set, refs map[string]providers.Ref) error {
	var probs []string
	names := make([]string, 0, len(refs))
	for name := range refs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ref := refs[name]
		if err := set.CheckRef(ref); err != nil {
			probs = append(probs, name+": "+err.Error())
			continue
		}
		kind := set.KindOf(ref.Scheme)
		if !s.allowed(kind) {
			why := "it has no per-pod identity; an operator may allow it with --node-identity-kinds"
			if slices.Contains(workloadKinds, kind) {
				why = "the provider knows no Kubernetes API server: it runs outside a cluster without --kube-api-server"
			}
			return status.Errorf(codes.PermissionDenied, "secret %s: provider kind %s is not available to pods through keyward csi-provider (%s)", name, kind, why)
		}
	}
	if len(probs) > 0 {
		return status.Error(codes.InvalidArgument, "SecretProviderClass parameter config: "+strings.Join(probs, "; "))
	}
	return nil
}

// checkInstances builds, on the set that fetches, the instances the
// references use (once per set: a pooled set keeps them): their options
// are the config's, so a problem with them is the SecretProviderClass's,
// not the store's.
func checkInstances(set *providers.Set, refs map[string]providers.Ref) error {
	var probs []string
	names := make([]string, 0, len(refs))
	for name := range refs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, err := set.Provider(refs[name].Scheme); err != nil {
			probs = append(probs, name+": "+err.Error())
		}
	}
	if len(probs) > 0 {
		return status.Error(codes.InvalidArgument, "SecretProviderClass parameter config: "+strings.Join(probs, "; "))
	}
	return nil
}

// grpcCode maps a resolve error to a gRPC code.
func grpcCode(err error) codes.Code {
	switch {
	case errors.Is(err, providers.ErrPermissionDenied):
		return codes.PermissionDenied
	case errors.Is(err, providers.ErrNotFound):
		return codes.NotFound
	case errors.Is(err, providers.ErrInvalidReference):
		return codes.InvalidArgument
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	}
	return codes.Unavailable
}

// Listen creates the provider's socket in dir (mode 0600: the driver runs
// as root), replacing a stale socket left by an earlier run but never
// another kind of file.
func Listen(dir string) (net.Listener, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	path := filepath.Join(dir, SocketName)
	l, err := server.ListenUnix(path)
	if err != nil {
		return nil, err
	}
	return &socket{Listener: l, path: path}, nil
}

// socket is the provider's listener: its address is the socket's path,
// and closing it removes the socket.
type socket struct {
	net.Listener
	path string
	once sync.Once
}

func (s *socket) Addr() net.Addr { return &net.UnixAddr{Name: s.path, Net: "unix"} }

func (s *socket) Close() error {
	err := s.Listener.Close()
	s.once.Do(func() { _ = os.Remove(s.path) })
	return err
}

// Serve serves s on l until ctx is done, then stops gracefully (mounts in
// flight finish) and removes the socket. However it ends, the provider
// sets are closed and the cached secrets zeroed.
func Serve(ctx context.Context, l net.Listener, s *Server) error {
	g := grpc.NewServer()
	stop := make(chan struct{})
	var sweeper sync.WaitGroup
	sweeper.Go(func() {
		t := time.NewTicker(max(s.shared.ttl, time.Second))
		defer t.Stop()
		for {
			select {
			case <-t.C:
				s.shared.sweep()
				s.pool.sweep()
			case <-stop:
				return
			}
		}
	})
	defer func() {
		close(stop)
		sweeper.Wait()
		s.pool.closeAll()
		s.shared.clear()
	}()
	v1alpha1.RegisterCSIDriverProviderServer(g, s)
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		g.GracefulStop()
		<-errc
		return nil
	}
}
