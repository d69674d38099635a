package sqlconn

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

var (
	_ connector.BatchEraser  = (*Connector)(nil)
	_ connector.FullReporter = (*Connector)(nil)
)

// FullReports implements connector.FullReporter: every report lists every
// mapped table, and each declared cascade on a line of its own, with the
// retained tables' counts and reasons; and the rows are counted from the
// lines each transaction writes to the ledger as it commits, so a call's
// report is what Changed reads back after it, when no earlier call changed
// anything for the request.
func (c *Connector) FullReports() bool { return true }

// Erase deletes or pseudonymizes the subject's rows, children before
// parents so foreign keys hold and links are followed before they are cut.
// Rows in the report are those changed by this call; on error the report
// holds what was committed before it. See erasure for the transactions.
func (c *Connector) Erase(ctx context.Context, subj connector.Subject) (lethe.Report, error) {
	reps, err := c.erase(ctx, []connector.Subject{subj})
	if reps == nil {
		return lethe.Report{}, err
	}
	return reps[0], err
}

// EraseBatch implements connector.BatchEraser: the subjects' rows are
// changed table by table, every subject's in turn, in transactions shared
// by the subjects, each statement acting for one subject so that each
// report counts exactly that subject's rows (a row two subjects share goes
// to the first). One candidate query per matched column serves them all.
func (c *Connector) EraseBatch(ctx context.Context, subjects []connector.Subject) ([]lethe.Report, error) {
	seen := map[string]bool{}
	for _, s := range subjects {
		if seen[s.RequestID] {
			return nil, fmt.Errorf("target %q: erase batch: a request id is listed twice", c.name)
		}
		seen[s.RequestID] = true
	}
	return c.erase(ctx, subjects)
}

// erasure is one Erase or EraseBatch call. Its changes go in transactions
// of up to batch_size changed rows each, whatever tables and subjects they
// span: a subject with a few rows in every table is one transaction (one
// commit, as hand-written SQL would do it), a large one many, and every
// transaction writes its ledger rows before it commits, so a batch and its
// count commit together or not at all. A failed statement rolls back the
// open transaction; what committed before it stays, is in the ledger, and
// is in the reports.
type erasure struct {
	c    *Connector
	s    schema
	subs []*subjectRun
	// cascades are the declared cascades, read when a mapped table
	// declares one: their lines go in the reports.
	cascades []cascade
	tx       *sql.Tx
	rows     int64 // rows changed in tx
	// stepwise commits after every table of every subject: the way a
	// failed erasure runs again (see erase).
	stepwise bool
}

// subjectRun is one subject's part of an erasure.
type subjectRun struct {
	requestID string
	v         values
	m         *matcher
	// done holds the committed ledger lines: per object and action, the
	// rows changed, through a declared cascade included, as Changed sums
	// them.
	done     map[lineKey]int64
	retained map[*table]int64
	lines    map[lineKey]int64 // the open transaction's ledger lines
	keys     []keptKey         // the open transaction's kept keys
}

type lineKey struct {
	object string
	action lethe.Action
}

// keptKey is a referenced value of an erased parent row (ledgerKeysTable).
type keptKey struct {
	object, column string
	value          any
}

