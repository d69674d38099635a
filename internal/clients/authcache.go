package clients

import (
	"sync"
	"time"

	"github.com/lethe-privacy/lethe/internal/store"
)

// DefaultAuthCacheTTL bounds how long an API key lookup is reused even
// while its client's auth version (store.Clients.ClientAuthVersion) stays
// the same.
const DefaultAuthCacheTTL = time.Minute

// maxAuthCacheEntries bounds the cache: past it, it starts over, so a flood
// of distinct valid keys costs lookups, not memory.
const maxAuthCacheEntries = 10000

// authCache keeps successful API key lookups (the client, its HMAC secrets
// opened, their expiries), so a partner's signed requests do not each find
// the key, read the secrets and open them again: a hit costs one small read
// of the client's auth version instead.
//
// Invalidation: every use compares the client's auth version with the one
// read before the entry was filled; a disable, an enable or a rotation
// changes it, through this process or any other on the database (the CLI,
// another node), so such a change takes effect on the next request
// everywhere, as without the cache. Secret expiries are kept with the
// entry and checked on every use, so a rotation's overlap ends on time.
// Entries also expire after the TTL. Failed lookups are never cached.
// Access tokens are not cached: their lookup is already one read.
type authCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	apiKeys map[string]apiKeyEntry
}

type apiKeyEntry struct {
	clientID   string
	version    string
	keyExpires time.Time
	secrets    []store.Credential
	until      time.Time
}

func newAuthCache(ttl time.Duration) *authCache {
	return &authCache{ttl: ttl, apiKeys: map[string]apiKeyEntry{}}
}

func (c *authCache) enabled() bool { return c.ttl > 0 }

// unexpired reports whether an expiry (zero: none) is still ahead of now;
// the store's rule.
func unexpired(expires, now time.Time) bool {
	return expires.IsZero() || now.Before(expires)
}

// apiKey returns the cached entry for hash when it is still within its TTL
// and its key unexpired; the caller checks the version.
func (c *authCache) apiKey(hash string, now time.Time) (apiKeyEntry, bool) {
	if !c.enabled() {
		return apiKeyEntry{}, false
	}
	c.mu.Lock()
	e, ok := c.apiKeys[hash]
	c.mu.Unlock()
	if !ok || !now.Before(e.until) || !unexpired(e.keyExpires, now) {
		return apiKeyEntry{}, false
	}
	return e, true
}

// secretsAt returns the entry's secrets unexpired at now.
func (e apiKeyEntry) secretsAt(now time.Time) [][]byte {
	var out [][]byte
	for _, s := range e.secrets {
		if unexpired(s.ExpiresAt, now) {
			out = append(out, []byte(s.Secret))
		}
	}
	return out
}

func (c *authCache) putAPIKey(hash string, e apiKeyEntry, now time.Time) {
	if !c.enabled() {
		return
	}
	e.until = now.Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.apiKeys) >= maxAuthCacheEntries {
		clear(c.apiKeys)
	}
	c.apiKeys[hash] = e
}
