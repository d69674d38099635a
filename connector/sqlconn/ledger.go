package sqlconn

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
)

// The ledger is how a SQL target's counts stay exact across crashes. Every
// batch that deletes or pseudonymizes rows writes one ledger row with the
// rows it changed (and, per declared cascade, the rows the database
// changed through it) in the SAME transaction as the change. So a batch
// and its count commit together or not at all, and Changed reads the
// request's totals back from the target: a batch committed just before
// lethe died is counted, a batch rolled back is not, whatever lethe itself
// managed to record. The tables are lethe's own, created by Validate or on
// the first erasure, and hold request ids, table names, counts and the key
// values of erased parent rows (see ledgerKeysTable), no identity values.
const (
	ledgerTable     = "lethe_erasure_ledger"
	ledgerKeysTable = "lethe_erasure_keys"
)

// ledgerOwned reports whether a live table is one of lethe's own.
func ledgerOwned(name string) bool {
	name = strings.ToLower(name)
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[i+1:]
	}
	return name == ledgerTable || name == ledgerKeysTable
}

// ledgerDDL creates the ledger tables. lethe_erasure_keys keeps, per
// request, the referenced key values (users.id, orders.id) of the parent
// rows erased, so that Verify can look for child rows by those values
// directly: a row written after its parent was deleted can no longer be
// found through the parent. Verify deletes them once it passes.
func (d dialect) ledgerDDL() []string {
	ledger := `CREATE TABLE IF NOT EXISTS ` + ledgerTable + ` (
	request_id VARCHAR(64) NOT NULL,
	target VARCHAR(100) NOT NULL,
	object VARCHAR(128) NOT NULL,
	action VARCHAR(16) NOT NULL,
	batch VARCHAR(32) NOT NULL,
	changed BIGINT NOT NULL,
	PRIMARY KEY (request_id, target, object, action, batch))`
	keys := `CREATE TABLE IF NOT EXISTS ` + ledgerKeysTable + ` (
	request_id VARCHAR(64) NOT NULL,
	target VARCHAR(100) NOT NULL,
	object VARCHAR(128) NOT NULL,
	key_column VARCHAR(128) NOT NULL,
	key_value VARCHAR(255) NOT NULL`
	if d.name == "mysql" {
		return []string{ledger, keys + `,
	KEY lethe_erasure_keys_request (request_id, target))`}
	}
	return []string{ledger, keys + `)`,
		`CREATE INDEX IF NOT EXISTS lethe_erasure_keys_request ON ` + ledgerKeysTable + ` (request_id, target)`}
}

// ensureLedger creates the ledger tables once per connector.
func (c *Connector) ensureLedger(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ledgerReady {
		return nil
	}
	for _, stmt := range c.d.ledgerDDL() {
		if _, err := c.db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("target %q: create %s: %w", c.name, ledgerTable, err)
		}
	}
	c.ledgerReady = true
	return nil
}

// maxLedgerRowsPerStmt bounds the rows of one multi-row INSERT into the
// ledger tables (six parameters each at most; see maxKeysPerStmt).
const maxLedgerRowsPerStmt = 1000

// record writes, in tx, the ledger rows of everything the subjects changed
// in tx: one line per request, object and action, and the kept keys, in
// one multi-row INSERT per table (more only for thousands of keys).
func (c *Connector) record(ctx context.Context, tx *sql.Tx, subs []*subjectRun) error {
	batch, err := newBatchID()
	if err != nil {
		return err
	}
	var lines, keys [][]any
	for _, sr := range subs {
		for k, n := range sr.lines {
			if n > 0 {
				lines = append(lines, []any{sr.requestID, c.name, k.object, string(k.action), batch, n})
			}
		}
		for _, k := range sr.keys {
			if v, ok := text(k.value); ok {
				keys = append(keys, []any{sr.requestID, c.name, k.object, k.column, v})
			}
		}
	}
	// Map order is random; sorted rows keep the statements' texts (and
	// the lock order on the ledger's key) the same from run to run.
	slices.SortFunc(lines, func(a, b []any) int { return strings.Compare(fmt.Sprint(a[:4]...), fmt.Sprint(b[:4]...)) })
	if err := c.insertRows(ctx, tx, ledgerTable, "request_id, target, object, action, batch, changed", lines); err != nil {
		return err
	}
	return c.insertRows(ctx, tx, ledgerKeysTable, "request_id, target, object, key_column, key_value", keys)
}

