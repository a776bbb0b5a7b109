//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keyward/keyward/internal/csiprovider"
	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers"
	"github.com/keyward/keyward/providers/aws" // the awssm provider kind, for config.Parse
)

// testCSIAWS: examples/kubernetes/csi/aws.yaml on the real driver, with
// moto (its IAM checks on) in place of AWS, behind a gateway doing the
// token and trust checks of AssumeRoleWithWebIdentity that moto lacks
// (testenv.WebIdentitySTS, verifying tokens with the node's API server).
// keyward exchanges the pod's own token (audience sts.amazonaws.com, the
// CSIDriver's tokenRequests) for the role its ServiceAccount's annotation
// names, read by the chart's pod with its own ServiceAccount; a new
// version of the secret reaches the pod's file through the driver's
// rotation; a pod whose ServiceAccount names no role never starts; no
// value, token or key is in any log.
func testCSIAWS(t *testing.T) {
	ctx := context.Background()
	stack := startCSI(t)
	m, err := testenv.StartMotoIAM(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	review, err := csiprovider.TokenReviewer(node.Kube.API.URL, node.Kube.CAData, func() (string, error) { return node.Kube.AdminToken, nil })
	if err != nil {
		t.Fatal(err)
	}
	gw := testenv.StartWebIdentitySTS(m, aws.DefaultWebIdentityAudience, review)
	t.Cleanup(gw.Close)
	role, err := m.CreateRole(ctx, "payments-app", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["secretsmanager:GetSecretValue","secretsmanager:BatchGetSecretValue","secretsmanager:DescribeSecret"],"Resource":"*"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	gw.Trust(role, "system:serviceaccount:"+exampleNS+":payments-app")

	const region = "eu-west-1" // the example's
	sm := secretsmanager.New(secretsmanager.Options{Region: region, BaseEndpoint: awssdk.String(m.Endpoint),
		Credentials: credentials.StaticCredentialsProvider{Value: m.Admin}})
	secrets := map[string]map[string]string{"payments/db": {"password": randomValue(t)}, "payments/api": {"key": randomValue(t)}}
	put := func(name string, create bool) {
		b, _ := json.Marshal(secrets[name])
		if create {
			_, err = sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: awssdk.String(name), SecretString: awssdk.String(string(b))})
		} else {
			_, err = sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: awssdk.String(name), SecretString: awssdk.String(string(b))})
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	put("payments/db", true)
	put("payments/api", true)

	// keyward csi-provider runs in a pod: it reaches the gateway at the
	// node's address.
	gwAddr := "http://" + forward(t, strings.TrimPrefix(gw.URL, "http://"))
	const exampleRegion = "    region: " + region + "\n"
	var spc string
	applyCSIExample(t, "aws.yaml", func(o *unstructured.Unstructured) {
		switch o.GetKind() {
		case "ServiceAccount":
			// moto's account in place of the example's.
			ann := o.GetAnnotations()
			if ann[aws.RoleARNAnnotation] == "" {
				t.Fatalf("csi/aws.yaml: the ServiceAccount has no %s annotation", aws.RoleARNAnnotation)
			}
			ann[aws.RoleARNAnnotation] = role
			o.SetAnnotations(ann)
		case "SecretProviderClass":
			c, _, _ := unstructured.NestedString(o.Object, "spec", "parameters", "config")
			if !strings.Contains(c, exampleRegion) {
				t.Fatalf("csi/aws.yaml: the SecretProviderClass's config has no %q to add endpoints after", exampleRegion)
			}
			c = strings.Replace(c, exampleRegion, exampleRegion+"    endpoint: "+gwAddr+"\n    sts_endpoint: "+gwAddr+"\n", 1)
			if err := unstructured.SetNestedField(o.Object, c, "spec", "parameters", "config"); err != nil {
				t.Fatal(err)
			}
			spc = c
		}
	})
	if spc == "" {
		t.Fatal("csi/aws.yaml: no SecretProviderClass")
	}
	_, pod := csiExample(t, "aws.yaml", "payments-csi-aws")
	mount := csiVolumeMount(t, pod)
	values := map[string]string{}
	want := func() map[string]string {
		return expectedFiles(t, spc, mount, func(ref providers.Ref) string {
			v := secrets[ref.Path][ref.Field]
			values[fmt.Sprintf("%s#%s (%d)", ref.Path, ref.Field, len(values))] = v
			return v
		})
	}
	lat := csiMountAndRotate(t, pod, want, func() {
		secrets["payments/db"]["password"] = randomValue(t)
		put("payments/db", false)
	})
	t.Logf("Secrets Manager update → app file through the driver's rotation: %v", lat.Round(time.Millisecond))
	assumed := gw.Assumed()
	if len(assumed) == 0 || assumed[0] != role+"<-system:serviceaccount:"+exampleNS+":payments-app" {
		t.Errorf("roles assumed %v, want %s with payments-app's own token", assumed, role)
	}
	if gw.ExchangeSigned() {
		t.Error("AssumeRoleWithWebIdentity came signed: keyward used credentials of its own")
	}
	keys := gw.IssuedFor(role)
	reads := 0
	for _, k := range keys {
		reads += len(gw.SignedBy(k))
	}
	if reads == 0 {
		t.Error("no Secrets Manager request was signed with the role's assumed credentials")
	}
	if n := len(gw.SignedBy(m.Admin.AccessKeyID)); n > 0 {
		t.Errorf("%d requests were signed with moto's administrator key", n)
	}
	t.Logf("%d role assumptions for the pod and the driver's remounts, %d Secrets Manager reads with their keys", len(assumed), reads)

	_, denied := csiExample(t, "aws.yaml", "payments-csi-aws-denied")
	msg := csiDenied(t, denied, "payments-csi-denied")
	t.Logf("a pod whose ServiceAccount names no IAM role: %s", msg)
	if !strings.Contains(msg, aws.RoleARNAnnotation) {
		t.Errorf("FailedMount event %q: want the missing %s annotation named", msg, aws.RoleARNAnnotation)
	}
	tokens, keys := gw.Tokens(), gw.SecretKeys()
	recorded(t, "web identity token", len(tokens))
	recorded(t, "assumed role's secret key", len(keys))
	for i, tok := range tokens {
		values[fmt.Sprintf("web identity token %d", i)] = tok
	}
	for i, k := range keys {
		values[fmt.Sprintf("assumed role's secret key %d", i)] = k
	}
	stack.checkNoLeak(t, exampleNS, values)
}
