package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// AppendAudit implements store.Audit. It normalises e.Time in place (UTC,
// microseconds) because that is the time the hash covers.
func (q *queries) AppendAudit(ctx context.Context, e *lethe.AuditEvent) error {
	if e.Type == "" || e.Actor == "" || e.Time.IsZero() {
		return errors.New("append audit: Type, Actor and Time are required")
	}
	e.Time = normTime(e.Time)
	details := e.Details
	if details == nil {
		details = map[string]string{}
	}
	db, err := json.Marshal(details)
	if err != nil {
		return fmt.Errorf("append audit: encode details: %w", err)
	}
	err = q.atomic(ctx, func(q *queries) error {
		if q.d.LockAuditChain != "" {
			if _, err := q.exec(ctx, q.d.LockAuditChain, e.RequestID); err != nil {
				return fmt.Errorf("lock chain: %w", err)
			}
		}
		var prev string
		err := q.queryRow(ctx, `SELECT hash FROM audit_events WHERE request_id = ?
			ORDER BY seq DESC LIMIT 1`, e.RequestID).Scan(&prev)
		if err != nil && !errors.Is(notFound(err), store.ErrNotFound) {
			return fmt.Errorf("read chain head: %w", err)
		}
		hash := store.AuditHash(prev, e)
		// The unique (request_id, prev_hash) constraint is the last line of
		// defence: should two appends ever read the same head, one fails
		// instead of the chain forking.
		var seq int64
		err = q.queryRow(ctx, `INSERT INTO audit_events
			(request_id, time, actor, actor_id, type, details, prev_hash, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
			e.RequestID, q.ts(e.Time), e.Actor, e.ActorID, e.Type, string(db), prev, hash).Scan(&seq)
		if err != nil {
			if q.d.IsUniqueViolation(err) {
				return store.ErrConflict
			}
			return err
		}
		e.Seq, e.PrevHash, e.Hash = seq, prev, hash
		return nil
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// ListAudit implements store.Audit.
func (q *queries) ListAudit(ctx context.Context, requestID string) ([]lethe.AuditEvent, error) {
	rows, err := q.query(ctx, `SELECT seq, request_id, time, actor, actor_id, type, details, prev_hash, hash
		FROM audit_events WHERE request_id = ? ORDER BY seq`, requestID)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	es, err := collect(rows, func(rows Rows) (lethe.AuditEvent, error) {
		var e lethe.AuditEvent
		var details string
		err := rows.Scan(&e.Seq, &e.RequestID, dbTime{&e.Time}, &e.Actor, &e.ActorID, &e.Type, &details, &e.PrevHash, &e.Hash)
		if err != nil {
			return e, err
		}
		if err := json.Unmarshal([]byte(details), &e.Details); err != nil {
			return e, fmt.Errorf("decode details of event %d: %w", e.Seq, err)
		}
		if len(e.Details) == 0 {
			e.Details = nil
		}
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return es, nil
}
