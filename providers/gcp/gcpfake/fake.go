// Package gcpfake serves the Google Cloud Secret Manager v1 gRPC API in
// process, on a real loopback listener, for tests: the real client library
// (cloud.google.com/go/secretmanager) talks to it over a socket exactly as
// it talks to Google. No independent emulator of Secret Manager exists, so
// this one follows the documented behaviour closely: sequential version
// numbers, the "latest" alias and named version aliases, ENABLED /
// DISABLED / DESTROYED states (reading a version that is not enabled is
// FAILED_PRECONDITION), CRC32C checksums stored and returned, resource names
// reported with the project number, create_time and destroy_time in
// microseconds (a secret deleted and created again starts at versions/1
// again, told apart from the old one only by its create_time), NOT_FOUND
// and ALREADY_EXISTS codes, and PERMISSION_DENIED through IAM-like deny
// rules and, with Authenticate, per-caller grants (the caller known by its
// bearer token, UNAUTHENTICATED without one), checked before existence as
// Google does. Federation stands in for the token exchange and service
// account impersonation that issue those tokens.
//
// Tests can also inject transient errors, add latency, corrupt the checksum
// of answers (as a broken network path would), and count calls.
package gcpfake

import (
	"context"
	"crypto/tls"
	"fmt"
	"hash/crc32"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Permissions the fake checks, named as in Google Cloud IAM.
const (
	PermSecretsCreate   = "secretmanager.secrets.create"
	PermSecretsGet      = "secretmanager.secrets.get"
	PermSecretsUpdate   = "secretmanager.secrets.update"
	PermSecretsDelete   = "secretmanager.secrets.delete"
	PermVersionsAdd     = "secretmanager.versions.add"
	PermVersionsGet     = "secretmanager.versions.get"
	PermVersionsAccess  = "secretmanager.versions.access"
	PermVersionsEnable  = "secretmanager.versions.enable"
	PermVersionsDisable = "secretmanager.versions.disable"
	PermVersionsDestroy = "secretmanager.versions.destroy"
)

// MaxPayload is the largest payload AddSecretVersion accepts (64 KiB).
const MaxPayload = 64 << 10

// maxAliases is how many version aliases one secret may have.
const maxAliases = 50

// DenyRule refuses permissions to the caller, like an IAM deny policy.
// A request is refused with PERMISSION_DENIED when a rule matches its
// project (by ID or number), its secret (Secret "" matches every secret of
// the project) and the permission it needs (no Permissions matches all).
type DenyRule struct {
	Project     string
	Secret      string
	Permissions []string
}

// Server is the fake Secret Manager. It is safe for concurrent use.
type Server struct {
	secretmanagerpb.UnimplementedSecretManagerServiceServer

	lis  net.Listener
	grpc *grpc.Server
	done chan struct{}

	mu          sync.Mutex
	authn       func(token string) (principal string, ok bool)
	grants      map[string][]DenyRule // principal -> what it may use (Permissions unused)
	projects    map[string]int64      // project ID -> number
	numbers     map[int64]string      // number -> project ID
	secrets     map[string]*secret    // "PROJECT-ID/SECRET-ID" -> secret
	deny        []DenyRule
	inject      map[string][]codes.Code // method -> errors to answer, in order
	corruptCRC  bool
	latency     time.Duration
	calls       map[string]int
	nextNumber  int64
	etagCounter int64
	now         func() time.Time
}

type secret struct {
	meta     *secretmanagerpb.Secret // Name uses the project number
	versions []*version              // versions[i] is version i+1
	etag     string
}

type version struct {
	meta *secretmanagerpb.SecretVersion
	data []byte // nil once destroyed
	crc  int64
}

// Start serves the fake on a free port of 127.0.0.1. Stop it with Close.
func Start() (*Server, error) { return start(nil) }

// StartTLS serves the fake with TLS, presenting cert, on a free port of
// 127.0.0.1 (reached as another address, the address must be one of the
// certificate's names). Stop it with Close.
func StartTLS(cert tls.Certificate) (*Server, error) {
	return start(grpc.Creds(credentials.NewServerTLSFromCert(&cert)))
}

func start(creds grpc.ServerOption) (*Server, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("gcpfake: listen: %w", err)
	}
	s := New()
	s.lis = lis
	opts := []grpc.ServerOption{grpc.UnaryInterceptor(s.intercept)}
	if creds != nil {
		opts = append(opts, creds)
	}
	s.grpc = grpc.NewServer(opts...)
	secretmanagerpb.RegisterSecretManagerServiceServer(s.grpc, s)
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		_ = s.grpc.Serve(lis)
	}()
	return s, nil
}

