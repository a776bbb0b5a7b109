// Package webhook is keyward's mutating admission webhook: Mutator turns
// a Pod annotated keyward.io/inject: "true" into a JSON patch that adds an
// in-memory secrets volume, a `keyward render --once` init container and,
// on request, a native `keyward agent` sidecar or the `keyward exec`
// wrapper; Handler serves it as admission.k8s.io/v1 AdmissionReviews and
// Server runs it over TLS with a generated or mounted certificate.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/keyward/keyward/internal/config"
)

// The annotations the webhook reads on a Pod (or a pod template).
const (
	// AnnotationInject is "true" to inject keyward, "false" or absent to
	// leave the pod alone; any other value is denied.
	AnnotationInject = "keyward.io/inject"
	// AnnotationConfig names the ConfigMap, in the pod's namespace, whose
	// key ConfigKey holds keyward.yaml. Required with inject.
	AnnotationConfig = "keyward.io/config"
	// AnnotationAgent is "true" to add the native sidecar running
	// `keyward agent` (rotation without a restart).
	AnnotationAgent = "keyward.io/agent"
	// AnnotationMode is "files" (default: render into the volume) or
	// "exec" (wrap each app container's command in `keyward exec`).
	AnnotationMode = "keyward.io/mode"
	// AnnotationSecretsPath overrides the mount path of the secrets
	// volume (Options.SecretsPath) for one pod.
	AnnotationSecretsPath = "keyward.io/secrets-path"
	// AnnotationStatus is written by the webhook ("injected"); a pod that
	// carries it is not injected again.
	AnnotationStatus = "keyward.io/status"
)

// Names of what the webhook adds to a pod, and where.
const (
	// ConfigKey is the ConfigMap key that holds keyward.yaml.
	ConfigKey = "keyward.yaml"
	// ConfigDir is where the ConfigMap is mounted in keyward's containers.
	ConfigDir = "/etc/keyward"
	// ConfigPath is the config file the injected commands read.
	ConfigPath = ConfigDir + "/" + ConfigKey
	// BinDir is where the exec mode's copy of the binary is mounted.
	BinDir = "/keyward/bin"
	// DefaultSecretsPath is the default mount path of the secrets volume.
	DefaultSecretsPath = "/run/secrets/keyward"
	// DefaultImage is the image of keyward's containers when nothing
	// names one and the binary is not a release (see ImageFor).
	DefaultImage = "keyward:latest"
	// DefaultUID is the uid keyward's containers run as when the pod
	// names no non-root uid (distroless's nonroot user).
	DefaultUID = 65532
	// DefaultFileGroup is the group that shares the rendered files
	// between keyward and the app when the pod has no fsGroup: the
	// webhook adds it to the pod's supplementalGroups.
	DefaultFileGroup = 65532

	VolumeSecrets = "keyward-secrets"
	VolumeConfig  = "keyward-config"
	VolumeBin     = "keyward-bin"
	VolumeToken   = "keyward-token"

	// TokenDir is where keyward's containers find the pod's
	// service-account token, CA and namespace (the in-cluster default).
	TokenDir = "/var/run/secrets/kubernetes.io/serviceaccount"

	ContainerInit    = "keyward-init"
	ContainerAgent   = "keyward-agent"
	ContainerInstall = "keyward-install"
)

// Options tunes what the Mutator injects. The zero value is usable: every
// empty field takes its default.
type Options struct {
	// Image is the image of keyward's containers (DefaultImage).
	Image string
	// PullPolicy is their imagePullPolicy (IfNotPresent).
	PullPolicy corev1.PullPolicy
	// SecretsPath is the secrets volume's mount path (DefaultSecretsPath).
	SecretsPath string
	// Namespace is the webhook's own namespace: its pods are never
	// mutated, whatever their annotations.
	Namespace string
	// Resources are the requests and limits of keyward's containers
	// (nil: DefaultResources); a pod's keyward.io/cpu-request,
	// memory-request, cpu-limit and memory-limit annotations override
	// them one by one.
	Resources *corev1.ResourceRequirements
}

// ConfigMaps looks up the data of a ConfigMap. It returns an error
// wrapping ErrConfigMapNotFound when the ConfigMap does not exist. It is
// called concurrently.
type ConfigMaps interface {
	ConfigMapData(ctx context.Context, namespace, name string) (map[string]string, error)
}

// ErrConfigMapNotFound is wrapped by ConfigMaps when the ConfigMap is missing.
var ErrConfigMapNotFound = errors.New("configmap not found")

