package webhook

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	admregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// fakeKube is an in-memory kubeAPI with the API server's optimistic
// concurrency: an update of a stale object (resourceVersion) is a
// Conflict, a create of an existing one AlreadyExists. Safe for
// concurrent use.
type fakeKube struct {
	mu         sync.Mutex
	rv         int
	configMaps map[string]*corev1.ConfigMap
	cmGets     int
	secrets    map[string]*corev1.Secret
	mwc        *admregv1.MutatingWebhookConfiguration
	// err, when set, is returned by every Secret and webhook
	// configuration call (an API server outage).
	err error
	// beforeSecretWrite, when set, runs before a Secret write is
	// applied (another replica acting in between a read and a write).
	beforeSecretWrite func()
	// onRead, when set, runs (once: it is cleared first) after a Secret
	// or webhook configuration read took its copy, before it returns
	// (another replica acting between a read and what follows).
	onRead       func()
	secretWrites int
	mwcUpdates   int
	// history is every caBundle written, with the time it was written.
	history []bundleAt
}

type bundleAt struct {
	at     time.Time
	bundle []byte
}

var _ kubeAPI = (*fakeKube)(nil)

var (
	secretGR = schema.GroupResource{Resource: "secrets"}
	mwcGR    = schema.GroupResource{Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations"}
)

func newFakeKube() *fakeKube {
	return &fakeKube{
		secrets: map[string]*corev1.Secret{},
		mwc: &admregv1.MutatingWebhookConfiguration{Webhooks: []admregv1.MutatingWebhook{
			{Name: "a.keyward.io"}, {Name: "b.keyward.io"},
		}},
	}
}

func (f *fakeKube) nextRV() string { f.rv++; return strconv.Itoa(f.rv) }

func (f *fakeKube) getConfigMap(_ context.Context, ns, name string) (*corev1.ConfigMap, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmGets++
	if cm, ok := f.configMaps[ns+"/"+name]; ok {
		return cm.DeepCopy(), nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}

func (f *fakeKube) getSecret(_ context.Context, ns, name string) (*corev1.Secret, error) {
	defer f.readHook()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if s, ok := f.secrets[ns+"/"+name]; ok {
		return s.DeepCopy(), nil
	}
	return nil, apierrors.NewNotFound(secretGR, name)
}

func (f *fakeKube) readHook() {
	f.mu.Lock()
	h := f.onRead
	f.onRead = nil
	f.mu.Unlock()
	if h != nil {
		h()
	}
}

func (f *fakeKube) hook() {
	f.mu.Lock()
	h := f.beforeSecretWrite
	f.beforeSecretWrite = nil
	f.mu.Unlock()
	if h != nil {
		h()
	}
}

func (f *fakeKube) createSecret(_ context.Context, s *corev1.Secret) error {
	f.hook()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	key := s.Namespace + "/" + s.Name
	if _, ok := f.secrets[key]; ok {
		return apierrors.NewAlreadyExists(secretGR, s.Name)
	}
	s = s.DeepCopy()
	s.ResourceVersion = f.nextRV()
	f.secrets[key] = s
	f.secretWrites++
	return nil
}

func (f *fakeKube) updateSecret(_ context.Context, s *corev1.Secret) error {
	f.hook()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	key := s.Namespace + "/" + s.Name
	old, ok := f.secrets[key]
	if !ok {
		return apierrors.NewNotFound(secretGR, s.Name)
	}
	if old.ResourceVersion != s.ResourceVersion {
		return apierrors.NewConflict(secretGR, s.Name, errors.New("the object has been modified"))
	}
	s = s.DeepCopy()
	s.ResourceVersion = f.nextRV()
	f.secrets[key] = s
	f.secretWrites++
	return nil
}

func (f *fakeKube) getWebhookConfig(context.Context, string) (*admregv1.MutatingWebhookConfiguration, error) {
	defer f.readHook()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return f.mwc.DeepCopy(), nil
}

func (f *fakeKube) updateWebhookConfig(_ context.Context, c *admregv1.MutatingWebhookConfiguration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	if c.ResourceVersion != f.mwc.ResourceVersion {
		return apierrors.NewConflict(mwcGR, c.Name, errors.New("the object has been modified"))
	}
	f.mwcUpdates++
	f.history = append(f.history, bundleAt{time.Now(), c.Webhooks[0].ClientConfig.CABundle})
	f.mwc = c.DeepCopy()
	f.mwc.ResourceVersion = f.nextRV()
	return nil
}

// caBundle is the first webhook's caBundle, as the API server uses it.
func (f *fakeKube) caBundle() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mwc.Webhooks[0].ClientConfig.CABundle
}

// caBundleAsOf is the caBundle an API server that loads the webhook
// configuration lag late uses at now.
func (f *fakeKube) caBundleAsOf(now time.Time, lag time.Duration) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b []byte
	for _, h := range f.history {
		if h.at.After(now.Add(-lag)) {
			break
		}
		b = h.bundle
	}
	return b
}

func (f *fakeKube) secret(key string) *corev1.Secret {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.secrets[key].DeepCopy()
}

func TestConfigMapDataCache(t *testing.T) {
	t.Parallel()
	f := newFakeKube()
	now := time.Unix(1000, 0)
	k := &Kube{api: f, now: func() time.Time { return now }}
	ctx := context.Background()
	if _, err := k.ConfigMapData(ctx, "app", "kw"); !errors.Is(err, ErrConfigMapNotFound) {
		t.Fatalf("err = %v, want ErrConfigMapNotFound", err)
	}
	f.configMaps = map[string]*corev1.ConfigMap{"app/kw": {Data: map[string]string{ConfigKey: "v1"}}}
	steps := []struct {
		advance time.Duration
		set     string
		want    string
		gets    int
	}{
		{0, "", "v1", 2},                 // a miss is not cached
		{4 * time.Second, "v2", "v1", 2}, // within the TTL: cached
		{2 * time.Second, "", "v2", 3},   // expired: read again
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		if s.set != "" {
			f.configMaps["app/kw"].Data[ConfigKey] = s.set
		}
		d, err := k.ConfigMapData(ctx, "app", "kw")
		if err != nil || d[ConfigKey] != s.want || f.cmGets != s.gets {
			t.Errorf("step %d: %v %v, %d GETs; want %s, %d GETs", i, d, err, f.cmGets, s.want, s.gets)
		}
	}
}
