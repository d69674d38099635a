package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe/internal/store"
)

const callbackCols = `id, request_id, seq, status, client_id, url, body, state, created_at, ended_at, format`

func (q *queries) scanCallbackEvent(s scanner) (*store.CallbackEvent, error) {
	e := &store.CallbackEvent{}
	var body string
	err := s.Scan(&e.ID, &e.RequestID, &e.Seq, &e.Status, &e.ClientID, &e.URL, &body, &e.State,
		dbTime{&e.CreatedAt}, dbTime{&e.EndedAt}, &e.Format)
	if err != nil {
		return nil, err
	}
	e.Body = []byte(body)
	if e.URL, err = q.openURL("callback_events", e.ID, e.URL); err != nil {
		return nil, err
	}
	return e, nil
}

// NextCallbackSeq implements store.StatusEvents.
func (q *queries) NextCallbackSeq(ctx context.Context, requestID string) (int, error) {
	var seq int
	if err := q.queryRow(ctx, `SELECT coalesce(max(seq), 0) + 1 FROM callback_events WHERE request_id = ? AND seq > 0`,
		requestID).Scan(&seq); err != nil {
		return 0, fmt.Errorf("next callback seq: %w", err)
	}
	return seq, nil
}

// NextReminderSeq implements store.StatusEvents.
func (q *queries) NextReminderSeq(ctx context.Context, requestID string) (int, error) {
	var seq int
	if err := q.queryRow(ctx, `SELECT coalesce(min(seq), 0) - 1 FROM callback_events WHERE request_id = ? AND seq < 0`,
		requestID).Scan(&seq); err != nil {
		return 0, fmt.Errorf("next reminder seq: %w", err)
	}
	return seq, nil
}

// CreateCallbackEvent implements store.StatusEvents. Events of one request
// are created by its state changes, which the request's compare-and-set
// already serialises; the unique (request_id, seq) is the backstop should
// two ever race.
func (q *queries) CreateCallbackEvent(ctx context.Context, e *store.CallbackEvent) error {
	seqOK := e.Seq >= 1 || (e.Seq < 0 && e.Format == store.CallbackFormatReminder)
	if e.ID == "" || e.RequestID == "" || !seqOK || !e.Status.Valid() || e.URL == "" || len(e.Body) == 0 || e.CreatedAt.IsZero() {
		return errors.New("create callback event: ID, RequestID, Seq, Status, URL, Body and CreatedAt are required")
	}
	e.CreatedAt = normTime(e.CreatedAt)
	// DO NOTHING rather than a failing insert: on postgres a failed
	// statement would abort the caller's whole transaction.
	n, err := q.exec(ctx, `INSERT INTO callback_events (`+callbackCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		e.ID, e.RequestID, e.Seq, e.Status, e.ClientID, q.sealURL("callback_events", e.ID, e.URL), string(e.Body), store.CallbackPending,
		q.ts(e.CreatedAt), nil, e.Format)
	if err != nil {
		return fmt.Errorf("create callback event: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("create callback event: %w", store.ErrConflict)
	}
	e.State, e.EndedAt = store.CallbackPending, time.Time{}
	return nil
}

// GetCallbackEvent implements store.StatusEvents.
func (q *queries) GetCallbackEvent(ctx context.Context, id string) (*store.CallbackEvent, error) {
	e, err := q.scanCallbackEvent(q.queryRow(ctx, `SELECT `+callbackCols+` FROM callback_events WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("get callback event: %w", notFound(err))
	}
	return e, nil
}

// ListCallbackEvents implements store.StatusEvents.
func (q *queries) ListCallbackEvents(ctx context.Context, requestID string) ([]store.CallbackEvent, error) {
	rows, err := q.query(ctx, `SELECT `+callbackCols+` FROM callback_events WHERE request_id = ? ORDER BY seq`, requestID)
	if err != nil {
		return nil, fmt.Errorf("list callback events: %w", err)
	}
	es, err := collect(rows, func(rows Rows) (store.CallbackEvent, error) {
		e, err := q.scanCallbackEvent(rows)
		if err != nil {
			return store.CallbackEvent{}, err
		}
		return *e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list callback events: %w", err)
	}
	if len(es) == 0 {
		return nil, nil
	}
	rows, err = q.query(ctx, `SELECT a.event_id, a.attempt, a.time, a.duration_us, a.http_status, a.error
		FROM callback_attempts a JOIN callback_events e ON e.id = a.event_id
		WHERE e.request_id = ? ORDER BY a.event_id, a.attempt`, requestID)
	if err != nil {
		return nil, fmt.Errorf("list callback attempts: %w", err)
	}
	type row struct {
		event string
		a     store.CallbackAttempt
	}
	as, err := collect(rows, func(rows Rows) (row, error) {
		var r row
		var us int64
		err := rows.Scan(&r.event, &r.a.Attempt, dbTime{&r.a.Time}, &us, &r.a.HTTPStatus, &r.a.Error)
		r.a.Duration = time.Duration(us) * time.Microsecond
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("list callback attempts: %w", err)
	}
	idx := make(map[string]int, len(es))
	for i, e := range es {
		idx[e.ID] = i
	}
	for _, r := range as {
		if i, ok := idx[r.event]; ok {
			es[i].Attempts = append(es[i].Attempts, r.a)
		}
	}
	return es, nil
}

// RecordCallbackAttempt implements store.StatusEvents.
func (q *queries) RecordCallbackAttempt(ctx context.Context, eventID string, a store.CallbackAttempt) (int, error) {
	if a.Time.IsZero() {
		return 0, errors.New("record callback attempt: Time is required")
	}
	var n int
	err := q.atomic(ctx, func(q *queries) error {
		var state store.CallbackState
		err := q.queryRow(ctx, `SELECT state FROM callback_events WHERE id = ?`+q.d.ForUpdate, eventID).Scan(&state)
		if err != nil {
			return notFound(err)
		}
		if state != store.CallbackPending {
			return store.ErrConflict
		}
		if err := q.queryRow(ctx, `SELECT coalesce(max(attempt), 0) + 1 FROM callback_attempts WHERE event_id = ?`,
			eventID).Scan(&n); err != nil {
			return err
		}
		_, err = q.exec(ctx, `INSERT INTO callback_attempts (event_id, attempt, time, duration_us, http_status, error)
			VALUES (?, ?, ?, ?, ?, ?)`,
			eventID, n, q.ts(a.Time), a.Duration.Microseconds(), a.HTTPStatus, a.Error)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("record callback attempt: %w", err)
	}
	return n, nil
}

// EndCallbackEvent implements store.StatusEvents.
func (q *queries) EndCallbackEvent(ctx context.Context, eventID string, state store.CallbackState, at time.Time) (bool, error) {
	if state != store.CallbackDelivered && state != store.CallbackAbandoned {
		return false, fmt.Errorf("end callback event: invalid state %q", state)
	}
	// Once delivery has ended the URL is needed no more: it goes, as the
	// request's own copy went at minimisation.
	n, err := q.exec(ctx, `UPDATE callback_events SET state = ?, ended_at = ?, url = '' WHERE id = ? AND state = ?`,
		state, q.ts(at), eventID, store.CallbackPending)
	if err != nil {
		return false, fmt.Errorf("end callback event: %w", err)
	}
	return n == 1, nil
}
