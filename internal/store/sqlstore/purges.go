package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe"
)

// FinishedRequestsBefore implements store.Purges. A failed request still
// open to a re-drive (stage done) is not finished: it keeps its sealed
// identities until it is closed (FailedOpenBefore).
func (q *queries) FinishedRequestsBefore(ctx context.Context, cutoff time.Time, limit int) ([]string, error) {
	out, err := q.ids(ctx, `SELECT id FROM requests
		WHERE completed_at IS NOT NULL AND completed_at < ?
			AND (status IN (?, ?, ?) OR (status = ? AND stage = ?))
		ORDER BY completed_at, id LIMIT ?`,
		q.ts(cutoff), lethe.StatusCompleted, lethe.StatusCanceled, lethe.StatusDenied,
		lethe.StatusFailed, lethe.StageClosed, limit)
	if err != nil {
		return nil, fmt.Errorf("finished requests before: %w", err)
	}
	return out, nil
}

// FailedOpenBefore implements store.Purges.
func (q *queries) FailedOpenBefore(ctx context.Context, cutoff time.Time, limit int) ([]string, error) {
	out, err := q.ids(ctx, `SELECT id FROM requests
		WHERE completed_at IS NOT NULL AND completed_at < ? AND status = ? AND stage = ?
		ORDER BY completed_at, id LIMIT ?`,
		q.ts(cutoff), lethe.StatusFailed, lethe.StageDone, limit)
	if err != nil {
		return nil, fmt.Errorf("failed open before: %w", err)
	}
	return out, nil
}

// DeleteRequest implements store.Purges. Identities and tasks go with the
// request (ON DELETE CASCADE).
func (q *queries) DeleteRequest(ctx context.Context, requestID string) (bool, error) {
	n, err := q.exec(ctx, `DELETE FROM requests WHERE id = ?`, requestID)
	if err != nil {
		return false, fmt.Errorf("delete request: %w", err)
	}
	delete(q.held, requestID) // gone: no longer known to exist
	return n == 1, nil
}

// ReceiptsIssuedBefore implements store.Purges.
func (q *queries) ReceiptsIssuedBefore(ctx context.Context, cutoff time.Time, limit int) ([]string, error) {
	out, err := q.ids(ctx, `SELECT request_id FROM receipts WHERE issued_at < ?
		ORDER BY issued_at, request_id LIMIT ?`, q.ts(cutoff), limit)
	if err != nil {
		return nil, fmt.Errorf("receipts issued before: %w", err)
	}
	return out, nil
}

// DeleteProof implements store.Purges.
func (q *queries) DeleteProof(ctx context.Context, requestID string) error {
	err := q.atomic(ctx, func(q *queries) error {
		for _, stmt := range []string{
			`DELETE FROM requests WHERE id = ?`,
			`DELETE FROM audit_events WHERE request_id = ?`,
			`DELETE FROM receipts WHERE request_id = ?`,
		} {
			if _, err := q.exec(ctx, stmt, requestID); err != nil {
				return err
			}
		}
		delete(q.chains, requestID) // the chain is gone: a new one starts empty
		delete(q.held, requestID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete proof: %w", err)
	}
	return nil
}