func (c *Connector) erase(ctx context.Context, subjects []connector.Subject) ([]lethe.Report, error) {
	all := values{}
	for _, subj := range subjects {
		for t, vs := range valuesOf(subj.Identities) {
			for _, v := range vs {
				if !containsString(all[t], v) {
					all[t] = append(all[t], v)
				}
			}
		}
	}
	if len(subjects) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, redact(fmt.Errorf("target %q: erase: %w", c.name, err), all.all())
	}
	s, err := c.loadSchema(ctx)
	if err != nil {
		return nil, redact(err, all.all())
	}
	if err := c.ensureLedger(ctx); err != nil {
		return nil, redact(err, all.all())
	}
	// One candidate query per column for every subject's values; each
	// subject's matcher is then read from the memo.
	memo := matchMemo{}
	if _, err := c.matchTables(ctx, all, s, c.tables, memo); err != nil {
		return nil, c.failOp(all, "erase", err)
	}
	e := &erasure{c: c, s: s}
	ids := make([]string, len(subjects))
	for i, subj := range subjects {
		v := valuesOf(subj.Identities)
		m, err := c.matchTables(ctx, v, s, c.tables, memo)
		if err != nil {
			return nil, c.failOp(all, "erase", err)
		}
		e.subs = append(e.subs, &subjectRun{requestID: subj.RequestID, v: v, m: m,
			done: map[lineKey]int64{}, retained: map[*table]int64{}, lines: map[lineKey]int64{}})
		ids[i] = subj.RequestID
	}
	matchers := make([]*matcher, len(e.subs))
	for i, sr := range e.subs {
		matchers[i] = sr.m
	}
	if err := c.loadErased(ctx, ids, matchers); err != nil {
		return nil, redact(fmt.Errorf("target %q: %w", c.name, err), all.all())
	}
	for _, t := range c.tables {
		if len(t.Cascades) > 0 {
			if e.cascades, err = c.cascades(ctx); err != nil {
				return nil, redact(fmt.Errorf("target %q: %w", c.name, err), all.all())
			}
			break
		}
	}
	err = e.run(ctx)
	if err != nil && e.rows > 0 && ctx.Err() == nil {
		// The failed statement took the open transaction's earlier work
		// with it. Run again committing after every step, so that what
		// precedes the failing step is erased and reported (a retained
		// table blocking a delete leaves the other tables done) and the
		// error is the same.
		e.rollback()
		e.stepwise = true
		err = e.run(ctx)
	}
	if err != nil {
		e.rollback()
		err = redact(err, all.all())
	}
	c.stmts.prepareWanted(ctx)
	return e.reports(), err
}

// failOp wraps an error of an operation that is not about one table.
func (c *Connector) failOp(v values, op string, err error) error {
	err = fmt.Errorf("target %q: %s: %w", c.name, op, err)
	if c.d.missing(err) {
		err = connector.Permanent(err)
	}
	return redact(err, v.all())
}

func (e *erasure) run(ctx context.Context) error {
	c := e.c
	for _, t := range c.tables {
		for _, sr := range e.subs {
			var err error
			switch t.Action {
			case lethe.ActionDelete:
				err = e.deleteRows(ctx, sr, t)
			case lethe.ActionPseudonymize:
				err = e.pseudonymizeRows(ctx, sr, t)
			case lethe.ActionRetain:
				sr.retained[t], err = e.countRetained(ctx, sr, t)
			}
			if err != nil {
				return c.fail(sr.v, "erase", t, err)
			}
			if e.stepwise {
				if err := e.commit(ctx); err != nil {
					return c.fail(sr.v, "erase", t, err)
				}
			}
		}
	}
	if err := e.commit(ctx); err != nil {
		return fmt.Errorf("target %q: erase: %w", c.name, err)
	}
	return nil
}

// reports returns each subject's report: the committed ledger lines, in
// the lines and order of Changed (every table, each followed by its
// declared cascades; retained tables as counted).
func (e *erasure) reports() []lethe.Report {
	out := make([]lethe.Report, len(e.subs))
	for i, sr := range e.subs {
		for _, t := range e.c.tables {
			if t.Action == lethe.ActionRetain {
				out[i].Items = append(out[i].Items, item(t, sr.retained[t]))
				continue
			}
			out[i].Items = append(out[i].Items, item(t, sr.done[lineKey{t.Name, t.Action}]))
			if len(t.Cascades) == 0 {
				continue
			}
			for _, cs := range e.cascades {
				if cs.root == t {
					out[i].Items = append(out[i].Items, lethe.ReportItem{Object: cs.fk.table, Action: cs.action(),
						Rows: sr.done[lineKey{cs.fk.table, cs.action()}], Reason: cs.reason()})
				}
			}
		}
	}
	return out
}

// room returns how many rows the next statement may change, committing
// first when the open transaction is full.
func (e *erasure) room(ctx context.Context) (int64, error) {
	if e.rows >= int64(e.c.batch) {
		if err := e.commit(ctx); err != nil {
			return 0, err
		}
	}
	return int64(e.c.batch) - e.rows, nil
}

