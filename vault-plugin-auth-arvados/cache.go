package arvadosauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"
)

// maxCacheEntries bounds the lookup cache; when full, expired entries are dropped and, if that is
// not enough, everything is.
const maxCacheEntries = 10000

// lookupCache remembers Arvados answers used at login for a short time, so that the containers
// of a workflow that start together do not each ask Arvados the same questions:
//
//   - "user:<uuid>" and "member:<uuid>:<groups>": the user record and the group membership,
//     asked with the privileged token, kept for cache_ttl;
//   - "token:<HMAC of the token>": what Arvados answered about a token that passed every check
//     (its authorization and its Running container), kept for token_cache_ttl.
//
// Only successful answers are kept, never errors. Concurrent logins that miss the same key share
// one request (fetch). A token is never a key or a value: its entry is found by a keyed hash
// whose key lives only in this process. Renewal never reads the cache.
type lookupCache struct {
	mu       sync.Mutex
	entries  map[string]cacheEntry
	inflight map[string]*flight
	now      func() time.Time
	// tokenKey keys the HMAC that names a token's entry.
	tokenKey []byte
}

type cacheEntry struct {
	value   any
	expires time.Time
}

// flight is one Arvados request that concurrent callers of fetch wait for together.
type flight struct {
	done  chan struct{}
	value any
	err   error
}

func newLookupCache() *lookupCache {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		// crypto/rand does not fail on Linux; without a key, token entries would be guessable
		// hashes, so refuse to run rather than weaken them.
		panic("arvadosauth: no randomness for the cache key: " + err.Error())
	}
	return &lookupCache{
		entries:  map[string]cacheEntry{},
		inflight: map[string]*flight{},
		now:      time.Now,
		tokenKey: key,
	}
}

// tokenKeyFor names the cache entry of `token` without containing it.
func (c *lookupCache) tokenKeyFor(token string) string {
	m := hmac.New(sha256.New, c.tokenKey)
	m.Write([]byte(token))
	return "token:" + hex.EncodeToString(m.Sum(nil))
}

func (c *lookupCache) get(key string) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.getLocked(key)
}

func (c *lookupCache) getLocked(key string) (any, bool) {
	e, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	if !c.now().Before(e.expires) {
		delete(c.entries, key)
		return nil, false
	}
	return e.value, true
}

func (c *lookupCache) put(key string, value any, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(key, value, ttl)
}

func (c *lookupCache) putLocked(key string, value any, ttl time.Duration) {
	if len(c.entries) >= maxCacheEntries {
		now := c.now()
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCacheEntries {
			c.entries = map[string]cacheEntry{}
		}
	}
	c.entries[key] = cacheEntry{value: value, expires: c.now().Add(ttl)}
}

// fetch returns the entry for `key` if it is younger than its ttl; otherwise it calls `ask`, keeps
// a successful answer for `ttl` and returns it. While one call for `key` is under way, other
// callers wait for its outcome instead of asking Arvados again; they get its error too. With a
// ttl of 0 every caller asks Arvados itself: nothing is kept or shared.
// `ask` runs without the first caller's cancellation (so that one impatient client does not fail
// the others) but within the Arvados client's own request timeout. `keep` decides whether an
// answer may be kept (nil: every successful answer).
func (c *lookupCache) fetch(ctx context.Context, key string, ttl time.Duration,
	ask func(context.Context) (any, error), keep func(any) bool) (any, error) {
	if ttl <= 0 {
		return ask(ctx)
	}
	c.mu.Lock()
	if v, ok := c.getLocked(key); ok {
		c.mu.Unlock()
		return v, nil
	}
	if f, ok := c.inflight[key]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.value, f.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	c.inflight[key] = f
	c.mu.Unlock()

	f.value, f.err = ask(context.WithoutCancel(ctx))

	c.mu.Lock()
	// A clear() while the request was under way replaced the maps: an answer that started before
	// a config change must not be kept after it.
	if c.inflight[key] == f {
		delete(c.inflight, key)
		if f.err == nil && (keep == nil || keep(f.value)) {
			c.putLocked(key, f.value, ttl)
		}
	}
	c.mu.Unlock()
	close(f.done)
	return f.value, f.err
}

func (c *lookupCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = map[string]cacheEntry{}
	c.inflight = map[string]*flight{}
}