// insertRows inserts rows into table in multi-row INSERTs.
func (c *Connector) insertRows(ctx context.Context, tx *sql.Tx, table, cols string, rows [][]any) error {
	for len(rows) > 0 {
		chunk := rows[:min(len(rows), maxLedgerRowsPerStmt)]
		rows = rows[len(chunk):]
		q := &query{d: c.d}
		tuples := make([]string, len(chunk))
		for i, r := range chunk {
			ph := make([]string, len(r))
			for j, v := range r {
				ph[j] = q.arg(v)
			}
			tuples[i] = "(" + strings.Join(ph, ", ") + ")"
		}
		stmt := fmt.Sprintf("INSERT INTO %s (%s) VALUES %s", table, cols, strings.Join(tuples, ", "))
		if _, err := c.execContext(ctx, tx, stmt, q.args...); err != nil {
			return fmt.Errorf("record in %s: %w", table, err)
		}
	}
	return nil
}

// referenced lists the columns of t that mapped children reference, whose
// values the ledger keeps for Verify.
func referenced(t *table) []string {
	var cols []string
	for _, ch := range t.children {
		for _, l := range ch.parents {
			if l.parent == t && !containsString(cols, l.to) {
				cols = append(cols, l.to)
			}
		}
	}
	return cols
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// cascadeCounts counts, in tx and before the change, the rows each
// declared cascade of t will change when the rows keys are deleted
// (update false) or rewritten (update true).
func (c *Connector) cascadeCounts(ctx context.Context, tx *sql.Tx, t *table, keys [][]any, update bool, s schema) ([]lethe.ReportItem, error) {
	if len(t.Cascades) == 0 || len(keys) == 0 {
		return nil, nil
	}
	all, err := c.cascades(ctx)
	if err != nil {
		return nil, err
	}
	var items []lethe.ReportItem
	for _, cs := range all {
		if cs.root != t || cs.update != update {
			continue
		}
		var n int64
		for rest := keys; len(rest) > 0; {
			chunk := rest[:min(len(rest), maxKeysPerStmt/len(t.key))]
			rest = rest[len(chunk):]
			q := &query{d: c.d}
			w := c.cascadeWhere(q, cs, all, func(q *query, pt *table) string {
				if pt != t {
					return ""
				}
				return c.keyTerm(q, t, chunk, s)
			}, 0)
			if w == "" {
				continue
			}
			var k int64
			stmt := fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE %s", c.d.quote(cs.fk.table), w)
			if err := c.scanOne(ctx, tx, stmt, q.args, &k); err != nil {
				return nil, fmt.Errorf("count cascade into %q: %w", cs.fk.table, err)
			}
			n += k
		}
		items = append(items, lethe.ReportItem{Object: cs.fk.table, Action: cs.action(), Rows: n, Reason: cs.reason()})
	}
	return items, nil
}

// Changed implements connector.Ledger: the rows the target's ledger says
// this request changed, per table and action, over every Erase call, with
// the declared cascades on lines of their own; retained tables are counted
// as they stand now.
func (c *Connector) Changed(ctx context.Context, subj connector.Subject) (lethe.Report, error) {
	v := valuesOf(subj.Identities)
	if err := c.ensureLedger(ctx); err != nil {
		return lethe.Report{}, redact(err, v.all())
	}
	type key struct {
		object string
		action lethe.Action
	}
	sums := map[key]int64{}
	q := &query{d: c.d}
	stmt := fmt.Sprintf("SELECT object, action, SUM(changed) FROM %s WHERE request_id = %s AND target = %s GROUP BY object, action",
		ledgerTable, q.arg(subj.RequestID), q.arg(c.name))
	rows, err := c.queryContext(ctx, nil, stmt, q.args...)
	if err != nil {
		return lethe.Report{}, redact(fmt.Errorf("target %q: read %s: %w", c.name, ledgerTable, err), v.all())
	}
	for rows.Next() {
		var (
			object, action string
			n              int64
		)
		if err := rows.Scan(&object, &action, &n); err != nil {
			rows.Close()
			return lethe.Report{}, fmt.Errorf("target %q: read %s: %w", c.name, ledgerTable, err)
		}
		sums[key{object, lethe.Action(action)}] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return lethe.Report{}, fmt.Errorf("target %q: read %s: %w", c.name, ledgerTable, err)
	}
	// Retained tables are counted now, matched through their own lineage
	// only: the other tables' columns need no candidate queries here.
	var retained []*table
	var lineageOf []*table
	for _, t := range c.tables {
		if t.Action == lethe.ActionRetain {
			retained = append(retained, t)
			lineageOf = lineage(t, lineageOf)
		}
	}
	counted := map[*table]int64{}
	if len(retained) > 0 {
		s, m, err := c.begin(ctx, "count retained", v, lineageOf)
		if err != nil {
			return lethe.Report{}, err
		}
		if err := c.loadErased(ctx, []string{subj.RequestID}, []*matcher{m}); err != nil {
			return lethe.Report{}, redact(fmt.Errorf("target %q: %w", c.name, err), v.all())
		}
		if counted, err = c.countAll(ctx, retained, m, s, false); err != nil {
			return lethe.Report{}, c.failOp(v, "count retained", err)
		}
	}
	var (
		rep     lethe.Report
		cascade []cascade
	)
	for _, t := range c.tables {
		if t.Action == lethe.ActionRetain {
			rep.Items = append(rep.Items, item(t, counted[t]))
			continue
		}
		rep.Items = append(rep.Items, item(t, sums[key{t.Name, t.Action}]))
		if len(t.Cascades) == 0 {
			continue
		}
		if cascade == nil {
			if cascade, err = c.cascades(ctx); err != nil {
				return lethe.Report{}, redact(fmt.Errorf("target %q: %w", c.name, err), v.all())
			}
		}
		for _, cs := range cascade {
			if cs.root == t {
				rep.Items = append(rep.Items, lethe.ReportItem{Object: cs.fk.table, Action: cs.action(),
					Rows: sums[key{cs.fk.table, cs.action()}], Reason: cs.reason()})
			}
		}
	}
	return rep, nil
}

// loadErased adds to each matcher the key values the ledger kept of its
// request's erased parent rows (ms[i] is requestIDs[i]'s), so that where
// finds children by them directly. One query serves every request.
func (c *Connector) loadErased(ctx context.Context, requestIDs []string, ms []*matcher) error {
	q := &query{d: c.d}
	ids := make([]any, len(requestIDs))
	byID := map[string]*matcher{}
	for i, id := range requestIDs {
		ids[i] = id
		byID[id] = ms[i]
	}
	stmt := fmt.Sprintf("SELECT DISTINCT request_id, object, key_column, key_value FROM %s WHERE %s AND target = %s",
		ledgerKeysTable, q.in("request_id", ids, true), q.arg(c.name))
	rows, err := c.queryContext(ctx, nil, stmt, q.args...)
	if err != nil {
		return fmt.Errorf("read %s: %w", ledgerKeysTable, err)
	}
	defer rows.Close()
	byName := map[string]*table{}
	for _, t := range c.tables {
		byName[t.Name] = t
	}
	for rows.Next() {
		var id, object, col, val string
		if err := rows.Scan(&id, &object, &col, &val); err != nil {
			return fmt.Errorf("read %s: %w", ledgerKeysTable, err)
		}
		t, m := byName[object], byID[id]
		if t == nil || m == nil {
			continue
		}
		if m.erased == nil {
			m.erased = map[*table]map[string][]string{}
		}
		if m.erased[t] == nil {
			m.erased[t] = map[string][]string{}
		}
		m.erased[t][col] = append(m.erased[t][col], val)
	}
	return rows.Err()
}

// keep adds to m the key values of parent rows the ledger now keeps for
// its request, as loadErased would read them back: children are found by
// them once the parent rows are gone (the retained rows a batch counts
// last).
func (m *matcher) keep(tables []*table, keys []keptKey) {
	for _, k := range keys {
		v, ok := text(k.value)
		if !ok {
			continue
		}
		i := slices.IndexFunc(tables, func(t *table) bool { return t.Name == k.object })
		if i < 0 {
			continue
		}
		t := tables[i]
		if m.erased == nil {
			m.erased = map[*table]map[string][]string{}
		}
		if m.erased[t] == nil {
			m.erased[t] = map[string][]string{}
		}
		m.erased[t][k.column] = append(m.erased[t][k.column], v)
	}
}
