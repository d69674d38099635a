package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe/internal/store"
)

// openStatuses is the SQL condition of an open request (lethe.Status.Open:
// received, running or held), written out to match the unique index of
// migration 00015 so the planner can use it.
const openStatuses = "status IN ('received', 'running', 'held')"

// trackedRequests is the SQL condition of a request whose deadline still
// matters: an open one, or a failed one not yet closed (lethe.Redrivable),
// which an operator must still re-drive or close. It matches the partial
// index of migration 00015.
const trackedRequests = "(status IN ('received', 'running', 'held') OR (status = 'failed' AND stage = 'done'))"

// deadlineColumn maps a flag to its column; the column name never comes
// from input.
func deadlineColumn(flag store.DeadlineFlag) (string, error) {
	switch flag {
	case store.FlagDueSoon:
		return "due_soon_flagged_at", nil
	case store.FlagOverdue:
		return "overdue_flagged_at", nil
	}
	return "", fmt.Errorf("unknown deadline flag %q", flag)
}

// CountDeadlines implements store.Deadlines.
func (q *queries) CountDeadlines(ctx context.Context, now time.Time, warnBefore time.Duration) (dueSoon, overdue int64, err error) {
	// One pass over the open requests' index; SUM of CASE works the same
	// on both dialects (FILTER is PostgreSQL-only before SQLite 3.30).
	err = q.queryRow(ctx, `SELECT
		COALESCE(SUM(CASE WHEN due_at >= ? THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN due_at < ? THEN 1 ELSE 0 END), 0)
		FROM requests WHERE `+trackedRequests+` AND due_at < ?`,
		q.ts(now), q.ts(now), q.ts(now.Add(warnBefore))).Scan(&dueSoon, &overdue)
	if err != nil {
		return 0, 0, fmt.Errorf("count deadlines: %w", err)
	}
	return dueSoon, overdue, nil
}

// UnflaggedDeadlines implements store.Deadlines.
func (q *queries) UnflaggedDeadlines(ctx context.Context, flag store.DeadlineFlag, before time.Time, limit int) ([]string, error) {
	col, err := deadlineColumn(flag)
	if err != nil {
		return nil, fmt.Errorf("unflagged deadlines: %w", err)
	}
	rows, err := q.query(ctx, `SELECT id FROM requests
		WHERE `+trackedRequests+` AND due_at < ? AND `+col+` IS NULL
		ORDER BY due_at, id LIMIT ?`, q.ts(before), limit)
	if err != nil {
		return nil, fmt.Errorf("unflagged deadlines: %w", err)
	}
	ids, err := collect(rows, func(rows Rows) (string, error) {
		var id string
		err := rows.Scan(&id)
		return id, err
	})
	if err != nil {
		return nil, fmt.Errorf("unflagged deadlines: %w", err)
	}
	return ids, nil
}

// FlagDeadline implements store.Deadlines.
func (q *queries) FlagDeadline(ctx context.Context, requestID string, flag store.DeadlineFlag, at time.Time) (bool, error) {
	col, err := deadlineColumn(flag)
	if err != nil {
		return false, fmt.Errorf("flag deadline: %w", err)
	}
	n, err := q.exec(ctx, `UPDATE requests SET `+col+` = ?
		WHERE id = ? AND `+trackedRequests+` AND `+col+` IS NULL`, q.ts(at), requestID)
	if err != nil {
		return false, fmt.Errorf("flag deadline: %w", err)
	}
	return n == 1, nil
}
