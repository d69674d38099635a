package store

import (
	"context"
	"time"

	"github.com/lethe-privacy/lethe"
)

// TaskWaits keeps what the pipeline needs while a target works on an
// erasure asynchronously: the connector's checkpoint (sealed: it may be a
// URL naming the subject), the token of the URL the target may confirm
// at, and a confirmation that arrived there. The record belongs
// to a running task; it is deleted when the task ends (by the database, in
// the transaction that ends it) and with its request.
type TaskWaits interface {
	// TaskWait returns the task's wait record, or the zero TaskWait when
	// it has none.
	TaskWait(ctx context.Context, requestID, target string) (TaskWait, error)
	// SetTaskPending records a pending answer on a running task: it stores
	// checkpoint (replacing the previous one; "" clears it) and reason as
	// the task's last error, and takes back the attempt StartTaskAttempt
	// counted, since waiting is not a failed attempt. first reports
	// whether this is the task's first pending answer; ok is false (and
	// nothing changes) when the task is not running.
	SetTaskPending(ctx context.Context, p SetTaskPendingParams) (first, ok bool, err error)
	// TaskConfirmationToken returns the token that names the task in the
	// URL its target confirms at (connector.Subject.CallbackToken),
	// creating it on first use; every later call returns the same token,
	// so a repeated call to the target carries the same URL. ErrNotFound
	// when the task does not exist, ErrConflict when it has ended.
	TaskConfirmationToken(ctx context.Context, requestID, target string, at time.Time) (string, error)
	// FindTaskByConfirmationToken returns the task whose confirmation
	// token is token (looked up by keyed hash), or ErrNotFound.
	FindTaskByConfirmationToken(ctx context.Context, token string) (lethe.Task, error)
	// RecordTaskCompletion stores a target's confirmation on a running
	// task that has none yet and reports whether it did.
	RecordTaskCompletion(ctx context.Context, requestID, target string, c TaskCompletion, at time.Time) (bool, error)
}

// SetTaskPendingParams is one pending answer of a target.
type SetTaskPendingParams struct {
	RequestID  string
	Target     string
	Checkpoint string // "" clears it
	Reason     string // redacted; kept as the task's last error
	At         time.Time
}

// TaskWait is a task's wait record.
type TaskWait struct {
	Checkpoint   string
	PendingSince time.Time       // first pending answer; zero if none yet
	Polls        int             // pending answers so far
	Completion   *TaskCompletion // set once the target confirmed by callback
}

// TaskCompletion is a confirmation received by callback.
type TaskCompletion struct {
	Failed bool         `json:"failed,omitempty"`
	Reason string       `json:"reason,omitempty"`
	Report lethe.Report `json:"report"`
}