// New returns a Server that is not listening: its methods can be called
// directly, or it can be registered on a grpc.Server of the caller's.
// Start is the usual way to get one; InjectErrors, SetLatency and Calls
// act only on calls that arrive through Start's listener.
func New() *Server {
	return &Server{
		projects:   map[string]int64{},
		numbers:    map[int64]string{},
		secrets:    map[string]*secret{},
		inject:     map[string][]codes.Code{},
		calls:      map[string]int{},
		nextNumber: 100000000001,
		now:        time.Now,
	}
}

// Addr is the listening address ("127.0.0.1:PORT") of a Server from
// Start, to pass to the client as its endpoint.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// ClientOptions returns the options that point the real client library at
// a Server from Start: its endpoint, plaintext gRPC and the owner's token
// (see Authenticate), not Google credentials.
func (s *Server) ClientOptions() []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(s.Addr()),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithGRPCDialOption(grpc.WithPerRPCCredentials(ownerCredentials{})),
	}
}

// TLSClientOptions are ClientOptions for a Server from StartTLS, trusting
// the certificates c trusts.
func (s *Server) TLSClientOptions(c *tls.Config) []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(s.Addr()),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(credentials.NewTLS(c))),
		option.WithGRPCDialOption(grpc.WithPerRPCCredentials(ownerCredentials{})),
	}
}

// ownerCredentials sends the owner's token (over plaintext gRPC too).
type ownerCredentials struct{}

func (ownerCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + ownerToken}, nil
}

func (ownerCredentials) RequireTransportSecurity() bool { return false }

// Close stops the server, ending open connections, and returns once its
// goroutines have exited.
func (s *Server) Close() error {
	if s.grpc == nil {
		return nil
	}
	s.grpc.Stop()
	<-s.done
	return nil
}

// ProjectNumber returns the number the fake gives project ID id (assigning
// one on first use). Resource names in answers carry this number, as
// Google's do.
func (s *Server) ProjectNumber(id string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.projectNumber(id)
}

func (s *Server) projectNumber(id string) int64 {
	if n, ok := s.projects[id]; ok {
		return n
	}
	n := s.nextNumber
	s.nextNumber++
	s.projects[id] = n
	s.numbers[n] = id
	return n
}

// Deny adds a deny rule.
func (s *Server) Deny(r DenyRule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deny = append(s.deny, r)
}

// InjectErrors makes the next calls of method ("AccessSecretVersion",
// "GetSecretVersion", …) fail with the given codes, one per call, before
// the request is looked at. Use it for transient faults (UNAVAILABLE).
func (s *Server) InjectErrors(method string, cs ...codes.Code) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inject[method] = append(s.inject[method], cs...)
}

// CorruptChecksums makes AccessSecretVersion answer with a data_crc32c that
// does not match the data, as if the payload had been altered on the way.
func (s *Server) CorruptChecksums(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corruptCRC = on
}

// SetLatency delays every answer by d (0 for none), as a distant service
// would; a call whose context ends first is answered with its error.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// Calls returns how many calls of method the fake has received, including
// those answered with an injected error.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// intercept counts calls, answers injected errors and, with
// Authenticate, knows the caller.
func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
	s.mu.Lock()
	authn := s.authn
	s.mu.Unlock()
	if authn != nil {
		caller, err := s.caller(ctx, authn)
		if err != nil {
			s.mu.Lock()
			s.calls[method]++
			s.mu.Unlock()
			return nil, err
		}
		ctx = context.WithValue(ctx, callerKey{}, caller)
	}
	s.mu.Lock()
	s.calls[method]++
	var injected codes.Code
	if q := s.inject[method]; len(q) > 0 {
		injected = q[0]
		s.inject[method] = q[1:]
	}
	latency := s.latency
	s.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	if injected != codes.OK {
		return nil, status.Errorf(injected, "injected %s", injected)
	}
	return handler(ctx, req)
}

