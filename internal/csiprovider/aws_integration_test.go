//go:build integration

package csiprovider

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/providers/aws"
)

const (
	motoAccount = "123456789012"
	motoRegion  = "us-east-1"
)

// motoCall signs params (a query-protocol action of service) with creds
// and posts them to moto, failing t unless moto answers 200.
func motoCall(t *testing.T, endpoint, service string, creds awssdk.Credentials, params url.Values) string {
	t.Helper()
	body := params.Encode()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, endpoint+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(body))
	if err := v4.NewSigner().SignHTTP(t.Context(), creds, req, hex.EncodeToString(sum[:]), service, motoRegion, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("moto %s %s: %s", service, params.Get("Action"), resp.Status)
	}
	return string(out)
}

var (
	accessKeyRe  = regexp.MustCompile(`<AccessKeyId>([^<]+)</AccessKeyId>`)
	secretKeyRe  = regexp.MustCompile(`<SecretAccessKey>([^<]+)</SecretAccessKey>`)
	credentialRe = regexp.MustCompile(`Credential=([A-Z0-9]+)/`)
	xmlCodeRe    = regexp.MustCompile(`<Code>([^<]+)</Code>`)
)

// stsStandIn stands between the provider and moto. moto (5.2.1) does not
// check a web identity token nor a role's trust policy for
// AssumeRoleWithWebIdentity, and with its IAM checks on it refuses the
// call unsigned (AWS takes it unsigned). So this proxy does what AWS
// does with such a call: it verifies the token (TokenReview against the
// real API server, for the sts.amazonaws.com audience) and refuses it
// unless the token's subject is the one the role trusts; then it signs
// the call with moto's administrator and forwards it. It records which
// access key signed every other request, and which keys moto handed out
// for which role, so the test can tell whose credentials read what.
type stsStandIn struct {
	t      *testing.T
	moto   string
	admin  awssdk.Credentials
	review Reviewer
	trust  map[string]string // role ARN -> the ServiceAccount it trusts

	mu       sync.Mutex
	issued   map[string]string   // access key -> role ARN
	signedBy map[string][]string // access key -> X-Amz-Target of the requests it signed
	assumed  []string            // "role<-subject" per successful exchange
	tokens   []string            // every web identity token received
	secrets  []string            // the secret keys moto issued
}

