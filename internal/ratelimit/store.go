package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lethe-privacy/lethe/internal/store"
)

// Store is a Limiter whose state is in the lethe database, shared by every
// process on it. Writing the key's row before every request would make
// that row the bottleneck of a busy client, so a process takes tokens in
// leases and spends them from memory; the row is written once per lease.
//
// The limit stays exact across processes because the store counts a
// lease's tokens from the moment it grants them, as requests made at the
// lease's end, and a process spends them only before that end: whatever
// instant a window starts at, every request let through in it is counted
// in it by the time anyone else asks. When the lease ends (at the
// process's next take for the key) the unspent tokens are given back and
// the spent ones re-dated to the last request they let through, so the
// window then slides exactly as if each had been taken alone.
//
// A lease is never bigger than the key's demand: a key starts at one token
// per take, and the lease doubles each time one is spent before it ends,
// up to maxLease of the limit; one that ends unspent shrinks to what was
// used. The store grants extra tokens only while the key is below half its
// limit, so near the limit every request is decided on its own: a token
// idle in one process can make another refuse early only if more than
// half the limit is taken elsewhere within one lease period. A refusal with a block is kept in memory until
// the block ends (nothing can lift a block early), so a blocked client's
// retries cost nothing.
//
// What leases cost: a process that goes idle holding unspent tokens keeps
// them counted until its next request for that key, or a window after the
// lease end; and while a lease is outstanding a key's window ends up to
// leasePeriod later than exact for the tokens still in it.
type Store struct {
	rl  store.RateLimits
	now func() time.Time

	mu    sync.Mutex
	keys  map[string]*storeKey
	calls int
}

type storeKey struct {
	mu      sync.Mutex // held across the store call: one take per key at a time
	size    int        // tokens to ask for on the next take
	lease   string     // id of the outstanding lease; "" when there is none
	left    int        // tokens of the lease not yet spent
	spent   int        // extra tokens of the lease spent
	until   time.Time  // the lease (or the last single take) ends
	last    time.Time  // the last request let through
	blocked time.Time  // refused until then; zero when not known blocked
	window  time.Duration
}

var _ Limiter = (*Store)(nil)

const (
	// maxLeasePeriod bounds how long a lease's tokens may be spent: the
	// longest a window may end late, and a lease be kept from others.
	maxLeasePeriod = time.Second
	// maxLease is the largest lease as a share of the limit (1/16: 3 of
	// the s2s contract's 50, 37 of 600).
	maxLease = 16
)

// leasePeriod is how long a lease taken under r lasts: a tenth of the
// window, at most maxLeasePeriod.
func leasePeriod(r Rule) time.Duration {
	return min(r.Window/10, maxLeasePeriod)
}

// NewStore returns a Limiter over rl. now is the clock (nil: time.Now).
func NewStore(rl store.RateLimits, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{rl: rl, now: now, keys: map[string]*storeKey{}}
}

// Allow implements Limiter.
func (s *Store) Allow(ctx context.Context, key string, r Rule) (bool, time.Duration, error) {
	if err := r.Validate(); err != nil {
		return false, 0, err
	}
	if key == "" {
		return false, 0, errors.New("rate limit: empty key")
	}
	k := s.key(key, r)
	k.mu.Lock()
	defer k.mu.Unlock()
	// Read the clock under the key's lock, so the requests of one key are
	// let through in the order of their times.
	now := s.now()
	if now.Before(k.blocked) {
		return false, k.blocked.Sub(now), nil
	}
	if k.left > 0 && now.Before(k.until) && !now.Before(k.last) {
		k.left--
		k.spent++
		k.last = now
		return true, 0, nil
	}

	// The lease is spent or over: size the next one by how this one went.
	switch {
	case k.size == 0:
		k.size = 1
	case k.left == 0 && now.Before(k.until):
		k.size = min(2*k.size, max(1, r.Limit/maxLease))
	case k.left > 0:
		k.size = max(1, k.spent+1)
	}
	p := store.TakeRateLimitParams{Key: key, Limit: r.Limit, Window: r.Window, Block: r.Block, Now: now, Want: k.size}
	if k.lease != "" {
		p.Settle = &store.RateLimitSettle{Lease: k.lease, Spent: k.spent, LastUse: k.last}
	}
	if p.Want > 1 {
		p.Lease, p.LeaseUntil = leaseID(), now.Add(leasePeriod(r))
	}
	granted, retry, err := s.rl.TakeRateLimit(ctx, p)
	if err != nil {
		// The old lease stays to be settled next time; settling twice
		// changes nothing.
		return false, 0, fmt.Errorf("rate limit: %w", err)
	}
	k.lease, k.left, k.spent = "", 0, 0
	k.until = now.Add(leasePeriod(r))
	if granted == 0 {
		if r.Block > 0 {
			// With a block every refusal is one, and a block only ends
			// by its time.
			k.blocked = now.Add(retry)
		}
		return false, retry, nil
	}
	k.last = now
	if granted > 1 {
		k.lease, k.left = p.Lease, granted-1
	}
	return true, 0, nil
}

// key returns key's state, creating it, and now and then drops the states
// that hold nothing (no lease to settle, no block) and are past their
// lease period.
func (s *Store) key(key string, r Rule) *storeKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls%sweepEvery == 0 {
		s.sweep(s.now())
	}
	k := s.keys[key]
	if k == nil {
		k = &storeKey{}
		s.keys[key] = k
	}
	k.window = r.Window
	return k
}

func (s *Store) sweep(now time.Time) {
	for key, k := range s.keys {
		if !k.mu.TryLock() {
			continue // in use
		}
		// A lease a window past its end no longer counts in the store:
		// nothing is left to settle.
		idle := now.After(k.until) && !now.Before(k.blocked) && (k.lease == "" || now.After(k.until.Add(k.window)))
		k.mu.Unlock()
		if idle {
			delete(s.keys, key)
		}
	}
}

// leaseID names a lease in the store: random, so processes never collide.
func leaseID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