// Callers.

// Owner is the principal of the calls of ClientOptions' clients: with
// Authenticate, the fake's owner, who may do everything.
const Owner = "gcpfake:owner"

// ownerToken is the bearer token ClientOptions' clients send.
const ownerToken = "gcpfake-owner-token"

type callerKey struct{}

// Authenticate makes the fake check every call's bearer token (the
// "authorization" metadata, as Google's client libraries send it): a
// call without one, or with one principal does not know, is answered
// UNAUTHENTICATED; a caller other than Owner may use only the secrets
// Grant gave it (PERMISSION_DENIED otherwise, before existence is
// checked, as Google does).
func (s *Server) Authenticate(principal func(token string) (string, bool)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authn = principal
}

// Grant lets principal use secret of project (every secret of the
// project when secret is ""), once Authenticate is on.
func (s *Server) Grant(principal, project, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grants == nil {
		s.grants = map[string][]DenyRule{}
	}
	s.grants[principal] = append(s.grants[principal], DenyRule{Project: project, Secret: secret})
}

// caller is the principal of ctx's bearer token.
func (s *Server) caller(ctx context.Context, authn func(string) (string, bool)) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	var token string
	for _, v := range md.Get("authorization") {
		if t, ok := strings.CutPrefix(v, "Bearer "); ok {
			token = t
		}
	}
	switch {
	case token == "":
		return "", status.Error(codes.Unauthenticated, "Request is missing required authentication credential.")
	case token == ownerToken:
		return Owner, nil
	}
	p, ok := authn(token)
	if !ok || p == "" {
		return "", status.Error(codes.Unauthenticated, "Request had invalid authentication credentials.")
	}
	return p, nil
}

// granted reports whether principal may use r. Caller holds mu.
func (s *Server) granted(principal string, r resource) bool {
	for _, g := range s.grants[principal] {
		if (g.Project == r.project || g.Project == strconv.FormatInt(r.number, 10)) && (g.Secret == "" || g.Secret == r.secret) {
			return true
		}
	}
	return false
}

// Names.

var (
	projectIDRe = regexp.MustCompile(`^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	secretIDRe  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	aliasRe     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,62}$`)
)

// resource is a parsed secret or version name.
type resource struct {
	given   string // the name as the request spelled it
	project string // project ID
	number  int64
	secret  string
	version string // "" for a secret name
}

func (r resource) key() string { return r.project + "/" + r.secret }

func (r resource) secretName() string {
	return fmt.Sprintf("projects/%d/secrets/%s", r.number, r.secret)
}

func (r resource) versionName(v int64) string {
	return fmt.Sprintf("%s/versions/%d", r.secretName(), v)
}

// parseProject resolves "projects/P" (P an ID or a number). Caller holds mu.
func (s *Server) parseProject(name string) (resource, error) {
	p, ok := strings.CutPrefix(name, "projects/")
	if !ok || p == "" || strings.Contains(p, "/") {
		return resource{}, status.Errorf(codes.InvalidArgument, "invalid resource name [%s]: expected projects/*", name)
	}
	return s.project(name, p)
}

func (s *Server) project(given, p string) (resource, error) {
	if n, err := strconv.ParseInt(p, 10, 64); err == nil && n > 0 {
		id, ok := s.numbers[n]
		if !ok {
			return resource{}, status.Errorf(codes.NotFound, "project [%s] not found", p)
		}
		return resource{given: given, project: id, number: n}, nil
	}
	if !projectIDRe.MatchString(p) {
		return resource{}, status.Errorf(codes.InvalidArgument, "invalid project [%s] in resource name [%s]", p, given)
	}
	return resource{given: given, project: p, number: s.projectNumber(p)}, nil
}

