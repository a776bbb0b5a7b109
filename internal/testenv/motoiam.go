package testenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// MotoAccount is the account moto's resources belong to by default, and
// MotoRegion the region MotoIAM signs its own calls for.
const (
	MotoAccount = "123456789012"
	MotoRegion  = "us-east-1"
)

// MotoIAM is a moto server with its IAM checks on (every request after
// the first three is checked for a valid signature and against the
// caller's IAM policies), and the credentials of its administrator, a
// user allowed everything.
type MotoIAM struct {
	*Moto
	Admin awssdk.Credentials
}

// StartMotoIAM starts moto with INITIAL_NO_AUTH_ACTION_COUNT=3 and spends
// those three unchecked actions on creating its administrator. moto
// checks IAM per action only: Secrets Manager actions are checked against
// the resource "*", so policies that name secrets allow nothing there.
func StartMotoIAM(ctx context.Context) (*MotoIAM, error) {
	m, err := StartMoto(ctx, "INITIAL_NO_AUTH_ACTION_COUNT=3")
	if err != nil {
		return nil, err
	}
	mi := &MotoIAM{Moto: m}
	boot := awssdk.Credentials{AccessKeyID: "AKIABOOTSTRAPBOOTSTR", SecretAccessKey: "bootstrap"}
	steps := []url.Values{
		{"Action": {"CreateUser"}, "UserName": {"admin"}},
		{"Action": {"PutUserPolicy"}, "UserName": {"admin"}, "PolicyName": {"all"},
			"PolicyDocument": {`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`}},
		{"Action": {"CreateAccessKey"}, "UserName": {"admin"}},
	}
	var keys string
	for _, p := range steps {
		p.Set("Version", "2010-05-08")
		if keys, err = mi.Call(ctx, "iam", boot, p); err != nil {
			m.Stop()
			return nil, err
		}
	}
	ak, sk := accessKeyRe.FindStringSubmatch(keys), secretKeyRe.FindStringSubmatch(keys)
	if ak == nil || sk == nil {
		m.Stop()
		return nil, errors.New("moto's CreateAccessKey answer holds no key")
	}
	mi.Admin = awssdk.Credentials{AccessKeyID: ak[1], SecretAccessKey: sk[1]}
	return mi, nil
}

// Call signs params (an action of a query-protocol service: iam, sts)
// with creds and posts them to moto; an answer other than 200 is an
// error naming the action and status.
func (m *MotoIAM) Call(ctx context.Context, service string, creds awssdk.Credentials, params url.Values) (string, error) {
	body := params.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.Endpoint+"/", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(body))
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), service, MotoRegion, time.Now()); err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("moto %s %s: %s", service, params.Get("Action"), resp.Status)
	}
	return string(out), nil
}

// CreateRole creates role name (its ARN returned) trusting a web
// identity, with an inline policy.
func (m *MotoIAM) CreateRole(ctx context.Context, name, policy string) (string, error) {
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::` + MotoAccount + `:oidc-provider/kubernetes"},"Action":"sts:AssumeRoleWithWebIdentity"}]}`
	if _, err := m.Call(ctx, "iam", m.Admin, url.Values{"Action": {"CreateRole"}, "Version": {"2010-05-08"}, "RoleName": {name}, "AssumeRolePolicyDocument": {trust}}); err != nil {
		return "", err
	}
	if _, err := m.Call(ctx, "iam", m.Admin, url.Values{"Action": {"PutRolePolicy"}, "Version": {"2010-05-08"}, "RoleName": {name}, "PolicyName": {"inline"}, "PolicyDocument": {policy}}); err != nil {
		return "", err
	}
	return "arn:aws:iam::" + MotoAccount + ":role/" + name, nil
}

var (
	accessKeyRe  = regexp.MustCompile(`<AccessKeyId>([^<]+)</AccessKeyId>`)
	secretKeyRe  = regexp.MustCompile(`<SecretAccessKey>([^<]+)</SecretAccessKey>`)
	credentialRe = regexp.MustCompile(`Credential=([A-Z0-9]+)/`)
	xmlCodeRe    = regexp.MustCompile(`<Code>([^<]+)</Code>`)
)