// Denial is the error Mutate returns when the pod must not be admitted;
// its message tells the user what to change. It never carries a secret
// value (a ConfigMap holds references, and parse errors name no values).
type Denial struct{ Msg string }

func (d *Denial) Error() string { return d.Msg }

func deny(format string, args ...any) error {
	return &Denial{Msg: fmt.Sprintf(format, args...)}
}

// PatchOp is one RFC 6902 JSON Patch operation.
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// Mutator computes the patch for a pod. It is safe for concurrent use.
type Mutator struct {
	opts Options
	cms  ConfigMaps
}

// NewMutator returns a Mutator that reads ConfigMaps through cms.
func NewMutator(opts Options, cms ConfigMaps) *Mutator {
	if opts.Image == "" {
		opts.Image = DefaultImage
	}
	if opts.PullPolicy == "" {
		opts.PullPolicy = corev1.PullIfNotPresent
	}
	if opts.SecretsPath == "" {
		opts.SecretsPath = DefaultSecretsPath
	}
	if opts.Resources == nil {
		rr, err := DefaultResources.Requirements()
		if err != nil {
			panic("webhook: DefaultResources: " + err.Error())
		}
		opts.Resources = &rr
	}
	return &Mutator{opts: opts, cms: cms}
}

// Mutate returns the JSON patch that injects keyward into pod, which is
// being created in namespace (the request's namespace: a controller's
// pod may not have one yet). It returns a nil patch when the pod is left
// alone (no inject annotation, the webhook's own namespace, or injected
// already), a *Denial when the pod must be refused, and another error
// when a ConfigMap could not be read.
func (m *Mutator) Mutate(ctx context.Context, namespace string, pod *corev1.Pod) ([]byte, error) {
	ops, err := m.ops(ctx, namespace, pod)
	if err != nil || ops == nil {
		return nil, err
	}
	b, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("encode patch: %w", err)
	}
	return b, nil
}

func parseBool(pod *corev1.Pod, key string) (bool, error) {
	switch v, ok := pod.Annotations[key]; {
	case !ok || v == "false":
		return false, nil
	case v == "true":
		return true, nil
	default:
		return false, deny(`annotation %s: %q is not "true" or "false"`, key, v)
	}
}

