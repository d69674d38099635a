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
// concurrent takes can never together exceed p.Limit. A row of
// rate_limit_hits counts n requests; a lease's row is named by its id so
// a later Settle can find it.
func (q *queries) TakeRateLimit(ctx context.Context, p store.TakeRateLimitParams) (int, time.Duration, error) {
	if p.Key == "" || p.Limit < 1 || p.Window <= 0 || p.Block < 0 || p.Now.IsZero() || p.Want < 0 {
		return 0, 0, errors.New("take rate limit: key, limit >= 1, window > 0, block >= 0, want >= 0 and now are required")
	}
	if p.Want > 1 && (p.Lease == "" || !p.LeaseUntil.After(p.Now)) {
		return 0, 0, errors.New("take rate limit: a lease needs an id and an end after now")
	}
	if st := p.Settle; st != nil && (st.Lease == "" || st.Spent < 0 || (st.Spent > 0 && st.LastUse.IsZero())) {
		return 0, 0, errors.New("take rate limit: a settle needs the lease id, spent >= 0 and the last use")
	}
	now := normTime(p.Now)
	var granted int
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
		if st := p.Settle; st != nil {
			// Give back what the lease did not spend and date what it did
			// at its last request: no earlier than any request it let
			// through, so the window around each is still counted in
			// full. Clearing the name makes a settle repeated after an
			// unknown commit outcome change nothing.
			if st.Spent == 0 {
				_, err = q.exec(ctx, `DELETE FROM rate_limit_hits WHERE key = ? AND lease = ?`, p.Key, st.Lease)
			} else {
				_, err = q.exec(ctx, `UPDATE rate_limit_hits SET n = ?, at = ?, lease = '' WHERE key = ? AND lease = ?`,
					st.Spent, q.ts(normTime(st.LastUse)), p.Key, st.Lease)
			}
			if err != nil {
				return err
			}
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
		if err := q.queryRow(ctx, `SELECT COALESCE(SUM(n), 0), MIN(at) FROM rate_limit_hits WHERE key = ?`, p.Key).
			Scan(&n, dbTime{&oldest}); err != nil {
			return err
		}
		switch {
		case n < p.Limit:
			granted = 1
			// Extra tokens only up to half the limit: past it, a token
			// idle in one process could make another refuse (and block)
			// a request the limit allows.
			extra := min(p.Want-1, p.Limit/2-n-1)
			if extra > 0 {
				granted += extra
				_, err = q.exec(ctx, `INSERT INTO rate_limit_hits (key, at, n, lease) VALUES (?, ?, 1, ''), (?, ?, ?, ?)`,
					p.Key, q.ts(now), p.Key, q.ts(normTime(p.LeaseUntil)), extra, p.Lease)
			} else {
				_, err = q.exec(ctx, `INSERT INTO rate_limit_hits (key, at) VALUES (?, ?)`, p.Key, q.ts(now))
			}
			if err != nil {
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
		return 0, 0, fmt.Errorf("take rate limit: %w", err)
	}
	return granted, retry, nil
}