// WebIdentitySTS stands between a client and a MotoIAM, doing what AWS
// does that moto does not. moto (5.2.1) checks neither the web identity
// token nor the role's trust policy of AssumeRoleWithWebIdentity, and with
// its IAM checks on refuses that call unsigned (AWS takes it unsigned). So
// the gateway verifies the token (Review, for Audience) and refuses it
// unless its subject is the one the role trusts (Trust); then it signs the
// call as moto's administrator and forwards it. moto answers a refused
// action in XML whatever the protocol; the gateway turns that into the
// JSON AccessDeniedException Secrets Manager sends. It records which
// access key signed every other request, and which keys moto issued for
// which role.
type WebIdentitySTS struct {
	// URL is the gateway's address, http://127.0.0.1:PORT: the endpoint
	// and sts_endpoint of the clients under test.
	URL string

	moto     *MotoIAM
	review   func(ctx context.Context, token, audience string) (string, error)
	audience string
	srv      *httptest.Server

	mu       sync.Mutex
	trust    map[string]string   // role ARN -> the subject it trusts
	issued   map[string]string   // access key -> role ARN
	signedBy map[string][]string // access key -> X-Amz-Target of the requests it signed
	assumed  []string            // "ROLE<-SUBJECT" per exchange granted
	tokens   []string            // every web identity token received
	secrets  []string            // the secret keys moto issued
	signed   bool                // an AssumeRoleWithWebIdentity came signed
}

// StartWebIdentitySTS serves a gateway to m on 127.0.0.1 that verifies
// tokens with review for audience. Stop it with Close.
func StartWebIdentitySTS(m *MotoIAM, audience string, review func(ctx context.Context, token, audience string) (string, error)) *WebIdentitySTS {
	g := &WebIdentitySTS{moto: m, review: review, audience: audience,
		trust: map[string]string{}, issued: map[string]string{}, signedBy: map[string][]string{}}
	g.srv = httptest.NewServer(g)
	g.URL = g.srv.URL
	return g
}

// Close stops the gateway.
func (g *WebIdentitySTS) Close() { g.srv.Close() }

// Trust makes role trust the web identity subject (a ServiceAccount:
// system:serviceaccount:NS:NAME), as its trust policy's sub condition.
func (g *WebIdentitySTS) Trust(role, subject string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.trust[role] = subject
}

// Assumed lists the exchanges granted, "ROLE<-SUBJECT", in order.
func (g *WebIdentitySTS) Assumed() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.assumed)
}

// IssuedFor lists the access keys moto issued for role.
func (g *WebIdentitySTS) IssuedFor(role string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for k, r := range g.issued {
		if r == role {
			out = append(out, k)
		}
	}
	return out
}

// SignedBy lists the targets (secretsmanager.GetSecretValue, …) of the
// requests signed with access key.
func (g *WebIdentitySTS) SignedBy(key string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.signedBy[key])
}

// Tokens lists the web identity tokens received; SecretKeys the secret
// keys moto issued; ExchangeSigned says whether an exchange came signed
// (with credentials of the client's own).
func (g *WebIdentitySTS) Tokens() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.tokens)
}

// SecretKeys lists the secret access keys moto issued through the gateway.
func (g *WebIdentitySTS) SecretKeys() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.secrets)
}

// ExchangeSigned reports whether an AssumeRoleWithWebIdentity came signed.
func (g *WebIdentitySTS) ExchangeSigned() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.signed
}

// ServeHTTP forwards r to moto, as described on WebIdentitySTS.
func (g *WebIdentitySTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	out, err := http.NewRequestWithContext(r.Context(), r.Method, g.moto.Endpoint+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	for k, v := range r.Header {
		out.Header[k] = v
	}
	out.Host = r.Host // as signed
	role := form.Get("RoleArn")
	exchange := form.Get("Action") == "AssumeRoleWithWebIdentity"
	if exchange {
		token := form.Get("WebIdentityToken")
		g.mu.Lock()
		g.tokens = append(g.tokens, token)
		g.signed = g.signed || r.Header.Get("Authorization") != ""
		trusted := g.trust[role]
		g.mu.Unlock()
		who, err := g.review(r.Context(), token, g.audience)
		if err != nil || trusted == "" || who != trusted {
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error><RequestId>1</RequestId></ErrorResponse>`)
			return
		}
		g.mu.Lock()
		g.assumed = append(g.assumed, role+"<-"+who)
		g.mu.Unlock()
		sum := sha256.Sum256(body)
		out.Host = ""
		out.Header.Del("Authorization")
		if err := v4.NewSigner().SignHTTP(r.Context(), g.moto.Admin, out, hex.EncodeToString(sum[:]), "sts", MotoRegion, time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	} else if m := credentialRe.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		g.mu.Lock()
		g.signedBy[m[1]] = append(g.signedBy[m[1]], r.Header.Get("X-Amz-Target"))
		g.mu.Unlock()
	}
	resp, err := http.DefaultClient.Do(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if exchange {
		if m := accessKeyRe.FindSubmatch(data); m != nil {
			g.mu.Lock()
			g.issued[string(m[1])] = role
			if k := secretKeyRe.FindSubmatch(data); k != nil {
				g.secrets = append(g.secrets, string(k[1]))
			}
			g.mu.Unlock()
		}
	}
	if resp.StatusCode == http.StatusForbidden && r.Header.Get("X-Amz-Target") != "" && bytes.HasPrefix(bytes.TrimSpace(data), []byte("<")) {
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
