package clients

import (
	"sync"
	"time"

	"github.com/lethe-privacy/lethe/internal/store"
)

// DefaultAuthCacheTTL is how long a successful API key or access token
// lookup is reused before the store is asked again; see authCache.
const DefaultAuthCacheTTL = 5 * time.Second

// maxAuthCacheEntries bounds each map: past it the cache starts over, so a
// flood of distinct valid tokens costs lookups, not memory.
const maxAuthCacheEntries = 10000

// authCache keeps successful credential lookups for a short TTL, so a
// partner's requests do not each read its API key, secrets or token from the
// database (and open the sealed secrets again).
//
// Invalidation: a change made through this Service (create, rotate,
// disable, enable) empties the cache at once, and a lookup that began
// before the change does not store its result. A change made elsewhere
// (another lethe process on the same database, the CLI) reaches this
// process when its entries expire: a disabled client, a rotated secret past
// its overlap or an expired token stops working everywhere within the TTL.
// Credential and token expiries are kept with the entry and checked on
// every use, so a rotation's overlap ends on time regardless of the cache.
// Failed lookups are never cached.
type authCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	gen     uint64
	apiKeys map[string]apiKeyEntry
	tokens  map[string]tokenEntry
}

type apiKeyEntry struct {
	clientID   string
	keyExpires time.Time
	secrets    []store.Credential
	until      time.Time
}

type tokenEntry struct {
	token store.Token
	until time.Time
}

func newAuthCache(ttl time.Duration) *authCache {
	return &authCache{ttl: ttl, apiKeys: map[string]apiKeyEntry{}, tokens: map[string]tokenEntry{}}
}

func (c *authCache) enabled() bool { return c.ttl > 0 }

// generation is read before a lookup and given back to store it.
func (c *authCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *authCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.apiKeys)
	clear(c.tokens)
}

// unexpired reports whether an expiry (zero: none) is still ahead of now;
// the store's rule.
func unexpired(expires, now time.Time) bool {
	return expires.IsZero() || now.Before(expires)
}

func (c *authCache) apiKey(hash string, now time.Time) (clientID string, secrets [][]byte, ok bool) {
	if !c.enabled() {
		return "", nil, false
	}
	c.mu.Lock()
	e, ok := c.apiKeys[hash]
	c.mu.Unlock()
	if !ok || !now.Before(e.until) || !unexpired(e.keyExpires, now) {
		return "", nil, false
	}
	for _, s := range e.secrets {
		if unexpired(s.ExpiresAt, now) {
			secrets = append(secrets, []byte(s.Secret))
		}
	}
	if len(secrets) == 0 {
		return "", nil, false
	}
	return e.clientID, secrets, true
}

func (c *authCache) putAPIKey(gen uint64, hash string, key store.Credential, secrets []store.Credential, now time.Time) {
	if !c.enabled() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.apiKeys) >= maxAuthCacheEntries {
		clear(c.apiKeys)
	}
	c.apiKeys[hash] = apiKeyEntry{clientID: key.ClientID, keyExpires: key.ExpiresAt, secrets: secrets, until: now.Add(c.ttl)}
}

func (c *authCache) token(hash string, now time.Time) (store.Token, bool) {
	if !c.enabled() {
		return store.Token{}, false
	}
	c.mu.Lock()
	e, ok := c.tokens[hash]
	c.mu.Unlock()
	if !ok || !now.Before(e.until) || !unexpired(e.token.ExpiresAt, now) {
		return store.Token{}, false
	}
	return e.token, true
}

func (c *authCache) putToken(gen uint64, hash string, t store.Token, now time.Time) {
	if !c.enabled() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.tokens) >= maxAuthCacheEntries {
		clear(c.tokens)
	}
	c.tokens[hash] = tokenEntry{token: t, until: now.Add(c.ttl)}
}
