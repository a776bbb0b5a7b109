package rotate

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// TokenGuardHeader is the request header that must carry the per-start
// random guard token when the token endpoint listens on loopback TCP (the
// SSRF guard: a request forged through a server-side fetch cannot set it).
const TokenGuardHeader = "X-Keyward-Token"

// TokenRoutes is the subset of internal/server.Server that Register uses.
type TokenRoutes interface {
	Handle(pattern string, h http.Handler)
}

// Register adds the token endpoint to routes:
//
//	GET  /v1/tokens/{name}          the current token as JSON
//	POST /v1/tokens/{name}/refresh  a new token now (rate-limited, coalesced)
//
// The JSON is {"access_token", "token_type", "expires_at" (RFC 3339),
// "expires_in" (whole seconds)}. When guard is not empty, every request
// must carry it in the TokenGuardHeader header (401 otherwise); on a 0600
// unix socket guard may be empty. Responses: 404 for an unknown name, 503
// while there is no valid token (or the forced exchange failed, with the
// error, which names no secret).
func (t *Tokens) Register(routes TokenRoutes, guard string) {
	routes.Handle("GET /v1/tokens/{name}", t.guarded(guard, t.serveGet))
	routes.Handle("POST /v1/tokens/{name}/refresh", t.guarded(guard, t.serveRefresh))
}

func (t *Tokens) guarded(guard string, h http.HandlerFunc) http.Handler {
	want := []byte(guard)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if guard != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get(TokenGuardHeader)), want) != 1 {
			httpError(w, http.StatusUnauthorized, "missing or wrong "+TokenGuardHeader+" header")
			return
		}
		h(w, r)
	})
}

func (t *Tokens) serveGet(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if t.byName[name] == nil {
		httpError(w, http.StatusNotFound, "no token named "+strconv.Quote(name))
		return
	}
	tok, ok := t.Get(name)
	if !ok {
		httpError(w, http.StatusServiceUnavailable, "token "+name+" has no valid token")
		return
	}
	writeToken(w, tok)
}

func (t *Tokens) serveRefresh(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	tok, err := t.Refresh(r.Context(), name)
	switch {
	case errors.Is(err, ErrUnknownToken):
		httpError(w, http.StatusNotFound, "no token named "+strconv.Quote(name))
	case err != nil:
		httpError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeToken(w, tok)
	}
}

type tokenJSON struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"`
	ExpiresAt   time.Time `json:"expires_at"`
	ExpiresIn   int64     `json:"expires_in"`
}

func writeToken(w http.ResponseWriter, tok Token) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(tokenJSON{
		AccessToken: tok.AccessToken.Reveal(),
		TokenType:   tok.TokenType,
		ExpiresAt:   tok.ExpiresAt.UTC(),
		ExpiresIn:   int64(time.Until(tok.ExpiresAt) / time.Second),
	})
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
