package clients

import (
	"context"
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
// of the client's auth version instead, shared by the hits of one client
// that wait for it (sharedVersion).
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
	// versions shares the reads of a client's auth version between the
	// requests that wait for one (sharedVersion).
	versions map[string]*versionReads
}

// versionReads are one client's auth version reads: one in flight
// (running), and the next one (next), which every request arriving
// meanwhile waits for and which starts when the running one ends.
type versionReads struct {
	running bool
	next    *versionRead
}

type versionRead struct {
	done    chan struct{}
	waiters int // calls waiting for it
	v       string
	err     error
}

type apiKeyEntry struct {
	clientID   string
	version    string
	keyExpires time.Time
	secrets    []store.Credential
	until      time.Time
}

func newAuthCache(ttl time.Duration) *authCache {
	return &authCache{ttl: ttl, apiKeys: map[string]apiKeyEntry{}, versions: map[string]*versionReads{}}
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

// sharedVersion returns clientID's auth version as read by a read that
// started after the call did, so it is as fresh as a read of the call's
// own: every change committed before the call is in it. Calls that arrive
// while a read is in flight cannot use that one (it may have started
// before a change they must see); they share the next, which starts as
// soon as the one in flight ends. Under a burst of one client's signed
// requests that is about two reads per wave of requests instead of one
// per request; a lone request reads at once, as before.
func (c *authCache) sharedVersion(ctx context.Context, clientID string, read func(context.Context, string) (string, error)) (string, error) {
	c.mu.Lock()
	vr := c.versions[clientID]
	if vr == nil {
		vr = &versionReads{}
		c.versions[clientID] = vr
	}
	if !vr.running {
		vr.running = true
		c.mu.Unlock()
		v, err := read(ctx, clientID)
		c.readDone(clientID, vr, read)
		return v, err
	}
	r := vr.next
	if r == nil {
		r = &versionRead{done: make(chan struct{})}
		vr.next = r
	}
	r.waiters++
	c.mu.Unlock()
	select {
	case <-r.done:
		return r.v, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// readDone ends the read in flight of vr, and starts the next one when a
// call waits for it. The next read belongs to all its waiters, so no one
// waiter's context ends it; each waiter stops waiting on its own.
func (c *authCache) readDone(clientID string, vr *versionReads, read func(context.Context, string) (string, error)) {
	c.mu.Lock()
	r := vr.next
	vr.next = nil
	if r == nil {
		vr.running = false
		delete(c.versions, clientID)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), sharedReadTimeout)
		r.v, r.err = read(ctx, clientID)
		cancel()
		close(r.done)
		c.readDone(clientID, vr, read)
	}()
}

// sharedReadTimeout bounds a shared auth version read, which no caller's
// context ends.
const sharedReadTimeout = 30 * time.Second
