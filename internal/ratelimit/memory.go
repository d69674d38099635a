package ratelimit

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Memory is a Limiter whose state is in this process: for a lethe that is
// the only process serving its database (SQLite always is), where keeping
// the limits in the database would cost a write transaction before every
// request for nothing. The rules are the store's, decision for decision.
// State is lost on restart: a client blocked just before a restart is let
// in again, and its window starts empty.
type Memory struct {
	now   func() time.Time
	mu    sync.Mutex
	keys  map[string]*memoryKey
	calls int
}

type memoryKey struct {
	hits    []time.Time // let through, oldest first, within the last window
	blocked time.Time   // zero: not blocked
	window  time.Duration
}

var _ Limiter = (*Memory)(nil)

// sweepEvery is how many calls pass between two sweeps of idle keys, which
// keeps the map to the keys seen within their window.
const sweepEvery = 4096

// NewMemory returns an empty in-process Limiter. now is the clock (nil:
// time.Now).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{now: now, keys: map[string]*memoryKey{}}
}

// Allow implements Limiter.
func (m *Memory) Allow(_ context.Context, key string, r Rule) (bool, time.Duration, error) {
	if err := r.Validate(); err != nil {
		return false, 0, err
	}
	if key == "" {
		return false, 0, errors.New("rate limit: empty key")
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.calls%sweepEvery == 0 {
		m.sweep(now)
	}
	k := m.keys[key]
	if k == nil {
		k = &memoryKey{}
		m.keys[key] = k
	}
	k.window = r.Window
	if !k.blocked.IsZero() && now.Before(k.blocked) {
		// Blocked: refused, and the block is not extended.
		return false, k.blocked.Sub(now), nil
	}
	k.expire(now, r.Window)
	switch {
	case len(k.hits) < r.Limit:
		k.hits = append(k.hits, now)
		k.blocked = time.Time{}
		return true, 0, nil
	case r.Block > 0:
		k.blocked = now.Add(r.Block)
		return false, r.Block, nil
	default:
		return false, k.hits[0].Add(r.Window).Sub(now), nil
	}
}

// expire drops the hits that left the window; one exactly a window old no
// longer counts.
func (k *memoryKey) expire(now time.Time, window time.Duration) {
	edge := now.Add(-window)
	i := 0
	for i < len(k.hits) && !k.hits[i].After(edge) {
		i++
	}
	if i > 0 {
		k.hits = append(k.hits[:0], k.hits[i:]...)
	}
}

func (m *Memory) sweep(now time.Time) {
	for key, k := range m.keys {
		k.expire(now, k.window)
		if len(k.hits) == 0 && (k.blocked.IsZero() || !now.Before(k.blocked)) {
			delete(m.keys, key)
		}
	}
}
