package csiprovider

import (
	"sync"
	"time"

	"github.com/keyward/keyward/providers"
)

// Defaults of the pool of provider sets.
const (
	// DefaultLoginIdle is how long a provider set (with its store logins,
	// a Vault token) is kept unused for the next mount of the same
	// identity and provider instances.
	DefaultLoginIdle = 5 * time.Minute
	// DefaultLoginMax bounds the provider sets kept.
	DefaultLoginMax = 256
)

// pool keeps a provider set per identity and provider instances, so that
// the mounts of one identity reuse its store logins (a Vault token)
// instead of logging in at every mount. Each set acts with the latest
// tokens of its identity's pods. A set unused for idle, or the least
// recently used beyond max, is closed once no mount uses it.
type pool struct {
	idle time.Duration
	max  int
	now  func() time.Time

	mu   sync.Mutex
	sets map[string]*pooled
}

type pooled struct {
	set    *providers.Set
	mu     sync.Mutex
	tokens map[string]Token
	refs   int
	last   time.Time
}

// token returns the identity's latest token for audience.
func (p *pooled) token(audience string) (Token, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.tokens[audience]
	return t, ok
}

// acquire returns the set of key, built by build (given the entry whose
// tokens the set's workload reads) when there is none, with tokens as its
// identity's latest; release gives it back.
func (pl *pool) acquire(key string, tokens map[string]Token, build func(*pooled) *providers.Set) (*providers.Set, func()) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	p, ok := pl.sets[key]
	if !ok {
		p = &pooled{}
		p.set = build(p)
		pl.sets[key] = p
	}
	p.mu.Lock()
	p.tokens = tokens
	p.mu.Unlock()
	p.refs++
	p.last = pl.now()
	pl.trimLocked()
	return p.set, func() {
		pl.mu.Lock()
		defer pl.mu.Unlock()
		p.refs--
		p.last = pl.now()
	}
}

// sweep closes the sets unused for idle.
func (pl *pool) sweep() {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	now := pl.now()
	for k, p := range pl.sets {
		if p.refs == 0 && now.Sub(p.last) >= pl.idle {
			delete(pl.sets, k)
			_ = p.set.Close()
		}
	}
}

// trimLocked closes the least recently used unused sets beyond max.
func (pl *pool) trimLocked() {
	for len(pl.sets) > pl.max {
		var oldest string
		for k, p := range pl.sets {
			if p.refs == 0 && (oldest == "" || p.last.Before(pl.sets[oldest].last)) {
				oldest = k
			}
		}
		if oldest == "" {
			return // every set is in use
		}
		_ = pl.sets[oldest].set.Close()
		delete(pl.sets, oldest)
	}
}

// closeAll closes every set (Serve's end).
func (pl *pool) closeAll() {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for k, p := range pl.sets {
		_ = p.set.Close()
		delete(pl.sets, k)
	}
}