func (s *stsStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	out, err := http.NewRequestWithContext(r.Context(), r.Method, s.moto+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	for k, v := range r.Header {
		out.Header[k] = v
	}
	out.Host = r.Host // as signed
	role := form.Get("RoleArn")
	if form.Get("Action") == "AssumeRoleWithWebIdentity" {
		token := form.Get("WebIdentityToken")
		s.mu.Lock()
		s.tokens = append(s.tokens, token)
		s.mu.Unlock()
		if r.Header.Get("Authorization") != "" {
			s.t.Errorf("AssumeRoleWithWebIdentity was signed (with credentials of keyward's own?)")
		}
		who, err := s.review(r.Context(), token, aws.DefaultWebIdentityAudience)
		if err != nil || s.trust[role] == "" || who != s.trust[role] {
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error><RequestId>1</RequestId></ErrorResponse>`)
			return
		}
		s.mu.Lock()
		s.assumed = append(s.assumed, role+"<-"+who)
		s.mu.Unlock()
		sum := sha256.Sum256(body)
		out.Host = ""
		if err := v4.NewSigner().SignHTTP(r.Context(), s.admin, out, hex.EncodeToString(sum[:]), "sts", motoRegion, time.Now()); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
	} else if m := credentialRe.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		s.mu.Lock()
		s.signedBy[m[1]] = append(s.signedBy[m[1]], r.Header.Get("X-Amz-Target"))
		s.mu.Unlock()
	}
	resp, err := http.DefaultClient.Do(out)
	if err != nil {
		http.Error(w, err.Error(), 502)
		return
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if m := accessKeyRe.FindSubmatch(data); m != nil && form.Get("Action") == "AssumeRoleWithWebIdentity" {
		s.mu.Lock()
		s.issued[string(m[1])] = role
		if k := secretKeyRe.FindSubmatch(data); k != nil {
			s.secrets = append(s.secrets, string(k[1]))
		}
		s.mu.Unlock()
	}
	if resp.StatusCode == http.StatusForbidden && r.Header.Get("X-Amz-Target") != "" && bytes.HasPrefix(bytes.TrimSpace(data), []byte("<")) {
		// moto answers a refused action in XML whatever the protocol;
		// Secrets Manager (JSON protocol) answers AccessDeniedException
		// in JSON, as the SDK expects.
		code := "AccessDeniedException"
		if m := xmlCodeRe.FindSubmatch(data); m != nil && string(m[1]) != "AccessDenied" {
			code = string(m[1])
		}
		data, _ = json.Marshal(map[string]string{"__type": code, "message": "moto refused the action"})
		resp.Header.Set("Content-Type", "application/x-amz-json-1.1")
		resp.Header.Del("Content-Length")
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(data)
}

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
	// moto answers its first 3 actions without checking them: they
	// create its administrator.
	m, err := testenv.StartMoto(ctx, "INITIAL_NO_AUTH_ACTION_COUNT=3")
	if err != nil {
		t.Fatalf("starting moto: %v", err)
	}
	t.Cleanup(m.Stop)
	boot := awssdk.Credentials{AccessKeyID: "AKIABOOTSTRAPBOOTSTR", SecretAccessKey: "bootstrap"}
	motoCall(t, m.Endpoint, "iam", boot, url.Values{"Action": {"CreateUser"}, "Version": {"2010-05-08"}, "UserName": {"admin"}})
	motoCall(t, m.Endpoint, "iam", boot, url.Values{"Action": {"PutUserPolicy"}, "Version": {"2010-05-08"}, "UserName": {"admin"}, "PolicyName": {"all"},
		"PolicyDocument": {`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`}})
	keys := motoCall(t, m.Endpoint, "iam", boot, url.Values{"Action": {"CreateAccessKey"}, "Version": {"2010-05-08"}, "UserName": {"admin"}})
	ak, sk := accessKeyRe.FindStringSubmatch(keys), secretKeyRe.FindStringSubmatch(keys)
	if ak == nil || sk == nil {
		t.Fatal("moto's CreateAccessKey answer holds no key")
	}
	admin := awssdk.Credentials{AccessKeyID: ak[1], SecretAccessKey: sk[1]}
	roles := map[string]string{}
	policies := map[string]string{
		"alice": `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["secretsmanager:GetSecretValue","secretsmanager:BatchGetSecretValue","secretsmanager:DescribeSecret"],"Resource":"*"}]}`,
		"bob":   `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}`,
	}
	for _, who := range []string{"alice", "bob"} {
		roles[who] = "arn:aws:iam::" + motoAccount + ":role/csi-" + who
		trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::` + motoAccount + `:oidc-provider/kubernetes"},"Action":"sts:AssumeRoleWithWebIdentity"}]}`
		motoCall(t, m.Endpoint, "iam", admin, url.Values{"Action": {"CreateRole"}, "Version": {"2010-05-08"}, "RoleName": {"csi-" + who}, "AssumeRolePolicyDocument": {trust}})
		motoCall(t, m.Endpoint, "iam", admin, url.Values{"Action": {"PutRolePolicy"}, "Version": {"2010-05-08"}, "RoleName": {"csi-" + who}, "PolicyName": {"read"}, "PolicyDocument": {policies[who]}})
		apply(t,
			`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"`+ns+`"}}`,
			`{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"`+who+`","namespace":"`+ns+`","annotations":{"`+aws.RoleARNAnnotation+`":"`+roles[who]+`"}}}`,
		)
	}
	const value = "db-pw-5f0e91"
	sm := secretsmanager.New(secretsmanager.Options{Region: motoRegion, BaseEndpoint: awssdk.String(m.Endpoint),
		Credentials: credentials.StaticCredentialsProvider{Value: admin}})
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: awssdk.String("app-db"), SecretString: awssdk.String(value)}); err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}

	adminToken := func() (string, error) { return cluster.AdminToken, nil }
	review, err := TokenReviewer(cluster.API.URL, cluster.CAData, adminToken)
	if err != nil {
		t.Fatal(err)
	}
	standIn := &stsStandIn{t: t, moto: m.Endpoint, admin: admin, review: review,
		trust:  map[string]string{roles["alice"]: "system:serviceaccount:" + ns + ":alice", roles["bob"]: "system:serviceaccount:" + ns + ":bob"},
		issued: map[string]string{}, signedBy: map[string][]string{}}
	proxy := httptest.NewServer(standIn)
	t.Cleanup(proxy.Close)

	// The node's own credentials: moto's administrator, who may read
	// everything, in this process's environment, and a metadata address
	// that must never be asked.
	t.Setenv("AWS_ACCESS_KEY_ID", admin.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", admin.SecretAccessKey)
	t.Setenv("AWS_REGION", motoRegion)
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
		return "version: 1\nproviders:\n  awssm:\n    kind: awssm\n    region: " + motoRegion + "\n    endpoint: " + proxy.URL + "\n    sts_endpoint: " + proxy.URL + "\n" + extra +
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

	standIn.mu.Lock()
	var aliceKeys, bobKeys []string
	for key, role := range standIn.issued {
		switch role {
		case roles["alice"]:
			aliceKeys = append(aliceKeys, key)
		case roles["bob"]:
			bobKeys = append(bobKeys, key)
		}
	}
	wantAssumed := []string{roles["alice"] + "<-system:serviceaccount:" + ns + ":alice", roles["bob"] + "<-system:serviceaccount:" + ns + ":bob"}
	if fmt.Sprint(standIn.assumed) != fmt.Sprint(wantAssumed) {
		t.Errorf("roles assumed %v, want %v (each pod's role with its own token, once)", standIn.assumed, wantAssumed)
	}
	if len(aliceKeys) != 1 || len(bobKeys) != 1 {
		t.Fatalf("moto issued %d keys for alice's role and %d for bob's, want 1 each", len(aliceKeys), len(bobKeys))
	}
	// alice's mounts each read Secrets Manager, all with the one key her
	// role was assumed for.
	t.Logf("alice: %d mounts, 1 role assumption, Secrets Manager requests signed with her key: %v", aliceMounts, standIn.signedBy[aliceKeys[0]])
	if reads := standIn.signedBy[aliceKeys[0]]; len(reads) < aliceMounts {
		t.Errorf("%d Secrets Manager requests signed with alice's assumed-role key for %d mounts", len(reads), aliceMounts)
	}
	if reads := standIn.signedBy[bobKeys[0]]; len(reads) == 0 {
		t.Error("no Secrets Manager request was signed with bob's assumed-role key")
	}
	if reads := standIn.signedBy[admin.AccessKeyID]; len(reads) > 0 {
		t.Errorf("%d requests %v were signed with the node's own key", len(reads), reads)
	}
	for _, tok := range standIn.tokens {
		if tok != tokens["alice"] && tok != tokens["bob"] {
			t.Error("STS received a token that is neither pod's")
		}
	}
	if len(standIn.secrets) != 2 {
		t.Errorf("%d secret keys seen in STS's answers, want 2", len(standIn.secrets))
	}
	for _, k := range standIn.secrets {
		if strings.Contains(logs.String(), k) || slices.ContainsFunc(refusals, func(msg string) bool { return strings.Contains(msg, k) }) {
			t.Error("leaked value of an assumed role's secret key in the provider's log or a mount's error")
		}
	}
	standIn.mu.Unlock()
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
	standIn.mu.Lock()
	if len(standIn.signedBy[admin.AccessKeyID]) == 0 {
		t.Error("with --node-identity-kinds awssm, no request was signed with the node's key")
	}
	standIn.mu.Unlock()
}
