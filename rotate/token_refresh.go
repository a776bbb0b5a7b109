package rotate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keyward/keyward/internal/oauth"
	"github.com/keyward/keyward/providers"
)

// The refresh_token grant (RFC 6749 §6). The refresh token is a reference,
// read at every exchange. When the server rotates it (answers with a new
// one), the new one is written back to the same store, guarded by the
// version it was read at (providers.Writer), before the access token that
// came with it is served: a crash then loses at most the exchange in
// flight. A write-back that fails keeps the new refresh token and its
// access token in memory (pending) and is retried before anything else; a
// refresh token the server refuses (invalid_grant) is not sent again until
// the store holds another one.

// ErrRefreshTokenRefused is wrapped by the error of an exchange whose
// refresh token the authorization server refused (invalid_grant: expired,
// revoked or already used). Keyward does not send that refresh token again.
var ErrRefreshTokenRefused = errors.New("the authorization server refused the refresh token")

// refreshState is what the refresh_token grant of one token keeps between
// exchanges. Exchanges of one token never run concurrently (see exchange),
// so only refused, which Ready reads, is guarded (by tokenState.mu).
type refreshState struct {
	// pending is a rotated refresh token whose write-back failed.
	pending *pendingRefresh
	// written is the last refresh token keyward obtained, and replaced the
	// one it replaced: a read of the store that still returns replaced is
	// stale (or the store could not be written), and written is used.
	written, replaced providers.Value
	// refused is the ContentVersion of the refresh token the server last
	// refused; "" when none.
	refused string
}

// pendingRefresh is a rotated refresh token not yet written back.
type pendingRefresh struct {
	value, replaced providers.Value
	from            string // the version it replaces
	tok             *Token // the access token that came with it
}

// refreshRead is a refresh token as read from its store.
type refreshRead struct {
	value   providers.Value
	version string
}

// writeBackOp is the TokenError.Op of a failed write-back.
const writeBackOp = "write back refresh_token"

// flushPending writes back a pending rotated refresh token. It returns the
// access token that came with it when that is still valid, nil when there
// was nothing pending or the access token has expired meanwhile (a new
// exchange, with the refresh token now stored, follows).
func (t *Tokens) flushPending(ctx context.Context, st *tokenState) (*Token, error) {
	pd := st.refresh.pending
	if pd == nil {
		return nil, nil
	}
	if err := t.writeBack(ctx, st, pd); err != nil {
		return nil, err
	}
	if time.Now().Before(pd.tok.ExpiresAt) {
		return pd.tok, nil
	}
	return nil, nil
}

// readRefreshToken reads the refresh token of st, refusing one the server
// refused before.
func (t *Tokens) readRefreshToken(ctx context.Context, st *tokenState) (refreshRead, error) {
	s := st.spec
	v, version, err := t.fetchVersioned(ctx, s.RefreshToken)
	if err != nil {
		return refreshRead{}, &TokenError{Token: s.Name, Op: "fetch refresh_token", Err: err}
	}
	t.learn(s.Name, "refresh_token", v)
	rs := &st.refresh
	if rs.written.Len() > 0 && bytes.Equal(v.Bytes(), rs.replaced.Bytes()) {
		// The store still holds the refresh token keyward replaced: a
		// stale read, or a store that could not be written.
		v = rs.written
	}
	if v.Len() == 0 {
		return refreshRead{}, &TokenError{Token: s.Name, Op: "fetch refresh_token", Err: fmt.Errorf("%s is empty", s.RefreshToken)}
	}
	fp := providers.ContentVersion(v.Bytes())
	st.mu.Lock()
	refused := rs.refused
	if refused != "" && refused != fp {
		rs.refused = ""
	}
	st.mu.Unlock()
	switch {
	case refused == fp:
		return refreshRead{}, t.refusedError(s, errors.New("refused before, and the store holds no other one"))
	case refused != "":
		t.log.Info("token: the store holds a new refresh token; trying it", "token", s.Name)
	}
	return refreshRead{value: v, version: version}, nil
}

// refuse records that the server refused rt and returns the error.
func (t *Tokens) refuse(st *tokenState, rt refreshRead, cause error) error {
	st.mu.Lock()
	st.refresh.refused = providers.ContentVersion(rt.value.Bytes())
	st.mu.Unlock()
	return t.refusedError(st.spec, cause)
}

func (t *Tokens) refusedError(s TokenSpec, cause error) error {
	return &TokenError{Token: s.Name, Op: "refresh", Err: fmt.Errorf("%w (%v); store a new one at %s", ErrRefreshTokenRefused, cause, s.RefreshToken)}
}

// storeRotated writes back the refresh token the server answered with, if
// it rotated it. It returns an error (and keeps the token pending) only
// when the write failed in a way a retry may fix; then tok must not be
// served yet.
func (t *Tokens) storeRotated(ctx context.Context, st *tokenState, rt refreshRead, next string, tok *Token) error {
	if next == "" || next == rt.value.Reveal() {
		return nil
	}
	v := providers.StringValue(next)
	t.learn(st.spec.Name, "refresh_token", v)
	return t.writeBack(ctx, st, &pendingRefresh{value: v, replaced: rt.value, from: rt.version, tok: tok})
}

// writeBack stores pd's refresh token at the reference it was read from.
// On success, and when keeping it is all that can be done (a conflict, a
// store that cannot write), pending is cleared; otherwise pd becomes
// pending and the error is returned.
func (t *Tokens) writeBack(ctx context.Context, st *tokenState, pd *pendingRefresh) error {
	s := st.spec
	rs := &st.refresh
	rs.pending = nil
	_, err := t.opts.Providers.Write(ctx, s.RefreshToken, pd.value.Bytes(), pd.from)
	switch {
	case err == nil:
		rs.written, rs.replaced = pd.value, pd.replaced
		t.log.Info("token: rotated refresh token written back", "token", s.Name, "ref", s.RefreshToken.String())
		return nil
	case errors.Is(err, providers.ErrConflict):
		// Someone else stored a refresh token meanwhile: theirs wins, and
		// the next exchange uses it.
		rs.written, rs.replaced = providers.Value{}, providers.Value{}
		t.log.Warn("token: the refresh token changed in its store since it was read; keeping the stored one, not the one the server just issued",
			"token", s.Name, "ref", s.RefreshToken.String(), "err", err)
		return nil
	case errors.Is(err, errors.ErrUnsupported):
		// Keep it in memory: better than nothing until the next restart.
		rs.written, rs.replaced = pd.value, pd.replaced
		t.log.Error("token: the server rotated the refresh token and its store cannot be written: keyward keeps the new one in memory only, and after a restart the stored one will be refused",
			"token", s.Name, "ref", s.RefreshToken.String(), "err", err)
		return nil
	}
	rs.pending = pd
	return &TokenError{Token: s.Name, Op: writeBackOp, Err: err}
}

// learn hands a credential to OnCredential.
func (t *Tokens) learn(name, what string, v providers.Value) {
	if t.opts.OnCredential != nil && v.Len() > 0 {
		t.opts.OnCredential(name, what, v)
	}
}

// refreshGrant reports whether s uses the refresh_token grant.
func refreshGrant(s TokenSpec) bool { return s.Grant == oauth.GrantRefreshToken }
