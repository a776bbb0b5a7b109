package rotate

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyward/keyward/providers"
)

// credProvider hands out numbered AWS-like credentials valid for life.
type credProvider struct {
	plainProvider
	mu   *sync.Mutex
	n    *int
	life time.Duration
	got  *[]providers.CredentialRequest
}

func (c credProvider) Credential(_ context.Context, req providers.CredentialRequest) (providers.Secret, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	*c.n++
	*c.got = append(*c.got, req)
	id := "AKIA-test-" + string(rune('0'+*c.n))
	return providers.Secret{
		Value: providers.StringValue(`{"Version":1,"AccessKeyId":"` + id + `"}`),
		Data:  map[string]any{"AccessKeyId": id, "SecretAccessKey": "secret-access-key-" + id, "SessionToken": "session-token-" + id, "Expiration": "x"},
		Lease: &providers.Lease{Duration: c.life, Obtained: time.Now()},
	}, nil
}

// TestSourceAWSFiles: a source other than OAuth2 is asked for its
// credential with the configured request, refreshed at 2/3 of its
// lifetime, written in the AWS formats, and every part of it is learnt
// before it is written.
func TestSourceAWSFiles(t *testing.T) {
	for _, format := range []string{TokenFileCredentials, TokenFileCredentialProcess} {
		t.Run(format, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := 0
				var got []providers.CredentialRequest
				p := credProvider{plainProvider: plainProvider{newStore()}, mu: &sync.Mutex{}, n: &n, life: time.Hour, got: &got}
				file := filepath.Join(t.TempDir(), "aws")
				learnt := map[string]bool{}
				var learnMu sync.Mutex
				req := providers.CredentialRequest{RoleARN: "arn:aws:iam::123456789012:role/app", SessionName: "s"}
				tk, err := NewTokens(TokenOptions{
					Providers: oneSet(t, p),
					Tokens: []TokenSpec{{Name: "aws", Source: SourceAWS, Provider: scheme, Credential: req, Profile: "app",
						File: file, FileFormat: format}},
					Metrics: NewTokenMetrics(prometheus.NewRegistry()),
					Logger:  slog.New(slog.DiscardHandler),
					Rand:    func() float64 { return 0.5 },
					OnCredential: func(_, what string, v providers.Value) {
						learnMu.Lock()
						defer learnMu.Unlock()
						learnt[v.Reveal()] = true
					},
				})
				if err != nil {
					t.Fatal(err)
				}
				if err := tk.Init(t.Context()); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan struct{})
				go func() { _ = tk.Run(ctx); close(done) }()
				time.Sleep(50 * time.Minute) // refreshed at 40 min
				synctest.Wait()
				cancel()
				<-done
				if n != 2 || got[0].RoleARN != req.RoleARN || got[1].SessionName != "s" {
					t.Fatalf("%d credential calls with %+v", n, got)
				}
				b, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				want := `{"Version":1,"AccessKeyId":"AKIA-test-2"}` + "\n"
				if format == TokenFileCredentials {
					want = "[app]\naws_access_key_id = AKIA-test-2\naws_secret_access_key = secret-access-key-AKIA-test-2\naws_session_token = session-token-AKIA-test-2\n"
				}
				if !strings.HasPrefix(string(b), want) {
					t.Fatal("the file does not hold the second credentials in the format asked for")
				}
				for _, v := range []string{"secret-access-key-AKIA-test-2", "session-token-AKIA-test-2", `{"Version":1,"AccessKeyId":"AKIA-test-2"}`} {
					if !learnt[v] {
						t.Error("a part of the credentials was not learnt by the masker")
					}
				}
				if tok, ok := tk.Get("aws"); !ok || tok.TokenType != "aws-credentials" {
					t.Fatal("not served")
				}
			})
		})
	}
}

// TestSourceNotACredentialSource: a provider that hands out no
// credentials is a clear error.
func TestSourceNotACredentialSource(t *testing.T) {
	tk, err := NewTokens(TokenOptions{Providers: oneSet(t, plainProvider{newStore()}),
		Tokens: []TokenSpec{{Name: "v", Source: SourceVault, Provider: scheme, File: filepath.Join(t.TempDir(), "t")}}})
	if err != nil {
		t.Fatal(err)
	}
	err = tk.Init(t.Context()) // not retried: it cannot succeed
	if err == nil || !strings.Contains(err.Error(), "token v: obtain vault credentials: provider fake hands out no credentials of its own") {
		t.Fatalf("err = %v", err)
	}
}
