package store

import (
	"context"
	"time"

	"github.com/lethe-privacy/lethe"
)

// Reviews keeps what operators decide about requests: holds placed and
// ended, tasks retried and skipped, failed requests reopened, and the
// durable record of a bulk retry.
type Reviews interface {
	// PlaceHold stores an active hold and returns its id.
	PlaceHold(ctx context.Context, h Hold) (int64, error)
	// ListHolds returns a request's holds, active and ended, oldest first.
	ListHolds(ctx context.Context, requestID string) ([]Hold, error)
	// EndHolds ends the request's active holds of the given reasons (all
	// when empty) and returns how many it ended.
	EndHolds(ctx context.Context, p EndHoldsParams) (int, error)
	// DueWaitingPeriods returns up to limit ids of held requests whose
	// active waiting-period hold ends at or before now, earliest first.
	DueWaitingPeriods(ctx context.Context, now time.Time, limit int) ([]string, error)

	// ReopenRequest moves a request from (From, FromStage) to (To,
	// ToStage) like UpdateRequestState, and clears what its end set
	// (completed_at, outcome) so it reads as open again: re-drive of a
	// failed request.
	ReopenRequest(ctx context.Context, p UpdateRequestStateParams) (bool, error)
	// RetryTask puts a failed task back to pending with a fresh attempt
	// budget, keeping the report of what earlier attempts did (and
	// whether one of them was lost), and forgets its wait record. It
	// returns the task as it was and whether it changed it.
	RetryTask(ctx context.Context, requestID, target string, at time.Time) (lethe.Task, bool, error)
	// SkipTask ends a task that is not done (pending, running or failed)
	// as skipped with reason as its last error, and reports whether it did.
	SkipTask(ctx context.Context, requestID, target, reason string, at time.Time) (bool, error)
	// DeleteTasks deletes a request's tasks (a request re-driven from
	// resolve gets new ones).
	DeleteTasks(ctx context.Context, requestID string) error
	// FailedTasksOf returns up to limit failed tasks on b.Target that
	// ended at or before b.Cutoff, whose request can be re-driven (failed
	// and not closed, or running) and that b has not retried yet, oldest
	// first.
	FailedTasksOf(ctx context.Context, b BulkRetry, limit int) ([]lethe.Task, error)
	// SupersedeReceipt replaces a request's receipt: a failed request
	// re-driven to its end gets the receipt of that end. The digests of
	// both stay in its audit chain.
	SupersedeReceipt(ctx context.Context, r Receipt) error

	// CreateBulkRetry stores a bulk retry to be worked by a job.
	CreateBulkRetry(ctx context.Context, b BulkRetry) error
	// GetBulkRetry returns a bulk retry, or ErrNotFound.
	GetBulkRetry(ctx context.Context, id string) (BulkRetry, error)
	// MarkBulkRetried records that bulk retry id retried the task and
	// reports whether it was not recorded yet.
	MarkBulkRetried(ctx context.Context, id, requestID, target string) (bool, error)
	// FinishBulkRetry marks a bulk retry finished.
	FinishBulkRetry(ctx context.Context, id string, at time.Time) error
}

// Hold is one hold placed on a request.
type Hold struct {
	ID        int64
	RequestID string
	Reason    lethe.HoldReason
	Note      string    // an operator's free text; never an identity
	Until     time.Time // when a waiting period ends; zero otherwise
	PlacedAt  time.Time
	PlacedBy  string // operator name; "" for the service
	EndedAt   time.Time
	EndedAs   HoldEnd
	EndedBy   string
}

// Active reports whether the hold has not ended.
func (h Hold) Active() bool { return h.EndedAt.IsZero() }

// HoldEnd is how a hold ended.
type HoldEnd string

const (
	HoldApproved HoldEnd = "approved" // an operator let erasure start
	HoldReleased HoldEnd = "released" // an operator lifted a legal hold
	HoldExpired  HoldEnd = "expired"  // the waiting period passed
	HoldDenied   HoldEnd = "denied"   // the request was denied
	HoldCanceled HoldEnd = "canceled" // the request was canceled
)

// EndHoldsParams ends a request's active holds.
type EndHoldsParams struct {
	RequestID string
	Reasons   []lethe.HoldReason // empty: every active hold
	As        HoldEnd
	By        string
	At        time.Time
}

// BulkRetry is an operator's "retry every failed task of Target": the
// tasks that had failed by Cutoff.
type BulkRetry struct {
	ID         string
	Target     string
	Cutoff     time.Time
	Actor      lethe.Actor
	ActorID    string
	Retried    int // tasks retried so far
	CreatedAt  time.Time
	FinishedAt time.Time
}