// parseName resolves projects/P/secrets/S, or with wantVersion
// projects/P/secrets/S/versions/V. Caller holds mu.
func (s *Server) parseName(name string, wantVersion bool) (resource, error) {
	parts := strings.Split(name, "/")
	shape := "projects/*/secrets/*"
	if wantVersion {
		shape += "/versions/*"
	}
	n := 4
	if wantVersion {
		n = 6
	}
	if len(parts) != n || parts[0] != "projects" || parts[2] != "secrets" || wantVersion && parts[4] != "versions" ||
		parts[1] == "" || parts[3] == "" || wantVersion && parts[5] == "" {
		if len(parts) >= 3 && parts[0] == "projects" && parts[2] == "locations" {
			return resource{}, status.Errorf(codes.InvalidArgument, "regional secrets [%s] are served by regional endpoints, not this one", name)
		}
		return resource{}, status.Errorf(codes.InvalidArgument, "invalid resource name [%s]: expected %s", name, shape)
	}
	r, err := s.project(name, parts[1])
	if err != nil {
		return resource{}, err
	}
	if !secretIDRe.MatchString(parts[3]) {
		return resource{}, status.Errorf(codes.InvalidArgument, "invalid secret ID [%s]", parts[3])
	}
	r.secret = parts[3]
	if wantVersion {
		r.version = parts[5]
	}
	return r, nil
}

// denied returns the PERMISSION_DENIED error for r and perm, or nil.
// Google checks permissions before existence, so a denied caller cannot
// learn whether the resource exists. Caller holds mu.
func (s *Server) denied(ctx context.Context, r resource, perm string) error {
	if caller, _ := ctx.Value(callerKey{}).(string); caller != "" && caller != Owner && !s.granted(caller, r) {
		return status.Errorf(codes.PermissionDenied, "Permission '%s' denied for resource '%s' (or it may not exist).", perm, r.given)
	}
	for _, d := range s.deny {
		if d.Project != r.project && d.Project != strconv.FormatInt(r.number, 10) {
			continue
		}
		if d.Secret != "" && d.Secret != r.secret {
			continue
		}
		if len(d.Permissions) > 0 && !contains(d.Permissions, perm) {
			continue
		}
		return status.Errorf(codes.PermissionDenied, "Permission '%s' denied for resource '%s' (or it may not exist).", perm, r.given)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// lookupSecret finds r's secret. Caller holds mu.
func (s *Server) lookupSecret(r resource) (*secret, error) {
	sec, ok := s.secrets[r.key()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found.", r.secretName())
	}
	return sec, nil
}

// lookupVersion resolves r.version ("latest", a number, or an alias when
// aliases is set) to a version of sec. Caller holds mu.
func (s *Server) lookupVersion(r resource, sec *secret, aliases bool) (*version, error) {
	v := r.version
	switch {
	case v == "latest":
		if !aliases {
			break
		}
		if len(sec.versions) == 0 {
			return nil, status.Errorf(codes.NotFound, "Secret [%s] not found or has no versions.", r.secretName())
		}
		return sec.versions[len(sec.versions)-1], nil
	case v[0] >= '0' && v[0] <= '9':
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return nil, status.Errorf(codes.InvalidArgument, "invalid secret version [%s]", v)
		}
		if n > int64(len(sec.versions)) {
			return nil, status.Errorf(codes.NotFound, "Secret Version [%s] not found.", r.versionName(n))
		}
		return sec.versions[n-1], nil
	}
	if aliases && aliasRe.MatchString(v) {
		n, ok := sec.meta.VersionAliases[v]
		if !ok {
			return nil, status.Errorf(codes.NotFound, "Secret Version [%s/versions/%s] not found.", r.secretName(), v)
		}
		return sec.versions[n-1], nil
	}
	return nil, status.Errorf(codes.InvalidArgument, "invalid secret version [%s]: this method takes a version number", v)
}

// stamp is the time of a change, at the microsecond precision of the
// service's create_time and destroy_time. Caller holds mu.
func (s *Server) stamp() *timestamppb.Timestamp {
	return timestamppb.New(s.now().UTC().Truncate(time.Microsecond))
}

func (s *Server) etag() string {
	s.etagCounter++
	return fmt.Sprintf("\"%x\"", s.etagCounter)
}

// castagnoli is the CRC32C table (Secret Manager's checksum).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the CRC32C of data as Secret Manager encodes it.
func Checksum(data []byte) int64 { return int64(crc32.Checksum(data, castagnoli)) }

// CreateSecret creates a secret with no versions. The parent is
// projects/P; the secret ID must match [A-Za-z0-9_-]{1,255}; a replication
// policy is required; version aliases may only name existing versions, so
// a new secret can have none.
func (s *Server) CreateSecret(ctx context.Context, req *secretmanagerpb.CreateSecretRequest) (*secretmanagerpb.Secret, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.parseProject(req.GetParent())
	if err != nil {
		return nil, err
	}
	r.secret = req.GetSecretId()
	r.given = req.GetParent() + "/secrets/" + r.secret
	if !secretIDRe.MatchString(r.secret) {
		return nil, status.Errorf(codes.InvalidArgument, "invalid secret ID [%s]: it must match [A-Za-z0-9_-]{1,255}", r.secret)
	}
	if err := s.denied(ctx, r, PermSecretsCreate); err != nil {
		return nil, err
	}
	in := req.GetSecret()
	if in.GetReplication().GetReplication() == nil {
		return nil, status.Error(codes.InvalidArgument, "Secret.replication is required.")
	}
	if len(in.GetVersionAliases()) > 0 {
		return nil, status.Error(codes.InvalidArgument, "version aliases must name existing versions; a new secret has none")
	}
	if _, ok := s.secrets[r.key()]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "Secret [%s] already exists.", r.secretName())
	}
	meta := proto.Clone(in).(*secretmanagerpb.Secret)
	meta.Name = r.secretName()
	meta.CreateTime = s.stamp()
	meta.VersionAliases = nil
	sec := &secret{meta: meta, etag: s.etag()}
	meta.Etag = sec.etag
	s.secrets[r.key()] = sec
	return proto.Clone(meta).(*secretmanagerpb.Secret), nil
}

