package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fakeConfigMaps serves ConfigMaps from a map "namespace/name" -> data.
type fakeConfigMaps struct {
	data map[string]map[string]string
	err  error
}

var _ ConfigMaps = fakeConfigMaps{}

func (f fakeConfigMaps) ConfigMapData(_ context.Context, namespace, name string) (map[string]string, error) {
	if f.err != nil {
		return nil, f.err
	}
	d, ok := f.data[namespace+"/"+name]
	if !ok {
		return nil, fmt.Errorf("configmap %s/%s: %w", namespace, name, ErrConfigMapNotFound)
	}
	return d, nil
}

const (
	filesConfig = `version: 1
secrets:
  DB_PASSWORD: k8s://app/db#password
files:
  - path: /run/secrets/keyward/db-password
    secret: DB_PASSWORD
    mode: "0400"
`
	agentConfig = filesConfig + `server:
  listen: "0.0.0.0:8099"
  allow_remote: true
`
	loopbackAgentConfig = filesConfig + `server:
  listen: "127.0.0.1:8099"
`
	outsideConfig = `version: 1
secrets:
  DB_PASSWORD: k8s://app/db#password
files:
  - path: /etc/app/db-password
    secret: DB_PASSWORD
`
	customPathConfig = `version: 1
secrets:
  DB_PASSWORD: k8s://app/db#password
files:
  - path: /var/run/app-secrets/db-password
    secret: DB_PASSWORD
`
)

func testConfigMaps() fakeConfigMaps {
	return fakeConfigMaps{data: map[string]map[string]string{
		"app/kw":       {ConfigKey: filesConfig},
		"app/agent":    {ConfigKey: agentConfig},
		"app/loopback": {ConfigKey: loopbackAgentConfig},
		"app/outside":  {ConfigKey: outsideConfig},
		"app/custom":   {ConfigKey: customPathConfig},
		"app/nokey":    {"other.yaml": filesConfig},
		"app/invalid":  {ConfigKey: "version: 1\nsecrets:\n  X: nosuchscheme\nbogus: 1\n"},
		"app/owned":    {ConfigKey: filesConfig + "    owner: 1000\n    group: 2000\n"},
		"app/owner":    {ConfigKey: filesConfig + "    owner: 1234\n"},
		"app/group":    {ConfigKey: filesConfig + "    group: 77\n"},
	}}
}

// testPod is an app pod with the given annotations, running as uid 1000.
func testPod(annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Annotations: annotations},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "migrate", Image: "app:1", Command: []string{"/migrate"}}},
			Containers: []corev1.Container{{
				Name: "app", Image: "app:1", Command: []string{"/app", "serve"}, Args: []string{"--port=80"},
				SecurityContext: &corev1.SecurityContext{RunAsUser: ptr(int64(1000)), RunAsGroup: ptr(int64(2000))},
				VolumeMounts:    []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
			}},
			Volumes: []corev1.Volume{{Name: "data"}},
		},
	}
}

