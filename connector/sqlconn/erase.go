package sqlconn

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strconv"
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
// changed table by table in transactions shared by the subjects, each
// statement acting for all of them (see tag for how each changed row is
// counted for exactly one subject, the first that matches it). One
// candidate query per matched column serves them all.
func (c *Connector) EraseBatch(ctx context.Context, subjects []connector.Subject) ([]lethe.Report, error) {
	if err := c.distinctRequests("erase batch", subjects); err != nil {
		return nil, err
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
	// all matches the rows of every subject (unionOf): the statements
	// select by it.
	all *matcher
	// cascades are the declared cascades, read when a mapped table
	// declares one: their lines go in the reports.
	cascades []cascade
	tx       *sql.Tx
	rows     int64 // rows changed in tx
	// stepwise commits after every table: the way a failed erasure runs
	// again (see erase).
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
	all := valuesOfAll(subjects)
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
	e := &erasure{c: c, s: s}
	for _, subj := range subjects {
		e.subs = append(e.subs, &subjectRun{requestID: subj.RequestID, v: valuesOf(subj.Identities),
			done: map[lineKey]int64{}, retained: map[*table]int64{}, lines: map[lineKey]int64{}})
	}
	if err := e.match(ctx, all); err != nil {
		return nil, err
	}
	for _, t := range c.tables {
		if len(t.Cascades) > 0 {
			if e.cascades, err = c.cascades(ctx); err != nil {
				return nil, redact(fmt.Errorf("target %q: %w", c.name, err), all.all())
			}
			break
		}
	}
	if len(e.subs) > 1 && e.oversized() {
		return c.eraseHalves(ctx, subjects, e)
	}
	err = e.run(ctx)
	if err != nil && e.rows > 0 && ctx.Err() == nil {
		// The failed statement took the open transaction's earlier work
		// with it. Run again committing after every step, so that what
		// precedes the failing step is erased and reported (a retained
		// table blocking a delete leaves the other tables done) and the
		// error is the same. The rows are matched afresh first, as the
		// next Erase would match them: a row this call pseudonymized and
		// committed still has the key the first matching confirmed, and
		// would be rewritten (a hash of its hash) and counted twice, in
		// the report and in the ledger. Matched by its values it is found
		// no more (pseudonymize rewrites every column that links it), and
		// a row written since is.
		e.rollback()
		if err = e.match(ctx, all); err == nil {
			e.stepwise = true
			err = e.run(ctx)
		}
	}
	if err != nil {
		e.rollback()
		// Retained rows are counted on the way (one subject) or after the
		// last commit (a batch, see run), which a failed erasure may never
		// reach: its reports would say nothing is retained. They are
		// counted now, as they stand. A failure to count leaves them as
		// they were, and the erasure's own error is the one returned.
		for _, t := range c.tables {
			if t.Action == lethe.ActionRetain && e.countRetained(ctx, t) != nil {
				break
			}
		}
		err = redact(err, all.all())
	}
	c.stmts.prepareWanted(ctx)
	return e.reports(), err
}

// match builds each subject's matcher, and their union, from the rows as
// they stand and the keys the ledger kept for the requests (matchEach).
func (e *erasure) match(ctx context.Context, all values) error {
	vs := make([]values, len(e.subs))
	ids := make([]string, len(e.subs))
	for i, sr := range e.subs {
		vs[i], ids[i] = sr.v, sr.requestID
	}
	ms, union, err := e.c.matchEach(ctx, "erase", e.s, all, vs, ids)
	if err != nil {
		return err
	}
	for i, sr := range e.subs {
		sr.m = ms[i]
	}
	e.all = union
	return nil
}

// oversized reports whether a statement of the batch would carry more
// parameters than the dialect allows: the union's lists and each
// subject's terms again in the tag (a subject matching thousands of rows
// by a confirmed column lists their keys). The margin covers the limit
// and a pseudonymize step's last key.
func (e *erasure) oversized() bool {
	for _, t := range e.c.tables {
		if t.Action == lethe.ActionRetain {
			continue
		}
		q := &query{d: e.c.d}
		e.tag(q, t)
		e.c.where(q, t, e.all, e.s)
		if len(q.args)+len(t.key)+1 > e.c.params {
			return true
		}
	}
	return false
}

// eraseHalves erases an oversized batch (see oversized) as two batches,
// one after the other: the second is matched afresh once the first is
// done, as an Erase after another would be, so a row the first half
// pseudonymized is not found again through a key confirmed before. e
// holds the batch's matching, whose reports (nothing changed yet) stand
// for subjects a failed first half leaves unerased.
func (c *Connector) eraseHalves(ctx context.Context, subjects []connector.Subject, e *erasure) ([]lethe.Report, error) {
	reps := e.reports()
	h := len(subjects) / 2
	first, err := c.erase(ctx, subjects[:h])
	copy(reps, first)
	if err != nil {
		return reps, err
	}
	rest, err := c.erase(ctx, subjects[h:])
	copy(reps[h:], rest)
	return reps, err
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
		var err error
		switch t.Action {
		case lethe.ActionDelete:
			err = e.deleteRows(ctx, t)
		case lethe.ActionPseudonymize:
			err = e.pseudonymizeRows(ctx, t)
		case lethe.ActionRetain:
			if len(e.subs) == 1 {
				err = e.countRetained(ctx, t)
			}
		}
		if err != nil {
			return c.fail(e.all.v, "erase", t, err)
		}
		if e.stepwise {
			if err := e.commit(ctx); err != nil {
				return c.fail(e.all.v, "erase", t, err)
			}
		}
	}
	if err := e.commit(ctx); err != nil {
		return fmt.Errorf("target %q: erase: %w", c.name, err)
	}
	// A batch counts the retained rows once everything is committed, each
	// subject's through the parent rows it erased itself (their kept
	// keys) and by its own values: in its place, before the parents go, a
	// subject would also count rows reached through a parent row an
	// earlier subject of the batch erases, which one Erase after the
	// other, and Changed, do not.
	if len(e.subs) > 1 {
		for _, t := range c.tables {
			if t.Action != lethe.ActionRetain {
				continue
			}
			if err := e.countRetained(ctx, t); err != nil {
				return c.fail(e.all.v, "erase", t, err)
			}
		}
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
		sr.m.keep(e.c.tables, sr.keys)
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

// tag writes, for a statement acting for several subjects, the expression
// that numbers the first subject (its index in subs) matching a row of t:
// each subject's terms, ORed, tested on the row itself, so the database
// decides for each row exactly as a statement of that subject alone would,
// and a row two subjects share goes to the first, as one Erase after the
// other would count it. Its subqueries read only the tables t references,
// which the statement does not change, so a DELETE may return it. "" for
// one subject: every row is its.
func (e *erasure) tag(q *query, t *table) string {
	if len(e.subs) == 1 {
		return ""
	}
	var b strings.Builder
	b.WriteString("CASE")
	for i, sr := range e.subs {
		if terms := e.c.terms(q, t, sr.m, e.s); len(terms) > 0 {
			fmt.Fprintf(&b, " WHEN (%s) THEN %d", strings.Join(terms, ") OR ("), i)
		}
	}
	b.WriteString(" END")
	return b.String()
}

// owners strips from each row the tag it ends with (see tag) and returns
// the subject each row is counted for; with one subject the rows have no
// tag and are all its.
func (e *erasure) owners(rows [][]any) ([]int, error) {
	owner := make([]int, len(rows))
	if len(e.subs) == 1 {
		return owner, nil
	}
	for r, row := range rows {
		s, ok := text(row[len(row)-1])
		i, err := strconv.Atoi(s)
		if !ok || err != nil || i < 0 || i >= len(e.subs) {
			// The union selected a row no subject's terms match: counting
			// it for anyone would be a guess.
			return nil, fmt.Errorf("a selected row matches none of the batch's %d subjects", len(e.subs))
		}
		owner[r], rows[r] = i, row[:len(row)-1]
	}
	return owner, nil
}

// changedBy notes the rows of a statement changed in the open
// transaction, row r for subject owner[r], with each subject's cascade
// lines and the referenced values of its rows (refs[r], nil when t has no
// referenced columns).
func (e *erasure) changedBy(owner []int, t *table, action lethe.Action, cascaded [][]lethe.ReportItem, refCols []string, refs [][]any) {
	for i, sr := range e.subs {
		var n int64
		var mine [][]any
		for r, o := range owner {
			if o != i {
				continue
			}
			n++
			if refs != nil {
				mine = append(mine, refs[r])
			}
		}
		if n > 0 {
			e.changed(sr, t, action, n, cascaded[i], refCols, mine)
		}
	}
}

// cascadesBy counts, per subject, what the declared cascades of t will
// change when the rows keys are deleted or rewritten (key r is subject
// owner[r]'s): from each subject's own keys, so that a cascaded row is
// counted for the subject of the row it hangs from, as one Erase would.
// One count per cascade and subject with rows; nothing without cascades.
func (e *erasure) cascadesBy(ctx context.Context, tx *sql.Tx, t *table, owner []int, keys [][]any, update bool) ([][]lethe.ReportItem, error) {
	out := make([][]lethe.ReportItem, len(e.subs))
	if len(t.Cascades) == 0 {
		return out, nil
	}
	for i := range e.subs {
		var mine [][]any
		for r, o := range owner {
			if o == i {
				mine = append(mine, keys[r])
			}
		}
		var err error
		if out[i], err = e.c.cascadeCounts(ctx, tx, t, mine, update, e.s); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// countRetained counts each subject's rows of a retain table, in the open
// transaction when there is one: every subject's count in one statement
// (countProbes). A row two subjects share is retained for both, and
// counted for both.
func (e *erasure) countRetained(ctx context.Context, t *table) error {
	probes := make([]probe, len(e.subs))
	for i, sr := range e.subs {
		probes[i] = probe{t, sr.m}
	}
	n, err := e.c.countProbes(ctx, e.tx, probes, e.s, false)
	if err != nil {
		return err
	}
	for i, sr := range e.subs {
		sr.retained[t] = n[i]
	}
	return nil
}

// deleteRows deletes the subjects' rows of t, as many per statement as
// the open transaction has room for, every subject's in the same
// statement. No ORDER BY: it would tempt the planners to walk the primary
// key in order instead of using the lookups, and deleted rows stop
// matching, so the next statement finds the rest without a cursor.
func (e *erasure) deleteRows(ctx context.Context, t *table) error {
	c := e.c
	refCols := referenced(t)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// One statement per batch selects its rows by the subjects' key
		// set; the other way, by the condition on t's rows. The tag is in
		// the SELECT list there, so its parameters come first.
		returning := c.returning && len(t.Cascades) == 0
		q := &query{d: c.d}
		var sel, tag string
		if returning {
			sel = c.keySet(q, t, e.all, e.s)
		} else {
			tag = e.tag(q, t)
			sel = c.where(q, t, e.all, e.s)
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
			n, err = e.deleteReturning(ctx, tx, t, q, sel, limit, refCols)
		} else {
			n, err = e.deleteByKeys(ctx, tx, t, q, tag, sel, limit, refCols)
		}
		if err != nil || n < limit {
			return err
		}
	}
}

// deleteReturning deletes up to limit rows in one statement that also
// returns what the ledger keeps of them, and for several subjects whose
// each row is (PostgreSQL, SQLite). The rows are picked by keys, the
// subjects' key set (keySet) through the indexes, and only the rows
// deleted are locked.
func (e *erasure) deleteReturning(ctx context.Context, tx *sql.Tx, t *table, q *query, keys string, limit int64, refCols []string) (int64, error) {
	c := e.c
	// The limit is a parameter: the statement's text, and so its prepared
	// form, stays the same however full the transaction is.
	stmt := fmt.Sprintf("DELETE FROM %s WHERE %s IN (%s LIMIT %s)",
		c.d.quote(t.Name), c.d.keyCols(t.key), keys, q.arg(limit))
	var ret []string
	for _, col := range refCols {
		ret = append(ret, c.d.quote(col))
	}
	if tag := e.tag(q, t); tag != "" {
		ret = append(ret, tag)
	}
	if len(ret) == 0 {
		res, err := c.execContext(ctx, tx, stmt, q.args...)
		if err != nil {
			return 0, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, err
		}
		e.changed(e.subs[0], t, lethe.ActionDelete, n, nil, nil, nil)
		return n, nil
	}
	rows, err := c.scanAll(ctx, tx, stmt+" RETURNING "+strings.Join(ret, ", "), q.args, len(ret))
	if err != nil {
		return 0, err
	}
	owner, err := e.owners(rows)
	if err != nil {
		return 0, err
	}
	if len(refCols) == 0 {
		rows = nil
	}
	e.changedBy(owner, t, lethe.ActionDelete, make([][]lethe.ReportItem, len(e.subs)), refCols, rows)
	return int64(len(owner)), nil
}

// deleteByKeys selects and locks up to limit rows' primary keys (with the
// referenced values the ledger keeps, and the subject of each: tag, in q
// before w), counts what the declared cascades will change, and deletes
// the rows by primary key. MariaDB takes this path (see the batch comment
// in dialect.go; its DELETE ... RETURNING is not needed, the SELECT
// returns the rows), and so do tables with declared cascades, whose
// counts need the keys before the rows go.
func (e *erasure) deleteByKeys(ctx context.Context, tx *sql.Tx, t *table, q *query, tag, w string, limit int64, refCols []string) (int64, error) {
	c := e.c
	pk := strings.Trim(c.d.keyCols(t.key), "()")
	sel := pk
	if len(refCols) > 0 {
		sel += ", " + c.quoteList(refCols)
	}
	width := len(t.key) + len(refCols)
	if tag != "" {
		sel += ", " + tag
		width++
	}
	rows, err := c.scanAll(ctx, tx, fmt.Sprintf("SELECT %s FROM %s WHERE %s LIMIT %s%s",
		sel, c.d.quote(t.Name), w, q.arg(limit), c.d.lockRows()), q.args, width)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	owner, err := e.owners(rows)
	if err != nil {
		return 0, err
	}
	keys := make([][]any, len(rows))
	refs := make([][]any, len(rows))
	for i, r := range rows {
		keys[i], refs[i] = r[:len(t.key)], r[len(t.key):]
	}
	cascaded, err := e.cascadesBy(ctx, tx, t, owner, keys, false)
	if err != nil {
		return 0, err
	}
	var n int64
	for rest := keys; len(rest) > 0; {
		chunk := rest[:min(len(rest), maxKeysPerStmt/len(t.key))]
		rest = rest[len(chunk):]
		q := &query{d: c.d}
		res, err := c.execContext(ctx, tx, fmt.Sprintf("DELETE FROM %s WHERE %s", c.d.quote(t.Name), c.keyTerm(q, t, chunk, e.s)), q.args...)
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
	e.changedBy(owner, t, lethe.ActionDelete, cascaded, refCols, refs)
	// A short batch was the last: the caller compares with limit.
	return n, nil
}

// pseudonymizeRows rewrites the subjects' rows of t. The new values
// (HMACs, random strings) are computed here, not in SQL, so each step
// selects its rows (every subject's, each with its subject: see tag),
// locks them, and updates them by primary key, all of them in one
// statement where the dialect allows (dialect.updateRows). No dialect
// needs UPDATE ... RETURNING (MariaDB has none): the SELECT returns the
// rows. Steps advance by primary key, so every row is visited once per
// call even if a rewritten row were somehow to match again (a row two
// subjects share is rewritten and counted once, for the first).
func (e *erasure) pseudonymizeRows(ctx context.Context, t *table) error {
	var last []any
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		limit, err := e.room(ctx)
		if err != nil {
			return err
		}
		n, lastPK, err := e.pseudonymizeStep(ctx, t, last, limit)
		if err != nil || n < limit {
			return err
		}
		last = lastPK
	}
}

func (e *erasure) pseudonymizeStep(ctx context.Context, t *table, last []any, limit int64) (int64, []any, error) {
	c := e.c
	q := &query{d: c.d}
	// The tag is in the SELECT list: its parameters come first.
	tag := e.tag(q, t)
	w := c.where(q, t, e.all, e.s)
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
	width := len(t.key) + len(t.columns) + len(refCols)
	if tag != "" {
		cols = append(cols, tag)
		width++
	}
	tx, err := e.txn(ctx)
	if err != nil {
		return 0, nil, err
	}
	rows, err := c.scanAll(ctx, tx, fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY %s LIMIT %s%s",
		strings.Join(cols, ", "), c.d.quote(t.Name), w, pk, q.arg(limit), c.d.lockRows()), q.args, width)
	if err != nil || len(rows) == 0 {
		return 0, nil, err
	}
	owner, err := e.owners(rows)
	if err != nil {
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
	cascaded, err := e.cascadesBy(ctx, tx, t, owner, keys, true)
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
	e.changedBy(owner, t, lethe.ActionPseudonymize, cascaded, refCols, refs)
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