// txn returns the open transaction, beginning one if needed.
func (e *erasure) txn(ctx context.Context) (*sql.Tx, error) {
	if e.tx != nil {
		return e.tx, nil
	}
	tx, err := e.c.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	e.tx = tx
	return tx, nil
}

func (e *erasure) rollback() {
	if e.tx != nil {
		_ = e.tx.Rollback()
		e.tx = nil
	}
	e.rows = 0
	for _, sr := range e.subs {
		clear(sr.lines)
		sr.keys = nil
	}
}

// commit writes the open transaction's ledger rows and commits it. A
// transaction that changed nothing is rolled back: there is nothing to
// record.
func (e *erasure) commit(ctx context.Context) error {
	if e.tx == nil {
		return nil
	}
	if e.rows == 0 {
		e.rollback()
		return nil
	}
	if err := e.c.record(ctx, e.tx, e.subs); err != nil {
		return err
	}
	if err := e.tx.Commit(); err != nil {
		return err
	}
	e.tx = nil
	e.rows = 0
	for _, sr := range e.subs {
		for k, n := range sr.lines {
			sr.done[k] += n
		}
		clear(sr.lines)
		sr.keys = nil
	}
	return nil
}

// changed notes n rows of t changed for sr in the open transaction, with
// the declared cascades' lines and the referenced values to keep.
func (e *erasure) changed(sr *subjectRun, t *table, action lethe.Action, n int64, cascaded []lethe.ReportItem, refCols []string, refs [][]any) {
	e.rows += n
	sr.lines[lineKey{t.Name, action}] += n
	for _, it := range cascaded {
		sr.lines[lineKey{it.Object, it.Action}] += it.Rows
	}
	for _, row := range refs {
		for i, col := range refCols {
			sr.keys = append(sr.keys, keptKey{object: t.Name, column: col, value: row[i]})
		}
	}
}

// countRetained counts sr's rows of a retain table, in the open
// transaction when there is one.
func (e *erasure) countRetained(ctx context.Context, sr *subjectRun, t *table) (int64, error) {
	q := &query{d: e.c.d}
	stmt := e.c.countOf(q, t, sr.m, e.s, false)
	if stmt == "" {
		return 0, nil
	}
	stmt = "SELECT " + stmt
	var n int64
	err := e.c.scanOne(ctx, e.tx, stmt, q.args, &n)
	return n, err
}

// deleteRows deletes sr's rows of t, as many per statement as the open
// transaction has room for. No ORDER BY: it would tempt the planners to
// walk the primary key in order instead of using the lookups, and deleted
// rows stop matching, so the next statement finds the rest without a
// cursor.
func (e *erasure) deleteRows(ctx context.Context, sr *subjectRun, t *table) error {
	c := e.c
	refCols := referenced(t)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// One statement per batch selects its rows by the subject's key
		// set; the other way, by the condition on t's rows.
		returning := c.returning && len(t.Cascades) == 0
		q := &query{d: c.d}
		var sel string
		if returning {
			sel = c.keySet(q, t, sr.m, e.s)
		} else {
			sel = c.where(q, t, sr.m, e.s)
		}
		if sel == "" {
			return nil
		}
		limit, err := e.room(ctx)
		if err != nil {
			return err
		}
		tx, err := e.txn(ctx)
		if err != nil {
			return err
		}
		var n int64
		if returning {
			n, err = e.deleteReturning(ctx, tx, sr, t, q, sel, limit, refCols)
		} else {
			n, err = e.deleteByKeys(ctx, tx, sr, t, q, sel, limit, refCols)
		}
		if err != nil || n < limit {
			return err
		}
	}
}

