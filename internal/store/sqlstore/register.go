package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// ExtendRequest implements store.Extensions.
func (q *queries) ExtendRequest(ctx context.Context, e store.Extension) (bool, error) {
	if e.RequestID == "" || e.Due.IsZero() || e.PreviousDue.IsZero() || e.At.IsZero() || e.Actor == "" {
		return false, errors.New("extend request: RequestID, Due, PreviousDue, At and Actor are required")
	}
	done := false
	err := q.atomic(ctx, func(q *queries) error {
		var id string
		err := q.queryRow(ctx, `INSERT INTO request_extensions
			(request_id, previous_due_at, due_at, reason, actor, actor_id, extended_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING request_id`,
			e.RequestID, q.ts(e.PreviousDue), q.ts(e.Due), e.Reason, e.Actor, e.ActorID, q.ts(e.At)).Scan(&id)
		if errors.Is(notFound(err), store.ErrNotFound) {
			return nil // extended before
		}
		if err != nil {
			return err
		}
		// The warnings were about the old date; the sweep warns again
		// about the new one.
		n, err := q.exec(ctx, `UPDATE requests SET due_at = ?, updated_at = ?,
			due_soon_flagged_at = NULL, overdue_flagged_at = NULL WHERE id = ?`,
			q.ts(e.Due), q.ts(e.At), e.RequestID)
		if err != nil {
			return err
		}
		if n != 1 {
			return store.ErrNotFound
		}
		done = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("extend request: %w", err)
	}
	return done, nil
}

// GetExtension implements store.Extensions.
func (q *queries) GetExtension(ctx context.Context, requestID string) (store.Extension, error) {
	e := store.Extension{RequestID: requestID}
	err := q.queryRow(ctx, `SELECT previous_due_at, due_at, reason, actor, actor_id, extended_at
		FROM request_extensions WHERE request_id = ?`, requestID).
		Scan(dbTime{&e.PreviousDue}, dbTime{&e.Due}, &e.Reason, &e.Actor, &e.ActorID, dbTime{&e.At})
	if err != nil {
		return store.Extension{}, fmt.Errorf("get extension: %w", notFound(err))
	}
	return e, nil
}

// operatorActors are the actors whose events the register lists as
// operator actions: people and automation acting by hand, not the
// pipeline or a partner.
var operatorActors = []any{lethe.ActorAdmin, lethe.ActorOperator}

// ArchiveRequest implements store.Register.
func (q *queries) ArchiveRequest(ctx context.Context, requestID string) (bool, error) {
	r, err := q.GetRequest(ctx, requestID, store.Scope{All: true})
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("archive request: %w", err)
	}
	if !r.Status.Terminal() || r.CompletedAt.IsZero() {
		return false, fmt.Errorf("archive request: request is %s, not closed", r.Status)
	}
	targets := make([]store.RegisterTarget, len(r.Tasks))
	for i, t := range r.Tasks {
		targets[i] = store.RegisterTarget{Target: t.Target, State: t.State}
	}
	var extendedFrom time.Time
	if ext, err := q.GetExtension(ctx, requestID); err == nil {
		extendedFrom = ext.PreviousDue
	} else if !errors.Is(err, store.ErrNotFound) {
		return false, fmt.Errorf("archive request: %w", err)
	}
	actions, err := q.operatorActions(ctx, []string{requestID})
	if err != nil {
		return false, fmt.Errorf("archive request: %w", err)
	}
	tj, err := json.Marshal(targets)
	if err != nil {
		return false, fmt.Errorf("archive request: %w", err)
	}
	acts := actions[requestID]
	if acts == nil {
		acts = []store.OperatorAction{}
	}
	aj, err := json.Marshal(acts)
	if err != nil {
		return false, fmt.Errorf("archive request: %w", err)
	}
	_, err = q.exec(ctx, `INSERT INTO request_register (request_id, client_id, regulation, status, outcome,
			received_at, due_at, extended_from, closed_at, targets, operator_actions)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		r.ID, r.ClientID, r.Regulation, r.Status, r.Outcome, q.ts(r.ReceivedAt), q.ts(r.DueAt),
		q.ts(extendedFrom), q.ts(r.CompletedAt), string(tj), string(aj))
	if err != nil {
		return false, fmt.Errorf("archive request: %w", err)
	}
	return true, nil
}

// operatorActions returns the operator actions of each request in ids.
func (q *queries) operatorActions(ctx context.Context, ids []string) (map[string][]store.OperatorAction, error) {
	out := map[string][]store.OperatorAction{}
	if len(ids) == 0 {
		return out, nil
	}
	args := append(append([]any{}, anys(ids)...), operatorActors...)
	rows, err := q.query(ctx, `SELECT request_id, time, type, actor, actor_id FROM audit_events
		WHERE request_id IN (`+placeholders(len(ids))+`) AND actor IN (`+placeholders(len(operatorActors))+`)
		ORDER BY seq`, args...)
	if err != nil {
		return nil, fmt.Errorf("operator actions: %w", err)
	}
	type row struct {
		id string
		a  store.OperatorAction
	}
	rs, err := collect(rows, func(rows Rows) (row, error) {
		var r row
		err := rows.Scan(&r.id, dbTime{&r.a.Time}, &r.a.Type, &r.a.Actor, &r.a.ActorID)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("operator actions: %w", err)
	}
	for _, r := range rs {
		out[r.id] = append(out[r.id], r.a)
	}
	return out, nil
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// RegisterActivity implements store.Register.
func (q *queries) RegisterActivity(ctx context.Context, from time.Time) ([]store.RegisterTimes, error) {
	rows, err := q.query(ctx, `SELECT received_at, completed_at, status FROM requests WHERE received_at >= ?
		UNION ALL
		SELECT received_at, closed_at, status FROM request_register WHERE received_at >= ?
		ORDER BY 1`, q.ts(from), q.ts(from))
	if err != nil {
		return nil, fmt.Errorf("register activity: %w", err)
	}
	out, err := collect(rows, func(rows Rows) (store.RegisterTimes, error) {
		var r store.RegisterTimes
		err := rows.Scan(dbTime{&r.ReceivedAt}, dbTime{&r.ClosedAt}, &r.Status)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("register activity: %w", err)
	}
	return out, nil
}

// FailingTasks implements store.Register. A request is failed and not
// closed for good while its stage is done (lethe.Redrivable); requests
// that are closed have left the live table's open states.
func (q *queries) FailingTasks(ctx context.Context) (map[string]int, error) {
	rows, err := q.query(ctx, `SELECT t.target, COUNT(*) FROM tasks t JOIN requests r ON r.id = t.request_id
		WHERE t.state = ? AND (r.status IN (?, ?, ?) OR (r.status = ? AND r.stage = ?))
		GROUP BY t.target`, lethe.TaskFailed,
		lethe.StatusReceived, lethe.StatusHeld, lethe.StatusRunning, lethe.StatusFailed, lethe.StageDone)
	if err != nil {
		return nil, fmt.Errorf("failing tasks: %w", err)
	}
	type count struct {
		target string
		n      int
	}
	cs, err := collect(rows, func(rows Rows) (count, error) {
		var c count
		err := rows.Scan(&c.target, &c.n)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("failing tasks: %w", err)
	}
	out := make(map[string]int, len(cs))
	for _, c := range cs {
		out[c.target] = c.n
	}
	return out, nil
}

// RegisterPage implements store.Register. One statement reads both the
// live requests and the register table, so a request the purge moves
// between them while the page is read appears once; the live requests'
// tasks and actions are read after it, and a request archived meanwhile
// is then taken from the register instead.
func (q *queries) RegisterPage(ctx context.Context, f store.RegisterFilter) ([]store.RegisterEntry, error) {
	scope, scopeArgs, ok := scopeWhere(f.Scope)
	if !ok {
		return nil, nil
	}
	if f.Limit <= 0 {
		return nil, errors.New("register page: Limit must be positive")
	}
	order, cursor := "", " > ?"
	if f.Newest {
		order = " DESC"
		if f.After != "" {
			cursor = " < ?"
		}
	}
	where := func(idCol string) (string, []any) {
		conds := []string{idCol + cursor}
		args := []any{f.After}
		if f.Newest && f.After == "" {
			args = []any{""}
			conds[0] = idCol + " <> ?"
		}
		if f.ClientID != "" {
			client := f.ClientID
			if client == "admin" {
				client = ""
			}
			conds = append(conds, "client_id = ?")
			args = append(args, client)
		}
		if f.Regulation != "" {
			conds = append(conds, "regulation = ?")
			args = append(args, f.Regulation)
		}
		if f.Open {
			conds = append(conds, "status IN ('received', 'held', 'running')")
		}
		if !f.DueBefore.IsZero() {
			conds = append(conds, "due_at < ?")
			args = append(args, q.ts(f.DueBefore))
		}
		if f.FailingTarget != "" {
			if idCol == "id" {
				conds = append(conds, "EXISTS (SELECT 1 FROM tasks t WHERE t.request_id = id AND t.target = ? AND t.state = 'failed')")
				args = append(args, f.FailingTarget)
			} else {
				// The register row keeps targets as JSON written by
				// archiveEntry: [{"target":"x","state":"failed"},...].
				conds = append(conds, "targets LIKE ?")
				args = append(args, `%{"target":`+jsonString(f.FailingTarget)+`,"state":"failed"}%`)
			}
		}
		if scope != "" {
			conds = append(conds, scope)
			args = append(args, scopeArgs...)
		}
		if f.Status != "" {
			conds = append(conds, "status = ?")
			args = append(args, f.Status)
		}
		if !f.ReceivedFrom.IsZero() {
			conds = append(conds, "received_at >= ?")
			args = append(args, q.ts(f.ReceivedFrom))
		}
		if !f.ReceivedBefore.IsZero() {
			conds = append(conds, "received_at < ?")
			args = append(args, q.ts(f.ReceivedBefore))
		}
		return strings.Join(conds, " AND "), args
	}
	lw, largs := where("id")
	rw, rargs := where("request_id")
	rows, err := q.query(ctx, `SELECT id, client_id, regulation, status, outcome, received_at, due_at, completed_at, 0, '', ''
			FROM requests WHERE `+lw+`
		UNION ALL
		SELECT request_id, client_id, regulation, status, outcome, received_at, due_at, closed_at, 1, targets, operator_actions
			FROM request_register WHERE `+rw+`
		ORDER BY 1`+order+` LIMIT ?`, append(append(largs, rargs...), f.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("register page: %w", err)
	}
	type scanned struct {
		e        store.RegisterEntry
		tj, aj   string
		archived int64
	}
	rs, err := collect(rows, func(rows Rows) (scanned, error) {
		var s scanned
		err := rows.Scan(&s.e.RequestID, &s.e.ClientID, &s.e.Regulation, &s.e.Status, &s.e.Outcome,
			dbTime{&s.e.ReceivedAt}, dbTime{&s.e.DueAt}, dbTime{&s.e.ClosedAt}, &s.archived, &s.tj, &s.aj)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("register page: %w", err)
	}
	var live, archived []string
	for _, s := range rs {
		if s.archived == 1 {
			archived = append(archived, s.e.RequestID)
		} else {
			live = append(live, s.e.RequestID)
		}
	}
	tasks, exts, actions, err := q.liveRegisterDetails(ctx, live)
	if err != nil {
		return nil, fmt.Errorf("register page: %w", err)
	}
	// Archived while this page was read: the register row holds what the
	// details no longer do. Its extension is read with it (below).
	moved, err := q.archivedEntries(ctx, live)
	if err != nil {
		return nil, fmt.Errorf("register page: %w", err)
	}
	arch, err := q.archivedEntries(ctx, archived)
	if err != nil {
		return nil, fmt.Errorf("register page: %w", err)
	}
	out := make([]store.RegisterEntry, 0, len(rs))
	for _, s := range rs {
		id := s.e.RequestID
		if e, ok := moved[id]; ok {
			out = append(out, e)
			continue
		}
		if e, ok := arch[id]; ok {
			out = append(out, e)
			continue
		}
		if s.archived == 1 {
			continue // deleted by the register purge since the first read
		}
		e := s.e
		e.Targets = tasks[id]
		e.Actions = actions[id]
		e.ExtendedFrom = exts[id]
		out = append(out, e)
	}
	return out, nil
}

// liveRegisterDetails reads the tasks, extensions and operator actions of
// live requests.
func (q *queries) liveRegisterDetails(ctx context.Context, ids []string) (map[string][]store.RegisterTarget, map[string]time.Time, map[string][]store.OperatorAction, error) {
	tasks := map[string][]store.RegisterTarget{}
	exts := map[string]time.Time{}
	if len(ids) == 0 {
		return tasks, exts, nil, nil
	}
	rows, err := q.query(ctx, `SELECT request_id, target, state FROM tasks
		WHERE request_id IN (`+placeholders(len(ids))+`) ORDER BY request_id, target`, anys(ids)...)
	if err != nil {
		return nil, nil, nil, err
	}
	type trow struct {
		id string
		t  store.RegisterTarget
	}
	ts, err := collect(rows, func(rows Rows) (trow, error) {
		var r trow
		err := rows.Scan(&r.id, &r.t.Target, &r.t.State)
		return r, err
	})
	if err != nil {
		return nil, nil, nil, err
	}
	for _, r := range ts {
		tasks[r.id] = append(tasks[r.id], r.t)
	}
	rows, err = q.query(ctx, `SELECT request_id, previous_due_at FROM request_extensions
		WHERE request_id IN (`+placeholders(len(ids))+`)`, anys(ids)...)
	if err != nil {
		return nil, nil, nil, err
	}
	type erow struct {
		id   string
		prev time.Time
	}
	es, err := collect(rows, func(rows Rows) (erow, error) {
		var r erow
		err := rows.Scan(&r.id, dbTime{&r.prev})
		return r, err
	})
	if err != nil {
		return nil, nil, nil, err
	}
	for _, r := range es {
		exts[r.id] = r.prev
	}
	actions, err := q.operatorActions(ctx, ids)
	if err != nil {
		return nil, nil, nil, err
	}
	return tasks, exts, actions, nil
}

// archivedEntries reads the register rows of ids that exist.
func (q *queries) archivedEntries(ctx context.Context, ids []string) (map[string]store.RegisterEntry, error) {
	out := map[string]store.RegisterEntry{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.query(ctx, `SELECT request_id, client_id, regulation, status, outcome, received_at, due_at,
			extended_from, closed_at, targets, operator_actions
		FROM request_register WHERE request_id IN (`+placeholders(len(ids))+`)`, anys(ids)...)
	if err != nil {
		return nil, err
	}
	es, err := collect(rows, func(rows Rows) (store.RegisterEntry, error) {
		var e store.RegisterEntry
		var tj, aj string
		err := rows.Scan(&e.RequestID, &e.ClientID, &e.Regulation, &e.Status, &e.Outcome, dbTime{&e.ReceivedAt},
			dbTime{&e.DueAt}, dbTime{&e.ExtendedFrom}, dbTime{&e.ClosedAt}, &tj, &aj)
		if err != nil {
			return e, err
		}
		if err := json.Unmarshal([]byte(tj), &e.Targets); err != nil {
			return e, fmt.Errorf("register targets: %w", err)
		}
		if err := json.Unmarshal([]byte(aj), &e.Actions); err != nil {
			return e, fmt.Errorf("register actions: %w", err)
		}
		// Live entries have nil for none; so do archived ones.
		if len(e.Targets) == 0 {
			e.Targets = nil
		}
		if len(e.Actions) == 0 {
			e.Actions = nil
		}
		e.Archived = true
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		out[e.RequestID] = e
	}
	return out, nil
}

// PurgeRegister implements store.Register.
func (q *queries) PurgeRegister(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	n, err := q.exec(ctx, `DELETE FROM request_register WHERE request_id IN (
		SELECT request_id FROM request_register WHERE closed_at < ? ORDER BY closed_at, request_id LIMIT ?)`,
		q.ts(cutoff), limit)
	if err != nil {
		return 0, fmt.Errorf("purge register: %w", err)
	}
	return int(n), nil
}

// ListReceipts implements store.Register.
func (q *queries) ListReceipts(ctx context.Context, scope store.Scope, before string, limit int) ([]store.Receipt, error) {
	cond, args, ok := scopeWhere(scope)
	if !ok {
		return nil, nil
	}
	query := `SELECT request_id, client_id, key_id, issued_at FROM receipts WHERE (? = '' OR request_id < ?)`
	args = append([]any{before, before}, args...)
	if cond != "" {
		query += " AND " + cond
	}
	rows, err := q.query(ctx, query+` ORDER BY request_id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list receipts: %w", err)
	}
	out, err := collect(rows, func(rows Rows) (store.Receipt, error) {
		var r store.Receipt
		err := rows.Scan(&r.RequestID, &r.ClientID, &r.KeyID, dbTime{&r.IssuedAt})
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("list receipts: %w", err)
	}
	return out, nil
}

// jsonString is s as a JSON string literal.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