func (m *Mutator) ops(ctx context.Context, namespace string, pod *corev1.Pod) ([]PatchOp, error) {
	inject, err := parseBool(pod, AnnotationInject)
	if err != nil || !inject {
		return nil, err
	}
	if namespace == m.opts.Namespace && namespace != "" {
		return nil, nil
	}
	if pod.Annotations[AnnotationStatus] == "injected" {
		return nil, nil
	}
	agent, err := parseBool(pod, AnnotationAgent)
	if err != nil {
		return nil, err
	}
	mode := pod.Annotations[AnnotationMode]
	switch mode {
	case "":
		mode = "files"
	case "files", "exec":
	default:
		return nil, deny(`annotation %s: %q is not "files" or "exec"`, AnnotationMode, mode)
	}
	if mode == "exec" && agent {
		return nil, deny(`annotations %s: "exec" and %s: "true" exclude each other: keyward exec already watches and re-renders; remove %s`, AnnotationMode, AnnotationAgent, AnnotationAgent)
	}
	secretsPath := m.opts.SecretsPath
	if p, ok := pod.Annotations[AnnotationSecretsPath]; ok {
		if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
			return nil, deny("annotation %s: %q is not a clean absolute directory path", AnnotationSecretsPath, p)
		}
		secretsPath = p
	}
	resources, err := podResources(*m.opts.Resources, pod)
	if err != nil {
		return nil, err
	}
	for _, v := range pod.Spec.Volumes {
		if v.Name == VolumeSecrets || v.Name == VolumeConfig || v.Name == VolumeBin || v.Name == VolumeToken {
			return nil, deny("the pod already has a volume named %s, which keyward reserves; rename it", v.Name)
		}
	}
	for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
		if c.Name == ContainerInit || c.Name == ContainerAgent || c.Name == ContainerInstall {
			return nil, deny("the pod already has a container named %s, which keyward reserves; rename it", c.Name)
		}
	}

	cfg, err := m.config(ctx, namespace, pod, secretsPath)
	if err != nil {
		return nil, err
	}
	var probePort int
	if agent {
		if probePort, err = agentPort(cfg); err != nil {
			return nil, err
		}
	}
	if mode == "exec" {
		var missing []string
		for _, c := range pod.Spec.Containers {
			if len(c.Command) == 0 {
				missing = append(missing, c.Name)
			}
		}
		if len(missing) > 0 {
			return nil, deny(`%s: "exec" needs each container's command in the pod spec (the image's entrypoint is not looked up): add command: [...] to container(s) %s`, AnnotationMode, strings.Join(missing, ", "))
		}
	}

	uid, gid := podIdentity(pod)
	fileGroup, podSC := podFileGroup(pod)
	if mode == "files" {
		if err := checkOwners(cfg, namespace, pod, uid, gid, fileGroup); err != nil {
			return nil, err
		}
	}
	k := keywardContainer{m: m, uid: uid, gid: gid, secretsPath: secretsPath, resources: resources}
	var inits []corev1.Container
	appMount := corev1.VolumeMount{Name: VolumeSecrets, MountPath: secretsPath, ReadOnly: true}
	containers := slices.Clone(pod.Spec.Containers)
	volumes := slices.Clone(pod.Spec.Volumes)
	volumes = append(volumes,
		corev1.Volume{Name: VolumeSecrets, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: ptr(resource.MustParse("1Mi"))}}},
		corev1.Volume{Name: VolumeConfig, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: pod.Annotations[AnnotationConfig]},
			Items:                []corev1.KeyToPath{{Key: ConfigKey, Path: ConfigKey}},
		}}},
		tokenVolume(),
	)
	switch mode {
	case "files":
		group := "--file-group=" + strconv.FormatInt(fileGroup, 10)
		inits = append(inits, k.container(ContainerInit, []string{"render", "--once", "-c", ConfigPath, group}))
		if agent {
			sc := k.container(ContainerAgent, []string{"agent", "-c", ConfigPath, group})
			sc.RestartPolicy = ptr(corev1.ContainerRestartPolicyAlways)
			sc.Ports = []corev1.ContainerPort{{Name: "keyward-http", ContainerPort: int32(probePort), Protocol: corev1.ProtocolTCP}}
			sc.StartupProbe = &corev1.Probe{
				ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstrPort(probePort)}},
				PeriodSeconds:    1,
				FailureThreshold: 120,
			}
			sc.LivenessProbe = &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstrPort(probePort)}},
				PeriodSeconds: 10,
			}
			inits = append(inits, sc)
		}
		for i := range containers {
			containers[i].VolumeMounts = append(slices.Clone(containers[i].VolumeMounts), appMount)
		}
	case "exec":
		volumes = append(volumes, corev1.Volume{Name: VolumeBin, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr(resource.MustParse("256Mi"))}}})
		install := k.container(ContainerInstall, []string{"webhook", "install-binary", BinDir + "/keyward"})
		install.VolumeMounts = []corev1.VolumeMount{{Name: VolumeBin, MountPath: BinDir}}
		inits = append(inits, install)
		for i := range containers {
			c := &containers[i]
			c.Command = append([]string{BinDir + "/keyward", "exec", "-c", ConfigPath, "--"}, c.Command...)
			// keyward exec writes the config's files itself, inside the
			// app container: the volume is writable there.
			c.VolumeMounts = append(slices.Clone(c.VolumeMounts),
				corev1.VolumeMount{Name: VolumeSecrets, MountPath: secretsPath},
				corev1.VolumeMount{Name: VolumeConfig, MountPath: ConfigDir, ReadOnly: true},
				corev1.VolumeMount{Name: VolumeBin, MountPath: BinDir, ReadOnly: true},
			)
			if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == TokenDir }) {
				c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: VolumeToken, MountPath: TokenDir, ReadOnly: true})
			}
		}
	}
	userInits := slices.Clone(pod.Spec.InitContainers)
	for i := range userInits {
		userInits[i].VolumeMounts = append(slices.Clone(userInits[i].VolumeMounts), appMount)
	}
	// keyward's containers run first: the app's own init containers see
	// the rendered files too.
	inits = append(inits, userInits...)

	annotations := make(map[string]string, len(pod.Annotations)+1)
	for key, v := range pod.Annotations {
		annotations[key] = v
	}
	annotations[AnnotationStatus] = "injected"
	ops := []PatchOp{
		{Op: "add", Path: "/metadata/annotations", Value: annotations},
		{Op: "add", Path: "/spec/volumes", Value: volumes},
		{Op: "add", Path: "/spec/initContainers", Value: inits},
		{Op: "add", Path: "/spec/containers", Value: containers},
	}
	if mode == "files" && podSC != nil {
		ops = append(ops, PatchOp{Op: "add", Path: "/spec/securityContext", Value: podSC})
	}
	return ops, nil
}

