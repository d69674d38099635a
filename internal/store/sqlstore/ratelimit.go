package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// TakeRateLimit implements store.RateLimits.
//
// The decision is made in Go on a row locked for the transaction (FOR
// UPDATE on postgres, the write lock BEGIN IMMEDIATE takes on sqlite), so
// every process sharing the database sees one counter and concurrent takes
// can never together exceed limit.
func (q *queries) TakeRateLimit(ctx context.Context, key string, limit int, window, block time.Duration, now time.Time) (bool, time.Duration, error) {
	if key == "" || limit < 1 || window <= 0 || block < 0 || now.IsZero() {
		return false, 0, errors.New("take rate limit: key, limit >= 1, window > 0, block >= 0 and now are required")
	}
	now = normTime(now)
	var allowed bool
	var retry time.Duration
	err := q.atomic(ctx, func(q *queries) error {
		// Create the row first: FOR UPDATE locks nothing that does not exist,
		// and two first takes must not both insert.
		if _, err := q.exec(ctx, `INSERT INTO rate_limits (key, window_start, count)
			VALUES (?, ?, 0) ON CONFLICT (key) DO NOTHING`, key, q.ts(now)); err != nil {
			return err
		}
		var start, blocked time.Time
		var count int
		err := q.queryRow(ctx, `SELECT window_start, count, blocked_until FROM rate_limits
			WHERE key = ?`+q.d.ForUpdate, key).Scan(dbTime{&start}, &count, dbTime{&blocked})
		if err != nil {
			return err
		}
		switch {
		case !blocked.IsZero() && now.Before(blocked):
			// Blocked: refuse without writing, so the block is not extended.
			retry = blocked.Sub(now)
			return nil
		case !blocked.IsZero() || !now.Before(start.Add(window)):
			start, count, blocked = now, 1, time.Time{}
			allowed = true
		case count < limit:
			count++
			allowed = true
		case block > 0:
			count++
			blocked = now.Add(block)
			retry = block
		default:
			// No block period: a plain fixed window, refused until it ends.
			retry = start.Add(window).Sub(now)
			return nil
		}
		_, err = q.exec(ctx, `UPDATE rate_limits SET window_start = ?, count = ?, blocked_until = ? WHERE key = ?`,
			q.ts(start), count, q.ts(blocked), key)
		return err
	})
	if err != nil {
		return false, 0, fmt.Errorf("take rate limit: %w", err)
	}
	return allowed, retry, nil
}
