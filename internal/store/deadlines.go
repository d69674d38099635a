package store

import (
	"context"
	"time"
)

// DeadlineFlag names a deadline warning the sweep records once per
// request.
type DeadlineFlag string

const (
	// FlagDueSoon: the request was still open within the warning period
	// before its due date.
	FlagDueSoon DeadlineFlag = "due_soon"
	// FlagOverdue: the request was still open past its due date.
	FlagOverdue DeadlineFlag = "overdue"
)

// Deadlines finds requests an operator still has to act on (open ones:
// received, running or held; and failed ones not yet closed) close to or
// past their due date, for the deadline sweep, the metrics and the list
// API's filters (ListFilter.Open, ListFilter.DueBefore).
type Deadlines interface {
	// CountDeadlines returns how many open requests are due within
	// [now, now+warnBefore) (dueSoon) and how many are due before now
	// (overdue). The two counts do not overlap.
	CountDeadlines(ctx context.Context, now time.Time, warnBefore time.Duration) (dueSoon, overdue int64, err error)
	// UnflaggedDeadlines returns up to limit ids of open requests due
	// before before that do not carry flag yet, earliest due first.
	UnflaggedDeadlines(ctx context.Context, flag DeadlineFlag, before time.Time, limit int) ([]string, error)
	// FlagDeadline records flag on an open request that does not carry it
	// yet and reports whether it did, so that a sweep running twice (or
	// racing a request that just closed) records each warning once.
	FlagDeadline(ctx context.Context, requestID string, flag DeadlineFlag, at time.Time) (bool, error)
}
