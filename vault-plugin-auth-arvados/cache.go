package arvadosauth

import (
	"sync"
	"time"
)

// maxCacheEntries bounds the lookup cache; when full, expired entries are dropped and, if that is
// not enough, everything is.
const maxCacheEntries = 10000

// lookupCache remembers privileged Arvados answers used at login (group membership of a user)
// for a short time (cache_ttl), so that many containers of one user starting together do not
// each ask Arvados. The client's own token is checked against Arvados on every login and is
// never a key or a value here. Renewal never uses the cache.
type lookupCache struct {
	mu      sync.Mutex
	entries map[string]cacheEntry
	now     func() time.Time
}

type cacheEntry struct {
	value   any
	expires time.Time
}

func newLookupCache() *lookupCache {
	return &lookupCache{entries: map[string]cacheEntry{}, now: time.Now}
}

func (c *lookupCache) get(key string) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
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

func (c *lookupCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = map[string]cacheEntry{}
}
