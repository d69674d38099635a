// Package ratelimit decides whether a caller may make one more request.
//
// Every limit is a sliding window with a block: at most Rule.Limit requests
// are let through in any Rule.Window, whichever instant it starts at (a
// fixed window would let 2*Limit through across its boundary); the request
// that goes over blocks the key for Rule.Block from that moment. While
// blocked every request is refused and none of them extends the block (so
// a client that keeps retrying is let back in on time). Refused requests
// are not counted.
//
// State lives in the process (Memory) when one process serves the
// database, as on SQLite; otherwise outside it (Redis, or the lethe
// database through store.RateLimits, taken in leases by Store), so several
// lethe processes serving one database share one limit. Every implementation runs the conformance
// suite in ratelimittest.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe/internal/store"
)

// Rule is one limit: Limit requests per Window, then a Block.
type Rule struct {
	Limit  int
	Window time.Duration
	// Block is how long a key stays refused after going over. Zero refuses
	// only until the oldest counted request leaves the window.
	Block time.Duration
}

// Validate reports whether r can be enforced.
func (r Rule) Validate() error {
	switch {
	case r.Limit < 1:
		return fmt.Errorf("rate limit: limit must be at least 1, got %d", r.Limit)
	case r.Window <= 0:
		return fmt.Errorf("rate limit: window must be positive, got %s", r.Window)
	case r.Block < 0:
		return fmt.Errorf("rate limit: block must not be negative, got %s", r.Block)
	}
	return nil
}

// Limiter counts requests per key.
type Limiter interface {
	// Allow counts one request for key under r. When refused, retryAfter
	// says how long until a request would be allowed again.
	Allow(ctx context.Context, key string, r Rule) (ok bool, retryAfter time.Duration, err error)
}

// Rules is a default rule with per-client overrides.
type Rules struct {
	Default Rule
	// PerClient overrides Default for the clients it names (by lethe
	// client id).
	PerClient map[string]Rule
}

// For returns the rule for clientID.
func (rs Rules) For(clientID string) Rule {
	if r, ok := rs.PerClient[clientID]; ok {
		return r
	}
	return rs.Default
}

// Validate checks the default and every override.
func (rs Rules) Validate() error {
	if err := rs.Default.Validate(); err != nil {
		return err
	}
	for id, r := range rs.PerClient {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("client %s: %w", id, err)
		}
	}
	return nil
}

// RetryAfterSeconds is the Retry-After header value for d: whole seconds,
// rounded up so a client that waits exactly that long is let in, and at
// least 1.
func RetryAfterSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// Open returns the Limiter named by spec, the value of --ratelimit:
// "memory" keeps state in this process; "database" keeps it in the lethe
// database (st); a redis:// or rediss:// URL keeps it in that Redis. ""
// picks memory when st is a SQLite store (one process per database) and
// the database otherwise. The returned func releases what Open opened.
func Open(ctx context.Context, spec string, st store.RateLimits, now func() time.Time) (Limiter, func() error, error) {
	if d, ok := st.(interface{ Dialect() string }); ok && spec == "" && d.Dialect() == "sqlite" {
		spec = "memory"
	}
	switch {
	case spec == "memory":
		return NewMemory(now), func() error { return nil }, nil
	case spec == "" || spec == "database":
		return NewStore(st, now), func() error { return nil }, nil
	case strings.HasPrefix(spec, "redis://") || strings.HasPrefix(spec, "rediss://"):
		r, err := OpenRedis(ctx, spec, now)
		if err != nil {
			return nil, nil, err
		}
		return r, r.Close, nil
	}
	// spec may be a URL with a password; do not echo it.
	return nil, nil, errors.New(`rate limit: --ratelimit must be "memory", "database" or a redis:// URL`)
}