// GetSecret returns a secret's metadata.
func (s *Server) GetSecret(ctx context.Context, req *secretmanagerpb.GetSecretRequest) (*secretmanagerpb.Secret, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.parseName(req.GetName(), false)
	if err != nil {
		return nil, err
	}
	if err := s.denied(ctx, r, PermSecretsGet); err != nil {
		return nil, err
	}
	sec, err := s.lookupSecret(r)
	if err != nil {
		return nil, err
	}
	return proto.Clone(sec.meta).(*secretmanagerpb.Secret), nil
}

// UpdateSecret changes the fields named by the update mask; this fake
// supports version_aliases, labels and annotations.
func (s *Server) UpdateSecret(ctx context.Context, req *secretmanagerpb.UpdateSecretRequest) (*secretmanagerpb.Secret, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := req.GetSecret()
	r, err := s.parseName(in.GetName(), false)
	if err != nil {
		return nil, err
	}
	if err := s.denied(ctx, r, PermSecretsUpdate); err != nil {
		return nil, err
	}
	sec, err := s.lookupSecret(r)
	if err != nil {
		return nil, err
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		return nil, status.Error(codes.InvalidArgument, "update_mask is required")
	}
	for _, p := range paths {
		switch p {
		case "version_aliases":
			if len(in.GetVersionAliases()) > maxAliases {
				return nil, status.Errorf(codes.InvalidArgument, "a secret may have at most %d version aliases", maxAliases)
			}
			for a, n := range in.GetVersionAliases() {
				if !aliasRe.MatchString(a) || a == "latest" || a == "NEW" {
					return nil, status.Errorf(codes.InvalidArgument, "invalid version alias [%s]", a)
				}
				if n < 1 || n > int64(len(sec.versions)) {
					return nil, status.Errorf(codes.InvalidArgument, "version alias [%s] names version %d, which does not exist", a, n)
				}
				if sec.versions[n-1].meta.State == secretmanagerpb.SecretVersion_DESTROYED {
					return nil, status.Errorf(codes.FailedPrecondition, "Secret Version [%s] is in DESTROYED state.", r.versionName(n))
				}
			}
		case "labels", "annotations":
		default:
			return nil, status.Errorf(codes.InvalidArgument, "update_mask path %q is not supported by this fake", p)
		}
	}
	for _, p := range paths {
		switch p {
		case "version_aliases":
			sec.meta.VersionAliases = cloneMap(in.GetVersionAliases())
		case "labels":
			sec.meta.Labels = cloneMap(in.GetLabels())
		case "annotations":
			sec.meta.Annotations = cloneMap(in.GetAnnotations())
		}
	}
	sec.etag = s.etag()
	sec.meta.Etag = sec.etag
	return proto.Clone(sec.meta).(*secretmanagerpb.Secret), nil
}

