package rotate

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keyward/keyward/internal/oauth"
	"github.com/keyward/keyward/providers"
)

// TestTokenRedirectRefused: a token endpoint that redirects does not get the
// client secret re-sent to the redirect's target.
func TestTokenRedirectRefused(t *testing.T) {
	t.Parallel()
	var followed atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed.Store(true) }))
	defer target.Close()
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/token", http.StatusTemporaryRedirect)
	}))
	defer as.Close()
	st := newStore()
	st.set("client", `{"id":"app","secret":"sv-redirect-secret"}`)
	tk, err := NewTokens(TokenOptions{
		Providers: oneSet(t, plainProvider{st}),
		Tokens: []TokenSpec{{
			Name: "api", TokenURL: as.URL + "/token", Auth: oauth.ClientSecretPost,
			ClientID:     providers.Ref{Scheme: scheme, Path: "client", Field: "id"},
			ClientSecret: providers.Ref{Scheme: scheme, Path: "client", Field: "secret"},
		}},
		Rand: func() float64 { return 0.5 },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err = tk.Init(ctx)
	if err == nil {
		t.Fatal("Init succeeded through a redirect")
	}
	if followed.Load() {
		t.Fatal("the redirect was followed: the client secret went to another endpoint")
	}
	if strings.Contains(err.Error(), "sv-redirect-secret") {
		t.Fatal("the client secret is in the error")
	}
}