// applyPatch applies m's patch (only "add" ops of /metadata/* or /spec/*
// members, which is all Mutate emits) to pod and returns the result.
func applyPatch(t *testing.T, pod *corev1.Pod, patch []byte) *corev1.Pod {
	t.Helper()
	var ops []struct {
		Op    string          `json:"op"`
		Path  string          `json:"path"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(patch, &ops); err != nil {
		t.Fatalf("patch is not JSON Patch: %v", err)
	}
	raw, _ := json.Marshal(pod)
	var obj map[string]map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		parts := strings.Split(op.Path, "/")
		if op.Op != "add" || len(parts) != 3 || parts[0] != "" {
			t.Fatalf("unexpected patch op %s %s", op.Op, op.Path)
		}
		if obj[parts[1]] == nil {
			obj[parts[1]] = map[string]json.RawMessage{}
		}
		obj[parts[1]][parts[2]] = op.Value
	}
	raw, _ = json.Marshal(obj)
	out := &corev1.Pod{}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func findMount(c *corev1.Container, volume string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].Name == volume {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func inject(extra map[string]string) map[string]string {
	a := map[string]string{AnnotationInject: "true", AnnotationConfig: "kw"}
	for k, v := range extra {
		if v == "" {
			delete(a, k)
			continue
		}
		a[k] = v
	}
	return a
}

// checkKeywardContainer checks the hardening every injected container has.
func checkKeywardContainer(t *testing.T, c *corev1.Container, wantUID, wantGID int64, secretsPath string) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || *sc.RunAsUser != wantUID || *sc.RunAsGroup != wantGID {
		t.Errorf("%s: securityContext %+v, want non-root uid %d gid %d", c.Name, sc, wantUID, wantGID)
		return
	}
	if !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0 {
		t.Errorf("%s: securityContext not hardened: %+v", c.Name, sc)
	}
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
		t.Errorf("%s: no requests/limits: %+v", c.Name, c.Resources)
	}
	if c.Name == ContainerInstall {
		return
	}
	if m := findMount(c, VolumeSecrets); m == nil || m.ReadOnly || m.MountPath != secretsPath {
		t.Errorf("%s: secrets mount %+v, want read-write at %s", c.Name, m, secretsPath)
	}
	if m := findMount(c, VolumeConfig); m == nil || !m.ReadOnly || m.MountPath != ConfigDir {
		t.Errorf("%s: config mount %+v, want read-only at %s", c.Name, m, ConfigDir)
	}
	if m := findMount(c, VolumeToken); m == nil || !m.ReadOnly || m.MountPath != TokenDir {
		t.Errorf("%s: token mount %+v, want read-only at %s", c.Name, m, TokenDir)
	}
}

func TestMutateLeavesAlone(t *testing.T) {
	t.Parallel()
	m := NewMutator(Options{Namespace: "keyward"}, testConfigMaps())
	injected := testPod(inject(nil))
	patch, err := m.Mutate(context.Background(), "app", injected)
	if err != nil {
		t.Fatal(err)
	}
	injected = applyPatch(t, injected, patch)
	tests := []struct {
		name string
		ns   string
		pod  *corev1.Pod
	}{
		{"no annotations", "app", testPod(nil)},
		{"inject false", "app", testPod(map[string]string{AnnotationInject: "false", AnnotationConfig: "kw"})},
		{"own namespace", "keyward", testPod(inject(nil))},
		{"own namespace with broken annotations", "keyward", testPod(inject(map[string]string{AnnotationMode: "bogus"}))},
		{"injected already (second admission)", "app", injected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			patch, err := m.Mutate(context.Background(), tt.ns, tt.pod)
			if err != nil || patch != nil {
				t.Fatalf("Mutate = %s, %v; want no patch, no error", patch, err)
			}
		})
	}
}

func TestMutateDenies(t *testing.T) {
	t.Parallel()
	noCommand := testPod(inject(map[string]string{AnnotationMode: "exec"}))
	noCommand.Spec.Containers = append(noCommand.Spec.Containers, corev1.Container{Name: "worker", Image: "worker:1"})
	reserved := testPod(inject(nil))
	reserved.Spec.Volumes = append(reserved.Spec.Volumes, corev1.Volume{Name: VolumeSecrets})
	reservedC := testPod(inject(nil))
	reservedC.Spec.Containers[0].Name = ContainerAgent
	tests := []struct {
		name string
		pod  *corev1.Pod
		want []string // substrings of the denial
	}{
		{"inject not a bool", testPod(inject(map[string]string{AnnotationInject: "yes"})), []string{AnnotationInject, `"yes"`}},
		{"agent not a bool", testPod(inject(map[string]string{AnnotationAgent: "1"})), []string{AnnotationAgent, `"1"`}},
		{"unknown mode", testPod(inject(map[string]string{AnnotationMode: "env"})), []string{AnnotationMode, `"env"`, `"files" or "exec"`}},
		{"exec and agent", testPod(inject(map[string]string{AnnotationMode: "exec", AnnotationAgent: "true", AnnotationConfig: "agent"})), []string{"remove " + AnnotationAgent}},
		{"no config annotation", testPod(inject(map[string]string{AnnotationConfig: ""})), []string{AnnotationConfig + " is missing", "namespace app"}},
		{"configmap missing", testPod(inject(map[string]string{AnnotationConfig: "nope"})), []string{"ConfigMap app/nope does not exist", ConfigKey}},
		{"configmap without key", testPod(inject(map[string]string{AnnotationConfig: "nokey"})), []string{"app/nokey has no key " + ConfigKey}},
		{"invalid config", testPod(inject(map[string]string{AnnotationConfig: "invalid"})), []string{"app/invalid", "bogus"}},
		{"file outside the volume", testPod(inject(map[string]string{AnnotationConfig: "outside"})), []string{"/etc/app/db-password", "outside the secrets volume " + DefaultSecretsPath}},
		{"agent without server", testPod(inject(map[string]string{AnnotationAgent: "true"})), []string{"needs a TCP server", `listen: "0.0.0.0:8099"`}},
		{"agent on loopback", testPod(inject(map[string]string{AnnotationAgent: "true", AnnotationConfig: "loopback"})), []string{"loopback", "kubelet"}},
		{"exec without command", noCommand, []string{"command", "container(s) worker", "not looked up"}},
		{"relative secrets path", testPod(inject(map[string]string{AnnotationSecretsPath: "secrets"})), []string{AnnotationSecretsPath}},
		{"reserved volume name", reserved, []string{"volume named " + VolumeSecrets}},
		{"reserved container name", reservedC, []string{"container named " + ContainerAgent}},
	}
	m := NewMutator(Options{Namespace: "keyward"}, testConfigMaps())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			patch, err := m.Mutate(context.Background(), "app", tt.pod)
			var d *Denial
			if !errors.As(err, &d) || patch != nil {
				t.Fatalf("Mutate = %s, %v; want a *Denial", patch, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(d.Msg, w) {
					t.Errorf("denial %q does not contain %q", d.Msg, w)
				}
			}
		})
	}
}

func TestMutateLookupError(t *testing.T) {
	t.Parallel()
	boom := errors.New("connection refused")
	m := NewMutator(Options{}, fakeConfigMaps{err: boom})
	_, err := m.Mutate(context.Background(), "app", testPod(inject(nil)))
	var d *Denial
	if !errors.Is(err, boom) || errors.As(err, &d) {
		t.Fatalf("err = %v, want the lookup error, not a denial", err)
	}
}

func TestMutateInjects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		opts        Options
		annotations map[string]string
		edit        func(*corev1.Pod)
		check       func(t *testing.T, orig, got *corev1.Pod)
	}{
		{
			name: "files mode",
			check: func(t *testing.T, orig, got *corev1.Pod) {
				if len(got.Spec.InitContainers) != 2 || got.Spec.InitContainers[0].Name != ContainerInit || got.Spec.InitContainers[1].Name != "migrate" {
					t.Fatalf("init containers %v, want keyward-init then the app's", names(got.Spec.InitContainers))
				}
				init := &got.Spec.InitContainers[0]
				if want := []string{"render", "--once", "-c", ConfigPath, "--file-group=65532"}; strings.Join(init.Args, " ") != strings.Join(want, " ") || init.Command != nil {
					t.Errorf("init args %q command %q, want %q", init.Args, init.Command, want)
				}
				if init.Image != DefaultImage || init.RestartPolicy != nil {
					t.Errorf("init image %q restartPolicy %v", init.Image, init.RestartPolicy)
				}
				checkKeywardContainer(t, init, 1000, 2000, DefaultSecretsPath)
				for _, c := range []*corev1.Container{&got.Spec.Containers[0], &got.Spec.InitContainers[1]} {
					if m := findMount(c, VolumeSecrets); m == nil || !m.ReadOnly || m.MountPath != DefaultSecretsPath {
						t.Errorf("%s: secrets mount %+v, want read-only at %s", c.Name, m, DefaultSecretsPath)
					}
					if findMount(c, VolumeConfig) != nil {
						t.Errorf("%s: mounts keyward's config", c.Name)
					}
				}
				app := got.Spec.Containers[0]
				if strings.Join(app.Command, " ") != "/app serve" || findMount(&app, "data") == nil {
					t.Errorf("app container changed beyond the mount: %+v", app)
				}
				var secrets, cfg *corev1.Volume
				for i := range got.Spec.Volumes {
					switch got.Spec.Volumes[i].Name {
					case VolumeSecrets:
						secrets = &got.Spec.Volumes[i]
					case VolumeConfig:
						cfg = &got.Spec.Volumes[i]
					}
				}
				if secrets == nil || secrets.EmptyDir == nil || secrets.EmptyDir.Medium != corev1.StorageMediumMemory {
					t.Errorf("secrets volume %+v, want an in-memory emptyDir", secrets)
				}
				if cfg == nil || cfg.ConfigMap == nil || cfg.ConfigMap.Name != "kw" {
					t.Errorf("config volume %+v, want ConfigMap kw", cfg)
				}
				if len(got.Spec.Volumes) != 4 {
					t.Errorf("volumes %d, want 4 (data, secrets, config, token)", len(got.Spec.Volumes))
				}
				if got.Annotations[AnnotationStatus] != "injected" || got.Annotations[AnnotationConfig] != "kw" {
					t.Errorf("annotations %v", got.Annotations)
				}
				if len(orig.Spec.Containers[0].VolumeMounts) != 1 {
					t.Errorf("Mutate modified its input pod")
				}
			},
		},
		{
			name:        "agent sidecar",
			annotations: map[string]string{AnnotationAgent: "true", AnnotationConfig: "agent"},
			opts:        Options{Image: "registry.example/keyward:v1", PullPolicy: corev1.PullAlways},
			check: func(t *testing.T, _, got *corev1.Pod) {
				if n := names(got.Spec.InitContainers); strings.Join(n, ",") != "keyward-init,keyward-agent,migrate" {
					t.Fatalf("init containers %v", n)
				}
				sc := &got.Spec.InitContainers[1]
				if sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways {
					t.Errorf("sidecar restartPolicy %v, want Always (a native sidecar)", sc.RestartPolicy)
				}
				if strings.Join(sc.Args, " ") != "agent -c "+ConfigPath+" --file-group=65532" {
					t.Errorf("sidecar args %q", sc.Args)
				}
				p := sc.StartupProbe
				if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.IntValue() != 8099 {
					t.Errorf("startupProbe %+v, want GET /readyz on 8099", p)
				}
				if sc.Image != "registry.example/keyward:v1" || sc.ImagePullPolicy != corev1.PullAlways {
					t.Errorf("image %q %q", sc.Image, sc.ImagePullPolicy)
				}
				checkKeywardContainer(t, sc, 1000, 2000, DefaultSecretsPath)
			},
		},
		{
			name:        "exec mode",
			annotations: map[string]string{AnnotationMode: "exec"},
			check: func(t *testing.T, _, got *corev1.Pod) {
				if n := names(got.Spec.InitContainers); strings.Join(n, ",") != "keyward-install,migrate" {
					t.Fatalf("init containers %v", n)
				}
				install := &got.Spec.InitContainers[0]
				if strings.Join(install.Args, " ") != "webhook install-binary "+BinDir+"/keyward" {
					t.Errorf("install args %q", install.Args)
				}
				if m := findMount(install, VolumeBin); m == nil || m.ReadOnly {
					t.Errorf("install mount %+v", m)
				}
				checkKeywardContainer(t, install, 1000, 2000, DefaultSecretsPath)
				app := &got.Spec.Containers[0]
				want := BinDir + "/keyward exec -c " + ConfigPath + " -- /app serve"
				if strings.Join(app.Command, " ") != want || strings.Join(app.Args, " ") != "--port=80" {
					t.Errorf("app command %q args %q, want %q and the args unchanged", app.Command, app.Args, want)
				}
				if got.Spec.SecurityContext != nil {
					t.Errorf("exec mode changed the pod's securityContext: %+v (keyward exec writes the files as the app's own user)", got.Spec.SecurityContext)
				}
				for vol, ro := range map[string]bool{VolumeBin: true, VolumeConfig: true, VolumeSecrets: false, VolumeToken: true} {
					if m := findMount(app, vol); m == nil || m.ReadOnly != ro {
						t.Errorf("app mount of %s: %+v, want readOnly=%v", vol, m, ro)
					}
				}
			},
		},
		{
			name:        "secrets path from the annotation, identity from the pod",
			annotations: map[string]string{AnnotationSecretsPath: "/var/run/app-secrets", AnnotationConfig: "custom"},
			edit: func(p *corev1.Pod) {
				p.Spec.Containers[0].SecurityContext = nil
				p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr(int64(4242))}
			},
			check: func(t *testing.T, _, got *corev1.Pod) {
				checkKeywardContainer(t, &got.Spec.InitContainers[0], 4242, 4242, "/var/run/app-secrets")
				if m := findMount(&got.Spec.Containers[0], VolumeSecrets); m == nil || m.MountPath != "/var/run/app-secrets" {
					t.Errorf("app mount %+v", m)
				}
			},
		},
		{
			name:        "root app: keyward still runs as non-root",
			opts:        Options{SecretsPath: "/run/secrets/keyward"},
			annotations: map[string]string{},
			edit:        func(p *corev1.Pod) { p.Spec.Containers[0].SecurityContext.RunAsUser = ptr(int64(0)) },
			check: func(t *testing.T, _, got *corev1.Pod) {
				checkKeywardContainer(t, &got.Spec.InitContainers[0], DefaultUID, 2000, DefaultSecretsPath)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := NewMutator(tt.opts, testConfigMaps())
			pod := testPod(inject(tt.annotations))
			if tt.edit != nil {
				tt.edit(pod)
			}
			patch, err := m.Mutate(context.Background(), "app", pod)
			if err != nil || patch == nil {
				t.Fatalf("Mutate = %s, %v; want a patch", patch, err)
			}
			got := applyPatch(t, pod, patch)
			tt.check(t, pod, got)
			// Idempotent: the injected pod is not injected again.
			if again, err := m.Mutate(context.Background(), "app", got); err != nil || again != nil {
				t.Errorf("second Mutate = %s, %v; want no patch", again, err)
			}
		})
	}
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func TestImageFor(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]string{
		"v1.2.3":                               "keyward:v1.2.3",
		"v1.3.0-rc.1":                          "keyward:v1.3.0-rc.1",
		"dev":                                  DefaultImage,
		"":                                     DefaultImage,
		"v0.0.0-20261201120000-abcdefabcdef":   DefaultImage,
		"v1.2.4-0.20261201120000-abcdefabcdef": DefaultImage,
		"v1.2.3+dirty":                         DefaultImage,
	} {
		if got := ImageFor(v); got != want {
			t.Errorf("ImageFor(%q) = %q, want %q", v, got, want)
		}
	}
}

// TestMutateFileGroup checks how the app gets to read the files whatever
// user it runs as: keyward renders them for the pod's fsGroup, else for
// DefaultFileGroup, which the webhook adds to the pod's supplemental
// groups (so every container of the pod has it, whatever its image's
// USER), and the config's owner: and group: must be ones keyward can give.
func TestMutateFileGroup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, config string
		podSC        *corev1.PodSecurityContext
		noAppUser    bool
		wantGroup    string
		wantSupp     []int64 // the pod's supplementalGroups after the patch; nil: securityContext unchanged
		wantDenial   string
	}{
		{name: "no pod securityContext", config: "kw", wantGroup: "65532", wantSupp: []int64{DefaultFileGroup}},
		{name: "image user only", config: "kw", noAppUser: true, wantGroup: "65532", wantSupp: []int64{DefaultFileGroup}},
		{name: "supplemental groups kept", config: "kw", podSC: &corev1.PodSecurityContext{SupplementalGroups: []int64{4000}, RunAsNonRoot: ptr(true)}, wantGroup: "65532", wantSupp: []int64{4000, DefaultFileGroup}},
		{name: "group already there", config: "kw", podSC: &corev1.PodSecurityContext{SupplementalGroups: []int64{DefaultFileGroup}}, wantGroup: "65532"},
		{name: "fsGroup", config: "kw", podSC: &corev1.PodSecurityContext{FSGroup: ptr(int64(3000))}, wantGroup: "3000"},
		{name: "owner and group keyward runs as", config: "owned", wantGroup: "65532", wantSupp: []int64{DefaultFileGroup}},
		{name: "owner keyward cannot give", config: "owner", wantDenial: "file /run/secrets/keyward/db-password: owner: 1234 cannot be applied: keyward's containers run as uid 1000"},
		{name: "owner without a runAsUser", config: "owned", noAppUser: true, wantDenial: "owner: 1000 cannot be applied: keyward's containers run as uid 65532"},
		{name: "group keyward is not in", config: "group", wantDenial: "group: 77 cannot be applied: keyward's containers are not in group 77 (they have 2000, 65532)"},
		{name: "group from the pod", config: "group", podSC: &corev1.PodSecurityContext{SupplementalGroups: []int64{77}}, wantGroup: "65532", wantSupp: []int64{77, DefaultFileGroup}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := NewMutator(Options{}, testConfigMaps())
			pod := testPod(inject(map[string]string{AnnotationConfig: tt.config}))
			pod.Spec.SecurityContext = tt.podSC
			if tt.noAppUser {
				pod.Spec.Containers[0].SecurityContext = nil
			}
			patch, err := m.Mutate(context.Background(), "app", pod)
			if tt.wantDenial != "" {
				var d *Denial
				if !errors.As(err, &d) || !strings.Contains(d.Msg, tt.wantDenial) {
					t.Fatalf("Mutate = %v, want a denial containing %q", err, tt.wantDenial)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := applyPatch(t, pod, patch)
			for _, c := range got.Spec.InitContainers[:1] {
				if want := "--file-group=" + tt.wantGroup; c.Args[len(c.Args)-1] != want {
					t.Errorf("%s args %q, want %s last", c.Name, c.Args, want)
				}
			}
			if tt.wantSupp == nil {
				want, _ := json.Marshal(tt.podSC)
				if b, _ := json.Marshal(got.Spec.SecurityContext); string(b) != string(want) {
					t.Errorf("securityContext changed to %+v", got.Spec.SecurityContext)
				}
				return
			}
			sc := got.Spec.SecurityContext
			if sc == nil || fmt.Sprint(sc.SupplementalGroups) != fmt.Sprint(tt.wantSupp) {
				t.Fatalf("securityContext %+v, want supplementalGroups %v", sc, tt.wantSupp)
			}
			if tt.podSC != nil && tt.podSC.RunAsNonRoot != nil && (sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot) {
				t.Errorf("securityContext lost runAsNonRoot: %+v", sc)
			}
			if tt.podSC != nil && len(tt.podSC.SupplementalGroups) != len(pod.Spec.SecurityContext.SupplementalGroups) {
				t.Errorf("Mutate modified its input pod's securityContext")
			}
		})
	}
}