// podFileGroup picks the group through which the app reads the files
// keyward renders: the pod's fsGroup, which the kubelet gives every
// container, else DefaultFileGroup, which the returned security context
// (nil when the pod needs no change) adds to the pod's
// supplementalGroups. keyward gives each file that group and lets it read
// what the owner may (--file-group), so the app reads its files whatever
// uid it runs as — the image's USER, which the webhook cannot know without
// asking a registry, included — and no process outside the pod can.
//
// A supplemental group, unlike an fsGroup added by the webhook, changes
// no volume: the kubelet chowns every volume of a pod with an fsGroup
// (persistent ones included) to that group.
func podFileGroup(pod *corev1.Pod) (int64, *corev1.PodSecurityContext) {
	psc := pod.Spec.SecurityContext
	if psc != nil && psc.FSGroup != nil {
		return *psc.FSGroup, nil
	}
	if psc != nil && slices.Contains(psc.SupplementalGroups, DefaultFileGroup) {
		return DefaultFileGroup, nil
	}
	sc := &corev1.PodSecurityContext{}
	if psc != nil {
		sc = psc.DeepCopy()
	}
	sc.SupplementalGroups = append(sc.SupplementalGroups, DefaultFileGroup)
	return DefaultFileGroup, sc
}

// checkOwners denies a config whose files name an owner or group that
// keyward's init container cannot give (it runs as uid with primary group
// gid, no capabilities, and the pod's groups): rendering would fail, so
// the pod would never start.
func checkOwners(cfg *config.Config, namespace string, pod *corev1.Pod, uid, gid, fileGroup int64) error {
	groups := []int64{gid, fileGroup}
	if psc := pod.Spec.SecurityContext; psc != nil {
		groups = append(groups, psc.SupplementalGroups...)
	}
	for _, f := range cfg.Files {
		if f.Owner != nil && int64(*f.Owner) != uid {
			return deny("ConfigMap %s/%s: file %s: owner: %d cannot be applied: keyward's containers run as uid %d (the app's runAsUser, else %d) without CAP_CHOWN; remove owner: (the app reads its files through the pod's group %d) or run the app as uid %d (runAsUser)",
				namespace, pod.Annotations[AnnotationConfig], f.Path, *f.Owner, uid, DefaultUID, fileGroup, *f.Owner)
		}
		if f.Group != nil && !slices.Contains(groups, int64(*f.Group)) {
			return deny("ConfigMap %s/%s: file %s: group: %d cannot be applied: keyward's containers are not in group %d (they have %s); remove group: (the files get the pod's group %d) or set the pod's fsGroup to %d",
				namespace, pod.Annotations[AnnotationConfig], f.Path, *f.Group, *f.Group, joinIDs(groups), fileGroup, *f.Group)
		}
	}
	return nil
}

func joinIDs(ids []int64) string {
	var b strings.Builder
	for i, id := range slices.Compact(slices.Sorted(slices.Values(ids))) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	return b.String()
}

// config reads and checks the ConfigMap the pod names.
func (m *Mutator) config(ctx context.Context, namespace string, pod *corev1.Pod, secretsPath string) (*config.Config, error) {
	name, ok := pod.Annotations[AnnotationConfig]
	if !ok || name == "" {
		return nil, deny("annotation %s is missing: name the ConfigMap (in namespace %s) whose key %s holds keyward's config", AnnotationConfig, namespace, ConfigKey)
	}
	data, err := m.cms.ConfigMapData(ctx, namespace, name)
	if errors.Is(err, ErrConfigMapNotFound) {
		return nil, deny("annotation %s: ConfigMap %s/%s does not exist; create it with keyward's config under the key %s", AnnotationConfig, namespace, name, ConfigKey)
	}
	if err != nil {
		return nil, fmt.Errorf("read ConfigMap %s/%s: %w", namespace, name, err)
	}
	raw, ok := data[ConfigKey]
	if !ok {
		return nil, deny("ConfigMap %s/%s has no key %s holding keyward's config", namespace, name, ConfigKey)
	}
	cfg, err := config.Parse([]byte(raw), ConfigPath)
	if err != nil {
		return nil, deny("ConfigMap %s/%s: %v", namespace, name, err)
	}
	for _, f := range cfg.Files {
		if !under(f.Path, secretsPath) {
			return nil, deny("ConfigMap %s/%s: file %s is outside the secrets volume %s (the only writable place in keyward's containers); put it under %s or set %s", namespace, name, f.Path, secretsPath, secretsPath, AnnotationSecretsPath)
		}
	}
	for tname, t := range cfg.Tokens {
		if t.File != "" && !under(t.File, secretsPath) {
			return nil, deny("ConfigMap %s/%s: token %s's file %s is outside the secrets volume %s", namespace, name, tname, t.File, secretsPath)
		}
	}
	return cfg, nil
}

