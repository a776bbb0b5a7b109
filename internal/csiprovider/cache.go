package csiprovider

import (
	"container/list"
	"context"
	"sync"
	"time"

	"github.com/keyward/keyward/providers"
)

// Defaults of the node's shared cache of resolved secrets.
const (
	// DefaultCacheTTL is how long a mount's resolved secrets serve other
	// mounts of the same identity and config. It bounds how much later a
	// rotation reaches a pod than a sidecar would see it.
	DefaultCacheTTL = 10 * time.Second
	// DefaultCacheMaxBytes bounds the bytes of values held.
	DefaultCacheMaxBytes = 16 << 20
)

// shared is the node's sharing of work between mounts: concurrent mounts
// with the same key wait for one resolve (single flight), and its result
// serves the same key for ttl. A key is the pod's verified identity, the
// config's provider instances and its references: mounts share only when
// they would have sent the very same requests as the very same identity.
// The cache holds at most maxBytes of values (least recently used out
// first); an entry's bytes are zeroed when it expires or is evicted, and
// every mount gets its own copy.
type shared struct {
	ttl      time.Duration
	maxBytes int
	now      func() time.Time

	mu       sync.Mutex
	inflight map[string]*flight
	entries  map[string]*list.Element // of *entry
	lru      *list.List               // front: most recently used
	bytes    int
}

type flight struct {
	done chan struct{}
	res  map[string]providers.Resolved // the flight's own copy, for its waiters
	err  error
	// waiters is how many mounts wait for the flight, ended whether it
	// is over; the last waiter to take its copy zeroes res (under mu).
	waiters int
	ended   bool
}

type entry struct {
	key     string
	res     map[string]providers.Resolved // the cache's own copy
	size    int
	expires time.Time
}

func newShared(ttl time.Duration, maxBytes int, now func() time.Time) *shared {
	if now == nil {
		now = time.Now
	}
	return &shared{ttl: ttl, maxBytes: maxBytes, now: now, inflight: map[string]*flight{}, entries: map[string]*list.Element{}, lru: list.New()}
}

// resolve returns the secrets of key: a copy of the cached ones while
// fresh, else a copy of those of the resolve in flight for key, else
// those fetch returns, called once for all who ask meanwhile. The caller
// owns what it gets and zeroes it after use. What fetch returns becomes
// the cache's (providers keep no reference to what they hand out): the
// caller that fetched gets it as it is, and it is copied only for those
// who keep it longer — once for the cache, once for the mounts waiting on
// the fetch (if any wait). hit says whether fetch was not called by this
// caller.
func (c *shared) resolve(ctx context.Context, key string, fetch func(context.Context) (map[string]providers.Resolved, error)) (res map[string]providers.Resolved, hit bool, err error) {
	c.mu.Lock()
	if el, ok := c.entries[key]; ok {
		e := el.Value.(*entry)
		if c.now().Before(e.expires) {
			c.lru.MoveToFront(el)
			out := clone(e.res)
			c.mu.Unlock()
			return out, true, nil
		}
		c.removeLocked(el)
	}
	if f, ok := c.inflight[key]; ok {
		f.waiters++
		c.mu.Unlock()
		select {
		case <-f.done:
			if f.err != nil {
				c.leave(f)
				return nil, true, f.err
			}
			out := clone(f.res)
			c.leave(f)
			return out, true, nil
		case <-ctx.Done():
			c.leave(f)
			return nil, true, ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	c.inflight[key] = f
	c.mu.Unlock()

	// The flight is not bound to one waiter's cancellation: a mount that
	// gives up does not fail the others waiting on it. It has its own
	// bound instead.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultMountTimeout)
	fetched, err := fetch(fctx)
	cancel()
	if err != nil {
		zero(fetched) // whatever a failed fetch returned is dropped
		fetched = nil
	}
	c.mu.Lock()
	delete(c.inflight, key)
	if err == nil {
		if f.waiters > 0 {
			f.res = clone(fetched)
		}
		c.storeLocked(key, fetched)
	}
	f.err, f.ended = err, true
	c.mu.Unlock()
	close(f.done)
	return fetched, false, err
}

// leave is a waiter of f done with it: the last one zeroes the flight's
// copy once the flight has ended.
func (c *shared) leave(f *flight) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f.waiters--
	if f.waiters == 0 && f.ended {
		zero(f.res)
	}
}

// storeLocked caches a copy of res under key, evicting the least recently
// used entries beyond maxBytes.
func (c *shared) storeLocked(key string, res map[string]providers.Resolved) {
	if c.ttl <= 0 {
		return
	}
	size := sizeOf(res)
	if size > c.maxBytes {
		return
	}
	e := &entry{key: key, res: clone(res), size: size, expires: c.now().Add(c.ttl)}
	c.entries[key] = c.lru.PushFront(e)
	c.bytes += size
	for c.bytes > c.maxBytes {
		c.removeLocked(c.lru.Back())
	}
}

// removeLocked drops an entry and zeroes its bytes (no mount holds them:
// each got a copy).
func (c *shared) removeLocked(el *list.Element) {
	e := el.Value.(*entry)
	c.lru.Remove(el)
	delete(c.entries, e.key)
	c.bytes -= e.size
	zero(e.res)
}

// sweep drops the expired entries, zeroing them.
func (c *shared) sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for el := c.lru.Back(); el != nil; {
		prev := el.Prev()
		if !now.Before(el.Value.(*entry).expires) {
			c.removeLocked(el)
		}
		el = prev
	}
}

// clear drops every entry, zeroing them (Serve's end).
func (c *shared) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.lru.Back(); el != nil; el = c.lru.Back() {
		c.removeLocked(el)
	}
}

// held is the bytes of values the cache holds.
func (c *shared) held() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

func sizeOf(res map[string]providers.Resolved) int {
	n := 0
	for _, r := range res {
		n += r.Value.Len()
		for _, f := range r.Fields {
			n += f.Len()
		}
	}
	return n
}

// clone copies res and every value's bytes.
func clone(res map[string]providers.Resolved) map[string]providers.Resolved {
	out := make(map[string]providers.Resolved, len(res))
	for name, r := range res {
		c := r
		c.Value = providers.NewValue(r.Value.Bytes())
		if r.Fields != nil {
			c.Fields = make(map[string]providers.Value, len(r.Fields))
			for k, v := range r.Fields {
				c.Fields[k] = providers.NewValue(v.Bytes())
			}
		}
		out[name] = c
	}
	return out
}

// zero overwrites the bytes of values the cache owns.
func zero(res map[string]providers.Resolved) {
	for _, r := range res {
		r.Zero()
	}
}
