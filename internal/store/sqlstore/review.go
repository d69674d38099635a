package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

const holdCols = `id, request_id, reason, note, until, placed_at, placed_by, ended_at, ended_as, ended_by`

func scanHold(rows Rows) (store.Hold, error) {
	var h store.Hold
	err := rows.Scan(&h.ID, &h.RequestID, &h.Reason, &h.Note, dbTime{&h.Until}, dbTime{&h.PlacedAt},
		&h.PlacedBy, dbTime{&h.EndedAt}, &h.EndedAs, &h.EndedBy)
	return h, err
}

// PlaceHold implements store.Reviews.
func (q *queries) PlaceHold(ctx context.Context, h store.Hold) (int64, error) {
	if h.RequestID == "" || h.Reason == "" || h.PlacedAt.IsZero() {
		return 0, errors.New("place hold: RequestID, Reason and PlacedAt are required")
	}
	var id int64
	err := q.queryRow(ctx, `INSERT INTO request_holds (request_id, reason, note, until, placed_at, placed_by)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
		h.RequestID, h.Reason, h.Note, q.ts(h.Until), q.ts(h.PlacedAt), h.PlacedBy).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("place hold: %w", err)
	}
	return id, nil
}

// ListHolds implements store.Reviews.
func (q *queries) ListHolds(ctx context.Context, requestID string) ([]store.Hold, error) {
	rows, err := q.query(ctx, `SELECT `+holdCols+` FROM request_holds WHERE request_id = ? ORDER BY id`, requestID)
	if err != nil {
		return nil, fmt.Errorf("list holds: %w", err)
	}
	hs, err := collect(rows, scanHold)
	if err != nil {
		return nil, fmt.Errorf("list holds: %w", err)
	}
	return hs, nil
}

// EndHolds implements store.Reviews.
func (q *queries) EndHolds(ctx context.Context, p store.EndHoldsParams) (int, error) {
	if p.As == "" || p.At.IsZero() {
		return 0, errors.New("end holds: As and At are required")
	}
	query := `UPDATE request_holds SET ended_at = ?, ended_as = ?, ended_by = ?
		WHERE request_id = ? AND ended_at IS NULL`
	args := []any{q.ts(p.At), p.As, p.By, p.RequestID}
	if len(p.Reasons) > 0 {
		query += ` AND reason IN (` + placeholders(len(p.Reasons)) + `)`
		for _, r := range p.Reasons {
			args = append(args, r)
		}
	}
	n, err := q.exec(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("end holds: %w", err)
	}
	return int(n), nil
}

// DueWaitingPeriods implements store.Reviews.
func (q *queries) DueWaitingPeriods(ctx context.Context, now time.Time, limit int) ([]string, error) {
	out, err := q.ids(ctx, `SELECT h.request_id FROM request_holds h JOIN requests r ON r.id = h.request_id
		WHERE h.ended_at IS NULL AND h.until IS NOT NULL AND h.until <= ? AND h.reason = ? AND r.status = ?
		ORDER BY h.until, h.request_id LIMIT ?`,
		q.ts(now), lethe.HoldWaitingPeriod, lethe.StatusHeld, limit)
	if err != nil {
		return nil, fmt.Errorf("due waiting periods: %w", err)
	}
	return out, nil
}

// ReopenRequest implements store.Reviews.
func (q *queries) ReopenRequest(ctx context.Context, p store.UpdateRequestStateParams) (bool, error) {
	if p.To.Terminal() || !p.To.Valid() || p.ToStage == "" || len(p.From) == 0 || len(p.FromStage) == 0 {
		return false, fmt.Errorf("reopen request: invalid move to %q/%q", p.To, p.ToStage)
	}
	query := `UPDATE requests SET status = ?, stage = ?, updated_at = ?, completed_at = NULL, outcome = ''
		WHERE id = ? AND status IN (` + placeholders(len(p.From)) + `) AND stage IN (` + placeholders(len(p.FromStage)) + `)`
	args := []any{p.To, p.ToStage, q.ts(p.At), p.ID}
	for _, s := range p.From {
		args = append(args, s)
	}
	for _, s := range p.FromStage {
		args = append(args, s)
	}
	n, err := q.exec(ctx, query, args...)
	if err != nil {
		return false, fmt.Errorf("reopen request: %w", err)
	}
	return n == 1, nil
}

// RetryTask implements store.Reviews. The attempts start again from zero
// so the task gets the pipeline's whole budget; the progress's count of
// recorded reports is moved back by the same number, so a report an
// earlier attempt lost still makes the final counts lower bounds.
func (q *queries) RetryTask(ctx context.Context, requestID, target string, at time.Time) (lethe.Task, bool, error) {
	var before lethe.Task
	changed := false
	err := q.atomic(ctx, func(q *queries) error {
		t, err := scanTask(q.queryRow(ctx, `SELECT `+taskCols+` FROM tasks WHERE request_id = ? AND target = ?`+q.d.ForUpdate, requestID, target))
		if err != nil {
			return notFound(err)
		}
		before = t
		if t.State != lethe.TaskFailed {
			return nil
		}
		tally, _, err := q.readTally(ctx, requestID, target, false)
		if err != nil {
			return err
		}
		b, err := json.Marshal(progressDoc{Items: tally.Progress.Items, Recorded: tally.Recorded - t.Attempts})
		if err != nil {
			return fmt.Errorf("encode progress: %w", err)
		}
		if _, err := q.exec(ctx, `UPDATE tasks SET state = ?, attempts = 0, last_error = '', started_at = NULL,
			finished_at = NULL, progress = ?, updated_at = ?, has_wait = FALSE WHERE request_id = ? AND target = ? AND state = ?`,
			lethe.TaskPending, string(b), q.ts(at), requestID, target, lethe.TaskFailed); err != nil {
			return err
		}
		// The old wait's token and pending time belong to attempts that
		// are over; a retry waits afresh.
		if _, err := q.exec(ctx, `DELETE FROM task_waits WHERE request_id = ? AND target = ?`, requestID, target); err != nil {
			return err
		}
		changed = true
		return nil
	})
	if err != nil {
		return lethe.Task{}, false, fmt.Errorf("retry task: %w", err)
	}
	return before, changed, nil
}

// SkipTask implements store.Reviews.
func (q *queries) SkipTask(ctx context.Context, requestID, target, reason string, at time.Time) (bool, error) {
	n, err := q.exec(ctx, `UPDATE tasks SET state = ?, last_error = ?, finished_at = ?, updated_at = ?
		WHERE request_id = ? AND target = ? AND state IN (?, ?, ?)`,
		lethe.TaskSkipped, reason, q.ts(at), q.ts(at), requestID, target,
		lethe.TaskPending, lethe.TaskRunning, lethe.TaskFailed)
	if err != nil {
		return false, fmt.Errorf("skip task: %w", err)
	}
	return n == 1, nil
}

// DeleteTasks implements store.Reviews.
func (q *queries) DeleteTasks(ctx context.Context, requestID string) error {
	if _, err := q.exec(ctx, `DELETE FROM tasks WHERE request_id = ?`, requestID); err != nil {
		return fmt.Errorf("delete tasks: %w", err)
	}
	return nil
}

// FailedTasksOf implements store.Reviews.
func (q *queries) FailedTasksOf(ctx context.Context, b store.BulkRetry, limit int) ([]lethe.Task, error) {
	rows, err := q.query(ctx, `SELECT t.request_id, t.target, t.state, t.attempts, t.last_error, t.report,
			t.started_at, t.finished_at, t.updated_at
		FROM tasks t JOIN requests r ON r.id = t.request_id
		WHERE t.target = ? AND t.state = ? AND t.finished_at <= ?
		AND ((r.status = ? AND r.stage = ?) OR r.status = ?)
		AND NOT EXISTS (SELECT 1 FROM bulk_retry_tasks m
			WHERE m.bulk_id = ? AND m.request_id = t.request_id AND m.target = t.target)
		ORDER BY t.finished_at, t.request_id LIMIT ?`,
		b.Target, lethe.TaskFailed, q.ts(b.Cutoff), lethe.StatusFailed, lethe.StageDone, lethe.StatusRunning, b.ID, limit)
	if err != nil {
		return nil, fmt.Errorf("failed tasks of %s: %w", b.Target, err)
	}
	ts, err := collect(rows, scanTaskRows)
	if err != nil {
		return nil, fmt.Errorf("failed tasks of %s: %w", b.Target, err)
	}
	return ts, nil
}

// SupersedeReceipt implements store.Reviews.
func (q *queries) SupersedeReceipt(ctx context.Context, r store.Receipt) error {
	if r.RequestID == "" || r.KeyID == "" || len(r.Body) == 0 || r.IssuedAt.IsZero() {
		return errors.New("supersede receipt: RequestID, KeyID, Body and IssuedAt are required")
	}
	_, err := q.exec(ctx, `INSERT INTO receipts (request_id, client_id, key_id, body, partner_body, issued_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO UPDATE SET
			client_id = excluded.client_id, key_id = excluded.key_id, body = excluded.body,
			partner_body = excluded.partner_body, issued_at = excluded.issued_at`,
		r.RequestID, r.ClientID, r.KeyID, string(r.Body), partnerBody(r), q.ts(r.IssuedAt))
	if err != nil {
		return fmt.Errorf("supersede receipt: %w", err)
	}
	return nil
}

// CreateBulkRetry implements store.Reviews.
func (q *queries) CreateBulkRetry(ctx context.Context, b store.BulkRetry) error {
	if b.ID == "" || b.Target == "" || b.Cutoff.IsZero() || b.CreatedAt.IsZero() {
		return errors.New("create bulk retry: ID, Target, Cutoff and CreatedAt are required")
	}
	if _, err := q.exec(ctx, `INSERT INTO bulk_retries (id, target, cutoff, actor, actor_id, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`, b.ID, b.Target, q.ts(b.Cutoff), b.Actor, b.ActorID, q.ts(b.CreatedAt)); err != nil {
		return fmt.Errorf("create bulk retry: %w", err)
	}
	return nil
}

// GetBulkRetry implements store.Reviews.
func (q *queries) GetBulkRetry(ctx context.Context, id string) (store.BulkRetry, error) {
	var b store.BulkRetry
	err := q.queryRow(ctx, `SELECT id, target, cutoff, actor, actor_id,
		(SELECT count(*) FROM bulk_retry_tasks m WHERE m.bulk_id = bulk_retries.id), created_at, finished_at
		FROM bulk_retries WHERE id = ?`, id).Scan(&b.ID, &b.Target, dbTime{&b.Cutoff}, &b.Actor, &b.ActorID,
		&b.Retried, dbTime{&b.CreatedAt}, dbTime{&b.FinishedAt})
	if err != nil {
		return b, fmt.Errorf("get bulk retry: %w", notFound(err))
	}
	return b, nil
}

// MarkBulkRetried implements store.Reviews.
func (q *queries) MarkBulkRetried(ctx context.Context, id, requestID, target string) (bool, error) {
	n, err := q.exec(ctx, `INSERT INTO bulk_retry_tasks (bulk_id, request_id, target) VALUES (?, ?, ?)
		ON CONFLICT DO NOTHING`, id, requestID, target)
	if err != nil {
		return false, fmt.Errorf("mark bulk retried: %w", err)
	}
	return n == 1, nil
}

// FinishBulkRetry implements store.Reviews.
func (q *queries) FinishBulkRetry(ctx context.Context, id string, at time.Time) error {
	if _, err := q.exec(ctx, `UPDATE bulk_retries SET finished_at = ? WHERE id = ? AND finished_at IS NULL`, q.ts(at), id); err != nil {
		return fmt.Errorf("finish bulk retry: %w", err)
	}
	return nil
}