func under(p, dir string) bool {
	return strings.HasPrefix(path.Clean(p), dir+"/")
}

// agentPort returns the TCP port of the config's server, which the
// kubelet probes on the pod IP.
func agentPort(cfg *config.Config) (int, error) {
	const hint = `add server: {listen: "0.0.0.0:8099", allow_remote: true} to the config`
	if cfg.Server == nil || strings.HasPrefix(cfg.Server.Listen, "unix:") {
		return 0, deny(`%s: "true" needs a TCP server for the startup probe on /readyz: %s`, AnnotationAgent, hint)
	}
	host, port, err := net.SplitHostPort(cfg.Server.Listen)
	if err != nil {
		return 0, deny("config server.listen %q: %v: %s", cfg.Server.Listen, err, hint)
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return 0, deny("config server.listen %q is loopback, which the kubelet's probe cannot reach: %s", cfg.Server.Listen, hint)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n <= 0 || n > 65535 {
		return 0, deny("config server.listen %q: no TCP port: %s", cfg.Server.Listen, hint)
	}
	return n, nil
}

// podIdentity picks the uid and gid keyward's containers run as: the
// first app container's, else the pod's, else DefaultUID, so the files
// belong to the app's user when the pod spec names it; otherwise the app
// reads them through the pod's group (podFileGroup). A root uid is never
// used.
func podIdentity(pod *corev1.Pod) (uid, gid int64) {
	uid, gid = -1, -1
	if len(pod.Spec.Containers) > 0 && pod.Spec.Containers[0].SecurityContext != nil {
		sc := pod.Spec.Containers[0].SecurityContext
		if sc.RunAsUser != nil {
			uid = *sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = *sc.RunAsGroup
		}
	}
	if psc := pod.Spec.SecurityContext; psc != nil {
		if uid < 0 && psc.RunAsUser != nil {
			uid = *psc.RunAsUser
		}
		if gid < 0 && psc.RunAsGroup != nil {
			gid = *psc.RunAsGroup
		}
	}
	if uid <= 0 {
		uid = DefaultUID
	}
	if gid <= 0 {
		gid = uid
	}
	return uid, gid
}

// keywardContainer builds keyward's own containers.
type keywardContainer struct {
	m           *Mutator
	uid, gid    int64
	secretsPath string
	resources   corev1.ResourceRequirements
}

func (k keywardContainer) container(name string, args []string) corev1.Container {
	return corev1.Container{
		Name:            name,
		Image:           k.m.opts.Image,
		ImagePullPolicy: k.m.opts.PullPolicy,
		Args:            args,
		Resources:       *k.resources.DeepCopy(),
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                ptr(k.uid),
			RunAsGroup:               ptr(k.gid),
			RunAsNonRoot:             ptr(true),
			ReadOnlyRootFilesystem:   ptr(true),
			AllowPrivilegeEscalation: ptr(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: VolumeSecrets, MountPath: k.secretsPath},
			{Name: VolumeConfig, MountPath: ConfigDir, ReadOnly: true},
			{Name: VolumeToken, MountPath: TokenDir, ReadOnly: true},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}

// tokenVolume is the pod's service-account token for keyward's own
// containers (the Kubernetes provider, Vault's kubernetes auth): the
// injected containers are added after the API server's ServiceAccount
// admission, which therefore never mounts a token into them, and a
// ServiceAccount with automountServiceAccountToken: false gives the app
// containers none either.
func tokenVolume() corev1.Volume {
	return corev1.Volume{Name: VolumeToken, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr(int64(3600))}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}, Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		},
	}}}
}

func ptr[T any](v T) *T { return &v }

func intstrPort(p int) intstr.IntOrString { return intstr.FromInt32(int32(p)) }

// ImageFor is the image of keyward's containers that goes with a keyward
// binary of version v: the release's own image, "keyward:" + v, for a
// release or pre-release ("v1.2.3", "v1.3.0-rc.1"), else DefaultImage (a
// development build or a Go pseudo-version has no published image). The
// chart's default, "keyward:" + its appVersion, names the same image.
func ImageFor(v string) string {
	if !semver.IsValid(v) || semver.Build(v) != "" || module.IsPseudoVersion(v) {
		return DefaultImage
	}
	return "keyward:" + v
}