// deleteReturning deletes up to limit rows in one statement that also
// returns what the ledger keeps of them (PostgreSQL, SQLite). The rows are
// picked by keys, the subject's key set (keySet) through the indexes, and
// only the rows deleted are locked.
func (e *erasure) deleteReturning(ctx context.Context, tx *sql.Tx, sr *subjectRun, t *table, q *query, keys string, limit int64, refCols []string) (int64, error) {
	c := e.c
	// The limit is a parameter: the statement's text, and so its prepared
	// form, stays the same however full the transaction is.
	stmt := fmt.Sprintf("DELETE FROM %s WHERE %s IN (%s LIMIT %s)",
		c.d.quote(t.Name), c.d.keyCols(t.key), keys, q.arg(limit))
	args := q.args
	if len(refCols) == 0 {
		res, err := c.execContext(ctx, tx, stmt, args...)
		if err != nil {
			return 0, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, err
		}
		e.changed(sr, t, lethe.ActionDelete, n, nil, nil, nil)
		return n, nil
	}
	stmt += " RETURNING " + c.quoteList(refCols)
	refs, err := c.scanAll(ctx, tx, stmt, args, len(refCols))
	if err != nil {
		return 0, err
	}
	n := int64(len(refs))
	e.changed(sr, t, lethe.ActionDelete, n, nil, refCols, refs)
	return n, nil
}

// deleteByKeys selects and locks up to limit rows' primary keys (with the
// referenced values the ledger keeps), counts what the declared cascades
// will change, and deletes the rows by primary key. MariaDB takes this
// path (see the batch comment in dialect.go), and so do tables with
// declared cascades, whose counts need the keys before the rows go.
func (e *erasure) deleteByKeys(ctx context.Context, tx *sql.Tx, sr *subjectRun, t *table, q *query, w string, limit int64, refCols []string) (int64, error) {
	c := e.c
	pk := strings.Trim(c.d.keyCols(t.key), "()")
	sel := pk
	if len(refCols) > 0 {
		sel += ", " + c.quoteList(refCols)
	}
	rows, err := c.scanAll(ctx, tx, fmt.Sprintf("SELECT %s FROM %s WHERE %s LIMIT %s%s",
		sel, c.d.quote(t.Name), w, q.arg(limit), c.d.lockRows()), q.args, len(t.key)+len(refCols))
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	keys := make([][]any, len(rows))
	refs := make([][]any, len(rows))
	for i, r := range rows {
		keys[i], refs[i] = r[:len(t.key)], r[len(t.key):]
	}
	cascaded, err := c.cascadeCounts(ctx, tx, t, keys, false)
	if err != nil {
		return 0, err
	}
	var n int64
	for rest := keys; len(rest) > 0; {
		chunk := rest[:min(len(rest), maxKeysPerStmt/len(t.key))]
		rest = rest[len(chunk):]
		q := &query{d: c.d}
		res, err := c.execContext(ctx, tx, fmt.Sprintf("DELETE FROM %s WHERE %s", c.d.quote(t.Name), c.keyTerm(q, t, chunk)), q.args...)
		if err != nil {
			return 0, err
		}
		m, err := res.RowsAffected()
		if err != nil {
			return 0, err
		}
		n += m
	}
	// The keys are locked, so each must have been deleted. If one was not
	// (a key that does not read back as itself), stop: the next statement
	// would select the same rows forever.
	if n != int64(len(keys)) {
		return 0, fmt.Errorf("deleted %d of the %d rows selected by primary key", n, len(keys))
	}
	if len(refCols) == 0 {
		refs = nil
	}
	e.changed(sr, t, lethe.ActionDelete, n, cascaded, refCols, refs)
	// A short batch was the last: the caller compares with limit.
	return n, nil
}

// pseudonymizeRows rewrites sr's rows of t. The new values (HMACs, random
// strings) are computed here, not in SQL, so each step selects its rows,
// locks them, and updates them by primary key, all of them in one
// statement where the dialect allows (dialect.updateRows). Steps advance
// by primary key, so every row is visited once per call even if a
// rewritten row were somehow to match again.
func (e *erasure) pseudonymizeRows(ctx context.Context, sr *subjectRun, t *table) error {
	var last []any
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		limit, err := e.room(ctx)
		if err != nil {
			return err
		}
		n, lastPK, err := e.pseudonymizeStep(ctx, sr, t, last, limit)
		if err != nil || n < limit {
			return err
		}
		last = lastPK
	}
}