func cloneMap[V any](m map[string]V) map[string]V {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// DeleteSecret deletes a secret and all its versions. A non-empty etag
// must match the secret's (ABORTED otherwise).
func (s *Server) DeleteSecret(ctx context.Context, req *secretmanagerpb.DeleteSecretRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.parseName(req.GetName(), false)
	if err != nil {
		return nil, err
	}
	if err := s.denied(ctx, r, PermSecretsDelete); err != nil {
		return nil, err
	}
	sec, err := s.lookupSecret(r)
	if err != nil {
		return nil, err
	}
	if e := req.GetEtag(); e != "" && e != sec.etag {
		return nil, status.Errorf(codes.Aborted, "etag mismatch for Secret [%s]", r.secretName())
	}
	delete(s.secrets, r.key())
	return &emptypb.Empty{}, nil
}

// AddSecretVersion adds an ENABLED version numbered one more than the last
// version ever created. The payload must be at most 64 KiB; a data_crc32c,
// when given, must match the data (INVALID_ARGUMENT otherwise) and is then
// reported as client_specified_payload_checksum.
func (s *Server) AddSecretVersion(ctx context.Context, req *secretmanagerpb.AddSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.parseName(req.GetParent(), false)
	if err != nil {
		return nil, err
	}
	if err := s.denied(ctx, r, PermVersionsAdd); err != nil {
		return nil, err
	}
	sec, err := s.lookupSecret(r)
	if err != nil {
		return nil, err
	}
	data := req.GetPayload().GetData()
	if len(data) > MaxPayload {
		return nil, status.Errorf(codes.InvalidArgument, "payload is %d bytes, more than the limit of %d", len(data), MaxPayload)
	}
	crc := Checksum(data)
	clientCRC := req.GetPayload().DataCrc32C != nil
	if clientCRC && req.GetPayload().GetDataCrc32C() != crc {
		return nil, status.Error(codes.InvalidArgument, "Checksum mismatch: data_crc32c does not match the payload data.")
	}
	n := int64(len(sec.versions)) + 1
	v := &version{
		meta: &secretmanagerpb.SecretVersion{
			Name:                           r.versionName(n),
			CreateTime:                     s.stamp(),
			State:                          secretmanagerpb.SecretVersion_ENABLED,
			Etag:                           s.etag(),
			ClientSpecifiedPayloadChecksum: clientCRC,
			ReplicationStatus: &secretmanagerpb.ReplicationStatus{
				ReplicationStatus: &secretmanagerpb.ReplicationStatus_Automatic{
					Automatic: &secretmanagerpb.ReplicationStatus_AutomaticStatus{},
				},
			},
		},
		data: append([]byte{}, data...),
		crc:  crc,
	}
	sec.versions = append(sec.versions, v)
	return proto.Clone(v.meta).(*secretmanagerpb.SecretVersion), nil
}

// GetSecretVersion returns a version's metadata (in any state). The
// version may be a number, "latest" (the most recently created version,
// whatever its state) or an alias.
func (s *Server) GetSecretVersion(ctx context.Context, req *secretmanagerpb.GetSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.parseName(req.GetName(), true)
	if err != nil {
		return nil, err
	}
	if err := s.denied(ctx, r, PermVersionsGet); err != nil {
		return nil, err
	}
	sec, err := s.lookupSecret(r)
	if err != nil {
		return nil, err
	}
	v, err := s.lookupVersion(r, sec, true)
	if err != nil {
		return nil, err
	}
	return proto.Clone(v.meta).(*secretmanagerpb.SecretVersion), nil
}

// AccessSecretVersion returns a version's payload with its CRC32C and the
// version's resolved name. A version that is not ENABLED is
// FAILED_PRECONDITION, including when "latest" resolves to it.
func (s *Server) AccessSecretVersion(ctx context.Context, req *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.parseName(req.GetName(), true)
	if err != nil {
		return nil, err
	}
	if err := s.denied(ctx, r, PermVersionsAccess); err != nil {
		return nil, err
	}
	sec, err := s.lookupSecret(r)
	if err != nil {
		if r.version == "latest" {
			return nil, status.Errorf(codes.NotFound, "Secret [%s] not found or has no versions.", r.secretName())
		}
		return nil, err
	}
	v, err := s.lookupVersion(r, sec, true)
	if err != nil {
		return nil, err
	}
	if st := v.meta.State; st != secretmanagerpb.SecretVersion_ENABLED {
		return nil, status.Errorf(codes.FailedPrecondition, "Secret Version [%s] is in %s state.", v.meta.Name, st)
	}
	crc := v.crc
	if s.corruptCRC {
		crc ^= 0x5a5a5a5a
	}
	return &secretmanagerpb.AccessSecretVersionResponse{
		Name: v.meta.Name,
		Payload: &secretmanagerpb.SecretPayload{
			Data:       append([]byte{}, v.data...),
			DataCrc32C: proto.Int64(crc),
		},
	}, nil
}

// setState moves a version (named by number or alias) to state. A
// destroyed version can no longer change (FAILED_PRECONDITION); a
// non-empty etag must match (ABORTED otherwise).
func (s *Server) setState(ctx context.Context, name, etag, perm string, state secretmanagerpb.SecretVersion_State) (*secretmanagerpb.SecretVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.parseName(name, true)
	if err != nil {
		return nil, err
	}
	if err := s.denied(ctx, r, perm); err != nil {
		return nil, err
	}
	sec, err := s.lookupSecret(r)
	if err != nil {
		return nil, err
	}
	v, err := s.lookupVersion(r, sec, false)
	if err != nil {
		return nil, err
	}
	if etag != "" && etag != v.meta.Etag {
		return nil, status.Errorf(codes.Aborted, "etag mismatch for Secret Version [%s]", v.meta.Name)
	}
	if v.meta.State == secretmanagerpb.SecretVersion_DESTROYED {
		return nil, status.Errorf(codes.FailedPrecondition, "Secret Version [%s] is in DESTROYED state.", v.meta.Name)
	}
	v.meta.State = state
	v.meta.Etag = s.etag()
	if state == secretmanagerpb.SecretVersion_DESTROYED {
		v.meta.DestroyTime = s.stamp()
		clear(v.data)
		v.data = nil
		// Aliases of a destroyed version are removed.
		for a, n := range sec.meta.VersionAliases {
			if sec.versions[n-1] == v {
				delete(sec.meta.VersionAliases, a)
			}
		}
	}
	return proto.Clone(v.meta).(*secretmanagerpb.SecretVersion), nil
}

// DisableSecretVersion makes a version unreadable until it is enabled again.
func (s *Server) DisableSecretVersion(ctx context.Context, req *secretmanagerpb.DisableSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return s.setState(ctx, req.GetName(), req.GetEtag(), PermVersionsDisable, secretmanagerpb.SecretVersion_DISABLED)
}

// EnableSecretVersion makes a disabled version readable again.
func (s *Server) EnableSecretVersion(ctx context.Context, req *secretmanagerpb.EnableSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return s.setState(ctx, req.GetName(), req.GetEtag(), PermVersionsEnable, secretmanagerpb.SecretVersion_ENABLED)
}

// DestroySecretVersion irrevocably deletes a version's payload; its
// metadata remains, in state DESTROYED with a destroy_time.
func (s *Server) DestroySecretVersion(ctx context.Context, req *secretmanagerpb.DestroySecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	return s.setState(ctx, req.GetName(), req.GetEtag(), PermVersionsDestroy, secretmanagerpb.SecretVersion_DESTROYED)
}

// Secrets lists the names ("projects/NUMBER/secrets/ID") of every secret
// the fake holds, sorted; for test assertions.
func (s *Server) Secrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.secrets))
	for _, sec := range s.secrets {
		out = append(out, sec.meta.Name)
	}
	sort.Strings(out)
	return out
}
