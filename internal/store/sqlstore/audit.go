package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// AppendAudit implements store.Audit. It normalises e.Time in place (UTC,
// microseconds) because that is the time the hash covers.
func (q *queries) AppendAudit(ctx context.Context, e *lethe.AuditEvent) error {
	if err := q.AppendAudits(ctx, e); err != nil {
		return err
	}
	return nil
}

// AppendAudits appends events, in order, each to its request's chain. It
// fills PrevHash and Hash at once and, like AppendAudit, normalises Time.
// On the pool the events are stored (and Seq filled) before it returns,
// in one INSERT. Inside a Tx they are stored with every other event the
// transaction appends, in one INSERT just before it commits, or before
// its next statement on audit_events (a read of a chain sees its own
// events), which fills their Seq: a step that appends events at several
// points of its transaction pays for one statement, plus, per chain, the
// lock and the read of its head the first time the transaction appends to
// it (a transaction remembers the heads it wrote, which nobody else can
// move while it holds the chain's lock).
func (q *queries) AppendAudits(ctx context.Context, events ...*lethe.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	pending := make([]pendingAudit, len(events))
	for i, e := range events {
		if e.Type == "" || e.Actor == "" || e.Time.IsZero() {
			return errors.New("append audit: Type, Actor and Time are required")
		}
		e.Time = normTime(e.Time)
		d := e.Details
		if d == nil {
			d = map[string]string{}
		}
		b, err := json.Marshal(d)
		if err != nil {
			return fmt.Errorf("append audit: encode details: %w", err)
		}
		pending[i] = pendingAudit{e: e, details: string(b)}
	}
	err := q.atomic(ctx, func(q *queries) error {
		ids := make([]string, len(events))
		for i, e := range events {
			ids[i] = e.RequestID
		}
		if err := q.LockChains(ctx, ids); err != nil {
			return err
		}
		heads := map[string]string{}
		for _, id := range ids {
			heads[id] = q.chains[id]
		}
		for _, e := range events {
			prev := heads[e.RequestID]
			e.PrevHash, e.Hash = prev, store.AuditHash(prev, e)
			heads[e.RequestID] = e.Hash
		}
		// atomic always runs fn in a Tx (the pool's calls in their own), so
		// the events are stored by the time that Tx commits.
		if q.chains == nil {
			q.chains = map[string]string{}
		}
		maps.Copy(q.chains, heads)
		q.pending = append(q.pending, pending...)
		return nil
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// pendingAudit is an event whose hash is computed but which is not
// stored yet, with its encoded details.
type pendingAudit struct {
	e       *lethe.AuditEvent
	details string
}

// auditBatch events go in one INSERT: 8 parameters each, well under every
// database's limit.
const auditBatch = 500

// flushAudit stores the events the transaction appended and has not
// stored yet.
func (q *queries) flushAudit(ctx context.Context) error {
	if len(q.pending) == 0 {
		return nil
	}
	pending := q.pending
	q.pending = nil
	if err := q.insertAudit(ctx, pending); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// insertAudit stores events whose hashes are computed, in order, and fills
// their Seq.
func (q *queries) insertAudit(ctx context.Context, events []pendingAudit) error {
	for batch := range slices.Chunk(events, auditBatch) {
		insert, args := q.auditInsert(batch)
		rows, err := q.db.Query(ctx, q.d.rebind(insert+" RETURNING seq, hash"), args...)
		if err != nil {
			return q.auditInsertErr(err)
		}
		seqs, err := collect(rows, func(rows Rows) (struct {
			seq  int64
			hash string
		}, error) {
			var r struct {
				seq  int64
				hash string
			}
			return r, rows.Scan(&r.seq, &r.hash)
		})
		if err != nil {
			return q.auditInsertErr(err)
		}
		bySeq := make(map[string]int64, len(seqs))
		for _, r := range seqs {
			bySeq[r.hash] = r.seq
		}
		for _, p := range batch {
			seq, ok := bySeq[p.e.Hash]
			if !ok {
				return errors.New("an appended event was not returned")
			}
			p.e.Seq = seq
		}
	}
	return nil
}

// auditInsert is the INSERT of events whose hashes are computed, in order,
// without its RETURNING clause.
func (q *queries) auditInsert(events []pendingAudit) (string, []any) {
	var sb strings.Builder
	sb.WriteString(`INSERT INTO audit_events
		(request_id, time, actor, actor_id, type, details, prev_hash, hash) VALUES `)
	args := make([]any, 0, 8*len(events))
	for i, p := range events {
		e := p.e
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?)")
		args = append(args, e.RequestID, q.ts(e.Time), e.Actor, e.ActorID, e.Type, p.details, e.PrevHash, e.Hash)
	}
	// The unique (request_id, prev_hash) constraint is the last line of
	// defence: should two appends ever read the same head, one fails
	// instead of the chain forking.
	return sb.String(), args
}

// LockChains takes the locks and reads the heads of the audit chains of
// the requests ids, in two statements however many chains, for a
// transaction about to append to all of them (AppendAudits; a group of
// requests ending together takes all of its members' at once). A chain
// the transaction already holds is not read again: nobody else can move
// its head while the transaction holds its lock. Locks are taken in the
// order of the ids, sorted, so two transactions locking overlapping sets
// queue instead of deadlocking. Only inside a transaction: the heads it
// keeps are the transaction's.
func (q *queries) LockChains(ctx context.Context, ids []string) error {
	if !q.inTx {
		return errors.New("lock chains: only inside InTx")
	}
	var todo []string
	for _, id := range ids {
		if _, ok := q.chains[id]; !ok && !slices.Contains(todo, id) {
			todo = append(todo, id)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	slices.Sort(todo)
	if q.d.LockAuditChains != "" {
		if _, err := q.exec(ctx, q.d.LockAuditChains, todo); err != nil {
			return fmt.Errorf("lock chains: %w", err)
		}
	}
	heads := make(map[string]string, len(todo))
	for _, id := range todo {
		heads[id] = ""
	}
	for part := range slices.Chunk(todo, auditBatch) {
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = id
		}
		rows, err := q.db.Query(ctx, q.d.rebind(`SELECT a.request_id, a.hash FROM audit_events a
			WHERE a.request_id IN (`+placeholders(len(part))+`)
			AND a.seq = (SELECT MAX(b.seq) FROM audit_events b WHERE b.request_id = a.request_id)`), args...)
		if err != nil {
			return fmt.Errorf("read chain heads: %w", err)
		}
		got, err := collect(rows, func(rows Rows) ([2]string, error) {
			var r [2]string
			return r, rows.Scan(&r[0], &r[1])
		})
		if err != nil {
			return fmt.Errorf("read chain heads: %w", err)
		}
		for _, r := range got {
			heads[r[0]] = r[1]
		}
	}
	if q.chains == nil {
		q.chains = map[string]string{}
	}
	maps.Copy(q.chains, heads)
	return nil
}

func (q *queries) auditInsertErr(err error) error {
	if q.d.IsUniqueViolation(err) {
		return store.ErrConflict
	}
	return err
}

const auditCols = `seq, request_id, time, actor, actor_id, type, details, prev_hash, hash`

func scanAudit(rows Rows, dest ...any) (lethe.AuditEvent, error) {
	var e lethe.AuditEvent
	var details string
	err := rows.Scan(append(dest, &e.Seq, &e.RequestID, dbTime{&e.Time}, &e.Actor, &e.ActorID, &e.Type, &details, &e.PrevHash, &e.Hash)...)
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
}

// ListAudit implements store.Audit.
func (q *queries) ListAudit(ctx context.Context, requestID string) ([]lethe.AuditEvent, error) {
	if len(q.pending) > 0 && len(q.pending) <= auditBatch && q.d.WritableCTE {
		return q.storeAndListAudit(ctx, requestID)
	}
	rows, err := q.query(ctx, `SELECT `+auditCols+` FROM audit_events WHERE request_id = ? ORDER BY seq`, requestID)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	es, err := collect(rows, func(rows Rows) (lethe.AuditEvent, error) { return scanAudit(rows) })
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return es, nil
}

// storeAndListAudit stores the transaction's pending events and reads a
// chain in one statement. The SELECT on audit_events does not see the
// rows its WITH inserts (one snapshot for the whole statement): they come
// from the INSERT's RETURNING, flagged, which also fills their Seq.
func (q *queries) storeAndListAudit(ctx context.Context, requestID string) ([]lethe.AuditEvent, error) {
	pending := q.pending
	q.pending = nil
	insert, args := q.auditInsert(pending)
	query := `WITH ins AS (` + insert + ` RETURNING ` + auditCols + `)
		SELECT true, ` + auditCols + ` FROM ins
		UNION ALL
		SELECT false, ` + auditCols + ` FROM audit_events WHERE request_id = ?
		ORDER BY seq`
	rows, err := q.db.Query(ctx, q.d.rebind(query), append(args, requestID)...)
	if err != nil {
		return nil, fmt.Errorf("list audit: append audit: %w", q.auditInsertErr(err))
	}
	type row struct {
		fresh bool
		e     lethe.AuditEvent
	}
	all, err := collect(rows, func(rows Rows) (row, error) {
		var r row
		var err error
		r.e, err = scanAudit(rows, &r.fresh)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("list audit: append audit: %w", q.auditInsertErr(err))
	}
	bySeq := make(map[string]int64, len(pending))
	var es []lethe.AuditEvent
	for _, r := range all {
		if r.fresh {
			bySeq[r.e.Hash] = r.e.Seq
		}
		if r.e.RequestID == requestID {
			es = append(es, r.e)
		}
	}
	for _, p := range pending {
		seq, ok := bySeq[p.e.Hash]
		if !ok {
			return nil, errors.New("list audit: append audit: an appended event was not returned")
		}
		p.e.Seq = seq
	}
	return es, nil
}
