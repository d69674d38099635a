package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe/internal/store"
)

// TakeRateLimit implements store.RateLimits.
//
// The decision is made in Go on the key's row locked for the transaction
// (FOR UPDATE on postgres, the write lock BEGIN IMMEDIATE takes on
// sqlite), so every process sharing the database sees one log of hits and
// concurrent takes can never together exceed p.Limit.
func (q *queries) TakeRateLimit(ctx context.Context, p store.TakeRateLimitParams) (bool, time.Duration, error) {
	if p.Key == "" || p.Limit < 1 || p.Window <= 0 || p.Block < 0 || p.Now.IsZero() {
		return false, 0, errors.New("take rate limit: key, limit >= 1, window > 0, block >= 0 and now are required")
	}
	now := normTime(p.Now)
	var allowed bool
	var retry time.Duration
	err := q.atomic(ctx, func(q *queries) error {
		// Create the row first: FOR UPDATE locks nothing that does not
		// exist, and two first takes must not both insert. The row is the
		// key's lock and holds its block.
		if _, err := q.exec(ctx, `INSERT INTO rate_limits (key, window_start, count)
			VALUES (?, ?, 0) ON CONFLICT (key) DO NOTHING`, p.Key, q.ts(now)); err != nil {
			return err
		}
		var blocked time.Time
		err := q.queryRow(ctx, `SELECT blocked_until FROM rate_limits WHERE key = ?`+q.d.ForUpdate, p.Key).
			Scan(dbTime{&blocked})
		if err != nil {
			return err
		}
		if !blocked.IsZero() && now.Before(blocked) {
			// Blocked: refuse without writing, so the block is not extended.
			retry = blocked.Sub(now)
			return nil
		}
		// A hit exactly one window old no longer counts.
		if _, err := q.exec(ctx, `DELETE FROM rate_limit_hits WHERE key = ? AND at <= ?`,
			p.Key, q.ts(now.Add(-p.Window))); err != nil {
			return err
		}
		var n int
		var oldest time.Time
		if err := q.queryRow(ctx, `SELECT COUNT(*), MIN(at) FROM rate_limit_hits WHERE key = ?`, p.Key).
			Scan(&n, dbTime{&oldest}); err != nil {
			return err
		}
		switch {
		case n < p.Limit:
			allowed = true
			if _, err := q.exec(ctx, `INSERT INTO rate_limit_hits (key, at) VALUES (?, ?)`, p.Key, q.ts(now)); err != nil {
				return err
			}
			if blocked.IsZero() {
				return nil
			}
			blocked = time.Time{} // the block is over
		case p.Block > 0:
			blocked = now.Add(p.Block)
			retry = p.Block
		default:
			// No block period: refused until the oldest hit leaves the
			// window.
			retry = oldest.Add(p.Window).Sub(now)
			return nil
		}
		_, err = q.exec(ctx, `UPDATE rate_limits SET blocked_until = ? WHERE key = ?`, q.ts(blocked), p.Key)
		return err
	})
	if err != nil {
		return false, 0, fmt.Errorf("take rate limit: %w", err)
	}
	return allowed, retry, nil
}
