//go:build integration

package csiprovider

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers/aws"
)

// metadataTrap is a listener standing in for the instance metadata
// service: any connection to it fails the test.
func metadataTrap(t *testing.T) string {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "no", http.StatusForbidden)
	}))
	t.Cleanup(func() {
		srv.Close()
		if n := hits.Load(); n > 0 {
			t.Errorf("the instance metadata address was asked %d times: a credential lookup of keyward's own", n)
		}
	})
	return srv.URL
}

// TestIntegrationAWSPerPodIdentity mounts an AWS Secrets Manager secret
// for two pods whose ServiceAccounts are annotated with different IAM
// roles (eks.amazonaws.com/role-arn): each pod's own ServiceAccount
// token (audience sts.amazonaws.com) is exchanged with STS
// AssumeRoleWithWebIdentity for its role's credentials, and moto, with
// its IAM checks on, lets the role allowed to read the secret read it
// and refuses the other. The process's environment holds moto's
// administrator keys all along: they are never used for a pod (unless
// --node-identity-kinds names awssm), nor is a metadata address asked.
//
// moto checks IAM per action only (its Secrets Manager checks every
// action against the resource "*"), so the roles differ in what they may
// do, not in which secret: that each pod gets only its own secret by
// resource is the real IAM's part, which moto cannot show.
func TestIntegrationAWSPerPodIdentity(t *testing.T) {
	const ns = "csi-aws"
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	m, err := testenv.StartMotoIAM(ctx)
	if err != nil {
		t.Fatalf("starting moto: %v", err)
	}
	t.Cleanup(m.Stop)
	admin := m.Admin
	roles := map[string]string{}
	policies := map[string]string{
		"alice": `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["secretsmanager:GetSecretValue","secretsmanager:BatchGetSecretValue","secretsmanager:DescribeSecret"],"Resource":"*"}]}`,
		"bob":   `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}`,
	}
	adminToken := func() (string, error) { return cluster.AdminToken, nil }
	review, err := TokenReviewer(cluster.API.URL, cluster.CAData, adminToken)
	if err != nil {
		t.Fatal(err)
	}
	gw := testenv.StartWebIdentitySTS(m, aws.DefaultWebIdentityAudience, review)
	t.Cleanup(gw.Close)
	for _, who := range []string{"alice", "bob"} {
		if roles[who], err = m.CreateRole(ctx, "csi-"+who, policies[who]); err != nil {
			t.Fatal(err)
		}
		gw.Trust(roles[who], "system:serviceaccount:"+ns+":"+who)
		apply(t,
			`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"`+ns+`"}}`,
			`{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"`+who+`","namespace":"`+ns+`","annotations":{"`+aws.RoleARNAnnotation+`":"`+roles[who]+`"}}}`,
		)
	}
	const value = "db-pw-5f0e91"
	sm := secretsmanager.New(secretsmanager.Options{Region: testenv.MotoRegion, BaseEndpoint: awssdk.String(m.Endpoint),
		Credentials: credentials.StaticCredentialsProvider{Value: admin}})
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: awssdk.String("app-db"), SecretString: awssdk.String(value)}); err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}

	// The node's own credentials: moto's administrator, who may read
	// everything, in this process's environment, and a metadata address
	// that must never be asked.
	t.Setenv("AWS_ACCESS_KEY_ID", admin.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", admin.SecretAccessKey)
	t.Setenv("AWS_REGION", testenv.MotoRegion)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadataTrap(t))
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")

	annotations, err := ServiceAccountAnnotations(cluster.API.URL, cluster.CAData, adminToken)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testenv.LogBuffer{}
	// No value cache: every mount reads Secrets Manager, with the
	// credentials its identity's pooled provider keeps.
	opts := Options{Logger: logs.Logger(), APIServer: cluster.API.URL, APIServerCA: cluster.CAData, Reviewer: review, Annotations: annotations, CacheTTL: -1}
	c := serve(t, opts)
	tokens := map[string]string{}
	config := func(extra string) string {
		return "version: 1\nproviders:\n  awssm:\n    kind: awssm\n    region: " + testenv.MotoRegion + "\n    endpoint: " + gw.URL + "\n    sts_endpoint: " + gw.URL + "\n" + extra +
			"secrets:\n  DB: awssm://app-db\nfiles:\n  - path: db\n    secret: DB\n"
	}
	mount := func(c v1alpha1.CSIDriverProviderClient, who, cfg string) (*v1alpha1.MountResponse, error) {
		if tokens[who] == "" {
			tokens[who] = saToken(t, ns, who, aws.DefaultWebIdentityAudience)
		}
		b, _ := json.Marshal(map[string]Token{aws.DefaultWebIdentityAudience: {Token: tokens[who], ExpirationTimestamp: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}})
		attrs := attributes(t, cfg, map[string]string{PodNameKey: who + "-0", PodNamespaceKey: ns, ServiceAccountKey: who, ServiceAccountTokens: string(b)})
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		return c.Mount(ctx, &v1alpha1.MountRequest{Attributes: attrs, Permission: "420"})
	}

	const aliceMounts = 3
	var resp *v1alpha1.MountResponse
	for range aliceMounts {
		resp, err = mount(c, "alice", config(""))
		if err != nil {
			t.Fatalf("alice mounting the secret her role may read: %v", err)
		}
		if len(resp.Files) != 1 || string(resp.Files[0].Contents) != value {
			t.Error("alice: the mounted file is not the secret")
		}
	}
	var refusals []string
	_, err = mount(c, "bob", config(""))
	if st, _ := status.FromError(err); st.Code() != codes.PermissionDenied {
		t.Errorf("bob mounting the secret his role may not read: %v (%s), want PermissionDenied", st.Code(), st.Message())
	} else {
		refusals = append(refusals, st.Message())
	}
	// Naming another pod's role does not make it the pod's: the role
	// trusts alice's ServiceAccount, and bob's token is presented.
	_, err = mount(c, "bob", config("    role_arn: "+roles["alice"]+"\n"))
	if st, _ := status.FromError(err); st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), "AssumeRoleWithWebIdentity") {
		t.Errorf("bob mounting with alice's role_arn: %v (%s), want PermissionDenied by AssumeRoleWithWebIdentity", st.Code(), st.Message())
	} else {
		refusals = append(refusals, st.Message())
	}
	for _, msg := range refusals {
		for who, tok := range tokens {
			if strings.Contains(msg, tok) {
				t.Errorf("leaked value of %s's ServiceAccount token in a mount's error", who)
			}
		}
		if strings.Contains(msg, admin.SecretAccessKey) {
			t.Error("leaked value of the node's secret key in a mount's error")
		}
	}

	aliceKeys, bobKeys := gw.IssuedFor(roles["alice"]), gw.IssuedFor(roles["bob"])
	wantAssumed := []string{roles["alice"] + "<-system:serviceaccount:" + ns + ":alice", roles["bob"] + "<-system:serviceaccount:" + ns + ":bob"}
	if fmt.Sprint(gw.Assumed()) != fmt.Sprint(wantAssumed) {
		t.Errorf("roles assumed %v, want %v (each pod's role with its own token, once)", gw.Assumed(), wantAssumed)
	}
	if gw.ExchangeSigned() {
		t.Error("AssumeRoleWithWebIdentity was signed (with credentials of keyward's own?)")
	}
	if len(aliceKeys) != 1 || len(bobKeys) != 1 {
		t.Fatalf("moto issued %d keys for alice's role and %d for bob's, want 1 each", len(aliceKeys), len(bobKeys))
	}
	// alice's mounts each read Secrets Manager, all with the one key her
	// role was assumed for.
	t.Logf("alice: %d mounts, 1 role assumption, Secrets Manager requests signed with her key: %v", aliceMounts, gw.SignedBy(aliceKeys[0]))
	if reads := gw.SignedBy(aliceKeys[0]); len(reads) < aliceMounts {
		t.Errorf("%d Secrets Manager requests signed with alice's assumed-role key for %d mounts", len(reads), aliceMounts)
	}
	if reads := gw.SignedBy(bobKeys[0]); len(reads) == 0 {
		t.Error("no Secrets Manager request was signed with bob's assumed-role key")
	}
	if reads := gw.SignedBy(admin.AccessKeyID); len(reads) > 0 {
		t.Errorf("%d requests %v were signed with the node's own key", len(reads), reads)
	}
	for _, tok := range gw.Tokens() {
		if tok != tokens["alice"] && tok != tokens["bob"] {
			t.Error("STS received a token that is neither pod's")
		}
	}
	if len(gw.SecretKeys()) != 2 {
		t.Errorf("%d secret keys seen in STS's answers, want 2", len(gw.SecretKeys()))
	}
	for _, k := range gw.SecretKeys() {
		if strings.Contains(logs.String(), k) || slices.ContainsFunc(refusals, func(msg string) bool { return strings.Contains(msg, k) }) {
			t.Error("leaked value of an assumed role's secret key in the provider's log or a mount's error")
		}
	}
	for who, tok := range tokens {
		if strings.Contains(logs.String(), tok) {
			t.Errorf("leaked value of %s's ServiceAccount token in the provider's log", who)
		}
	}
	if strings.Contains(logs.String(), value) {
		t.Error("leaked value of the secret in the provider's log")
	}

	// An operator who names awssm in --node-identity-kinds gives every
	// pod the node's identity: bob then reads with the administrator's
	// keys of the environment.
	nodeOpts := opts
	nodeOpts.NodeIdentityKinds = []string{"awssm"}
	nodeOpts.CacheTTL = -1
	resp, err = mount(serve(t, nodeOpts), "bob", config(""))
	if err != nil || len(resp.Files) != 1 || string(resp.Files[0].Contents) != value {
		t.Errorf("with --node-identity-kinds awssm, bob mounting with the node's keys: %v", err)
	}
	if len(gw.SignedBy(admin.AccessKeyID)) == 0 {
		t.Error("with --node-identity-kinds awssm, no request was signed with the node's key")
	}
	// The pod's identity plays no part then: a pod whose token the API
	// server does not accept mounts all the same, as every pod of the
	// node does.
	attrs := attributes(t, config(""), map[string]string{PodNameKey: "other-0", PodNamespaceKey: ns, ServiceAccountKey: "other",
		ServiceAccountTokens: `{"sts.amazonaws.com":{"token":"not-a-token","expirationTimestamp":""}}`})
	resp, err = serve(t, nodeOpts).Mount(ctx, &v1alpha1.MountRequest{Attributes: attrs, Permission: "420"})
	if err != nil || len(resp.Files) != 1 {
		t.Errorf("with --node-identity-kinds awssm, a pod with an invalid token: %v, want the node's identity to read", err)
	}
}
