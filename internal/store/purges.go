package store

import (
	"context"
	"time"
)

// Purges removes what retention no longer allows to keep: first a finished
// request's details, later its proof.
type Purges interface {
	// FinishedRequestsBefore returns up to limit ids of terminal requests
	// completed before cutoff, oldest first; failed requests only once
	// closed (lethe.StageClosed).
	FinishedRequestsBefore(ctx context.Context, cutoff time.Time, limit int) ([]string, error)
	// FailedOpenBefore returns up to limit ids of failed requests not yet
	// closed (still re-drivable) that failed before cutoff, oldest first.
	FailedOpenBefore(ctx context.Context, cutoff time.Time, limit int) ([]string, error)
	// DeleteRequest deletes a request with its identities' hashes and its
	// tasks; false when it did not exist. Its receipt and audit events stay.
	DeleteRequest(ctx context.Context, requestID string) (bool, error)
	// ReceiptsIssuedBefore returns up to limit request ids whose receipt
	// was issued before cutoff, oldest first.
	ReceiptsIssuedBefore(ctx context.Context, cutoff time.Time, limit int) ([]string, error)
	// DeleteProof deletes a request's receipt and audit events (and the
	// request, if it is still there): the end of the legal retention.
	DeleteProof(ctx context.Context, requestID string) error
}