func (e *erasure) pseudonymizeStep(ctx context.Context, sr *subjectRun, t *table, last []any, limit int64) (int64, []any, error) {
	c := e.c
	q := &query{d: c.d}
	w := c.where(q, t, sr.m, e.s)
	if w == "" {
		return 0, nil, nil
	}
	pk := c.d.keyCols(t.key)
	if last != nil {
		// A row value comparison walks a composite key in its order.
		w += fmt.Sprintf(" AND %s > %s", pk, q.tupleList([][]any{last}))
	}
	pk = strings.Trim(pk, "()")
	refCols := referenced(t)
	cols := []string{pk}
	for _, col := range t.columns {
		cols = append(cols, c.d.quote(col))
	}
	if len(refCols) > 0 {
		cols = append(cols, c.quoteList(refCols))
	}
	tx, err := e.txn(ctx)
	if err != nil {
		return 0, nil, err
	}
	width := len(t.key) + len(t.columns) + len(refCols)
	rows, err := c.scanAll(ctx, tx, fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY %s LIMIT %s%s",
		strings.Join(cols, ", "), c.d.quote(t.Name), w, pk, q.arg(limit), c.d.lockRows()), q.args, width)
	if err != nil || len(rows) == 0 {
		return 0, nil, err
	}
	batch := make([]keyed, len(rows))
	keys := make([][]any, len(rows))
	var refs [][]any
	for i, r := range rows {
		batch[i] = keyed{pk: r[:len(t.key)], vals: r[len(t.key) : len(t.key)+len(t.columns)]}
		keys[i] = batch[i].pk
		if len(refCols) > 0 {
			refs = append(refs, r[len(t.key)+len(t.columns):])
		}
	}
	cascaded, err := c.cascadeCounts(ctx, tx, t, keys, true)
	if err != nil {
		return 0, nil, err
	}
	// Constant strategies are one assignment for the whole batch; the
	// others get each row's new value, which replaces the old one in vals.
	sets := make([]assign, len(t.columns))
	for i, col := range t.columns {
		switch st := t.Columns[col]; st.kind() {
		case StrategyNull:
			sets[i] = assign{col: col}
		case StrategyFixed:
			sets[i] = assign{col: col, value: st.Value}
		default:
			sets[i] = assign{col: col, perRow: true}
		}
	}
	for r := range batch {
		vals := make([]any, 0, len(t.columns))
		for i, col := range t.columns {
			if !sets[i].perRow {
				continue
			}
			nv, err := c.pseudonym(t.Columns[col], c.pseudonymInput(t, col, batch[r].vals[i]))
			if err != nil {
				return 0, nil, err
			}
			vals = append(vals, nv)
		}
		batch[r].vals = vals
	}
	stmts, err := c.d.updateRows(t.Name, t.key, sets, batch)
	if err != nil {
		return 0, nil, err
	}
	var matched int64
	for _, q := range stmts {
		res, err := c.execContext(ctx, tx, q.text, q.args...)
		if err != nil {
			return 0, nil, err
		}
		m, err := res.RowsAffected()
		if err != nil {
			return 0, nil, err
		}
		matched += m
	}
	// The rows are locked, so each must have been updated. PostgreSQL and
	// SQLite count the rows an UPDATE matched, so a key that did not find
	// its row shows here; MySQL counts only rows whose values changed, so
	// there the rows selected are the count.
	n := int64(len(batch))
	if c.d.name != "mysql" && matched != n {
		return 0, nil, fmt.Errorf("updated %d of the %d rows selected by primary key", matched, n)
	}
	e.changed(sr, t, lethe.ActionPseudonymize, n, cascaded, refCols, refs)
	return n, batch[len(batch)-1].pk, nil
}

// quoteList quotes and joins column names.
func (c *Connector) quoteList(cols []string) string {
	out := make([]string, len(cols))
	for i, col := range cols {
		out[i] = c.d.quote(col)
	}
	return strings.Join(out, ", ")
}

// scanAll runs a query in tx and returns its rows, width values each.
func (c *Connector) scanAll(ctx context.Context, tx *sql.Tx, stmt string, args []any, width int) ([][]any, error) {
	rows, err := c.queryContext(ctx, tx, stmt, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]any
	for rows.Next() {
		dst := make([]any, width)
		ptrs := make([]any, width)
		for i := range dst {
			ptrs[i] = &dst[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, dst)
	}
	return out, rows.Err()
}

// newBatchID names one transaction's ledger rows.
func newBatchID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
