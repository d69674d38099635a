package sqlconn

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	scrub "github.com/lethe-privacy/lethe/redact"
)

// Kind is the connector kind of SQL targets in the data map.
const Kind = "sql"

// Info returns the registry entry for SQL targets.
func Info() connector.Info {
	return connector.Info{Kind: Kind, New: func(ctx context.Context, t connector.Target) (connector.Connector, error) {
		return New(ctx, t)
	}}
}

// Limits on Resolve, which follows links until nothing new turns up: a
// data map that links unrelated people (a shared placeholder email, say)
// would otherwise pull in half the database.
const (
	maxResolveRounds = 4
	maxResolveRows   = 10000
)

// Connector erases a subject's rows from one SQL database.
type Connector struct {
	name   string
	d      dialect
	db     *sql.DB
	batch  int
	key    []byte
	tables []*table // children before parents
	region string   // default_region for phones stored nationally
	follow int      // follow_limit

	mu     sync.Mutex
	schema schema // nil until first loaded

	live liveCache // constraints read for CheckSchema and declared cascades

	ledgerReady bool // the ledger tables exist (under mu)
}

var (
	_ connector.Ledger    = (*Connector)(nil)
	_ connector.Connector = (*Connector)(nil)
	_ connector.Validator = (*Connector)(nil)
	_ connector.Closer    = (*Connector)(nil)
)

// New decodes and checks the target's options and opens its connection
// pool. It does not connect: Validate checks the live database.
func New(ctx context.Context, t connector.Target) (*Connector, error) {
	var o Options
	if err := t.DecodeOptions(&o); err != nil {
		return nil, err
	}
	return Open(t.Name, o)
}

// Open is New for options already decoded.
func Open(name string, o Options) (*Connector, error) {
	tables, err := compile(name, &o)
	if err != nil {
		return nil, err
	}
	d := dialects[o.Driver]
	db, err := sql.Open(d.driver, o.DSN)
	if err != nil {
		return nil, fmt.Errorf("target %q: open: %w", name, err)
	}
	return &Connector{name: name, d: d, db: db, batch: o.BatchSize, key: []byte(o.HashKey), tables: tables,
		region: o.DefaultRegion, follow: o.FollowLimit}, nil
}

// Close closes the connection pool.
func (c *Connector) Close() error { return c.db.Close() }

// schema maps table name -> column name -> column.
type schema map[string]map[string]column

func (s schema) kind(table, col string) colKind { return s[table][col].kind }

func (c *Connector) loadSchema(ctx context.Context) (schema, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.schema != nil {
		return c.schema, nil
	}
	s := schema{}
	for _, t := range c.tables {
		cols, err := c.d.columns(ctx, c.db, t.Name)
		if err != nil {
			return nil, fmt.Errorf("target %q: read schema of %q: %w", c.name, t.Name, err)
		}
		s[t.Name] = cols
	}
	c.schema = s
	return s, nil
}

// Validate checks the data map against the live schema: every table and
// column exists and every strategy can write its column.
func (c *Connector) Validate(ctx context.Context) error {
	if err := c.db.PingContext(ctx); err != nil {
		return fmt.Errorf("target %q: connect: %w", c.name, err)
	}
	c.mu.Lock()
	c.schema = nil // re-read: Validate is how an operator checks a changed schema
	c.mu.Unlock()
	s, err := c.loadSchema(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range c.tables {
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("target %q: table %q: "+format, append([]any{c.name, t.Name}, args...)...))
		}
		cols := s[t.Name]
		if len(cols) == 0 {
			fail("does not exist")
			continue
		}
		need := func(col, role string) {
			if _, ok := cols[col]; !ok {
				fail("%s column %q does not exist", role, col)
			}
		}
		for _, k := range t.key {
			need(k, "primary key")
		}
		for _, typ := range t.idTypes {
			need(t.Identities[typ], string(typ)+" identity")
		}
		for _, l := range t.parents {
			need(l.column, "reference")
			if pc := s[l.parent.Name]; len(pc) > 0 {
				if _, ok := pc[l.to]; !ok {
					fail("referenced column %q.%q does not exist", l.parent.Name, l.to)
				}
			}
		}
		for _, col := range t.columns {
			info, ok := cols[col]
			if !ok {
				need(col, "pseudonymized")
				continue
			}
			switch st := t.Columns[col]; st.kind() {
			case StrategyHash, StrategyRedactEmail, StrategyRandom:
				if !info.textual() {
					fail("column %q is %s; strategy %s writes text", col, info.dataType, st.kind())
				}
			case StrategyFixed:
				if _, err := strconv.ParseInt(st.Value, 10, 64); info.kind == kindInt && err != nil {
					fail("column %q is %s; the fixed value is not an integer", col, info.dataType)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// values groups a subject's identity values by type, without duplicates.
type values map[lethe.IdentityType][]string

func valuesOf(ids []lethe.Identity) values {
	v := values{}
	for _, id := range ids {
		if id.Value != "" && !slices.Contains(v[id.Type], id.Value) {
			v[id.Type] = append(v[id.Type], id.Value)
		}
	}
	return v
}

// all returns the values as identities again, for redaction.
func (v values) all() []lethe.Identity {
	var out []lethe.Identity
	for t, vs := range v {
		for _, s := range vs {
			out = append(out, lethe.Identity{Type: t, Value: s})
		}
	}
	return out
}

// query collects the arguments of one statement as its text is written,
// so placeholders and arguments can never get out of step.
type query struct {
	d    dialect
	text string // the statement, once written
	args []any
}

func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return q.d.placeholder(len(q.args))
}

var uuidLike = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)

// typed converts identity values for comparison with a column of kind k,
// dropping those that cannot equal any value of it.
func typed(vs []string, k colKind) []any {
	var out []any
	for _, v := range vs {
		switch k {
		case kindInt:
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				out = append(out, n)
			}
		case kindUUID:
			if uuidLike.MatchString(v) {
				out = append(out, v)
			}
		default:
			out = append(out, v)
		}
	}
	return out
}

// where writes the condition selecting the subject's rows of t: an identity
// column holds one of the subject's values, or a reference points at a
// subject's row of the parent (recursively, so links span several hops).
// It returns "" when nothing can match.
func (c *Connector) where(q *query, t *table, m *matcher, s schema) string {
	var terms []string
	for _, typ := range t.idTypes {
		col := t.Identities[typ]
		if m.confirmed[t][col] {
			if keys := m.keys[t][col]; len(keys) > 0 {
				terms = append(terms, c.keyTerm(q, t, keys))
			}
			continue
		}
		args := typed(m.v[typ], s.kind(t.Name, col))
		if len(args) == 0 {
			continue
		}
		ph := make([]string, len(args))
		for i, a := range args {
			ph[i] = q.arg(a)
		}
		terms = append(terms, fmt.Sprintf("%s IN (%s)", c.d.quote(col), strings.Join(ph, ", ")))
	}
	for _, l := range t.parents {
		// A child row is the subject's when its reference holds a value
		// the subject's parent row held: by the subject's identity values
		// when the referenced column is one (users.id is the user_id), and
		// by the values the ledger kept of parent rows already erased.
		// Both find it without the parent row, which a late writer's child
		// outlives.
		if typ, ok := identityOf(l.parent, l.to); ok && !m.confirmed[l.parent][l.to] {
			if args := typed(m.v[typ], s.kind(t.Name, l.column)); len(args) > 0 {
				ph := make([]string, len(args))
				for i, a := range args {
					ph[i] = q.arg(a)
				}
				terms = append(terms, fmt.Sprintf("%s IN (%s)", c.d.quote(l.column), strings.Join(ph, ", ")))
			}
		}
		if vals := m.erased[l.parent][l.to]; len(vals) > 0 {
			if args := typed(vals, s.kind(t.Name, l.column)); len(args) > 0 {
				ph := make([]string, len(args))
				for i, a := range args {
					ph[i] = q.arg(a)
				}
				terms = append(terms, fmt.Sprintf("%s IN (%s)", c.d.quote(l.column), strings.Join(ph, ", ")))
			}
		}
		sub := c.where(q, l.parent, m, s)
		if sub == "" {
			continue
		}
		terms = append(terms, fmt.Sprintf("%s IN (SELECT %s FROM %s WHERE %s)",
			c.d.quote(l.column), c.d.quote(l.to), c.d.quote(l.parent.Name), sub))
	}
	switch len(terms) {
	case 0:
		return ""
	case 1:
		return "(" + terms[0] + ")"
	}
	// Not "a OR b": PostgreSQL cannot combine an index scan with an
	// IN (subquery) under OR, so it would scan the whole table, and every
	// table below it (0.6s instead of 0.4ms per statement at 100k users;
	// docs/performance.md). A UNION of one indexable SELECT per term finds
	// the same rows through the indexes. The derived table keeps MySQL from
	// refusing a subquery on the table a DELETE changes (error 1093).
	pk, name := c.d.keyCols(t.key), c.d.quote(t.Name)
	list := strings.Trim(pk, "()")
	sel := make([]string, len(terms))
	for i, term := range terms {
		sel[i] = fmt.Sprintf("SELECT %s FROM %s WHERE %s", list, name, term)
	}
	return fmt.Sprintf("(%s IN (SELECT %s FROM (%s) AS subject_rows))", pk, list, strings.Join(sel, " UNION "))
}

// identityOf returns the identity type column col of t holds, if any.
func identityOf(t *table, col string) (lethe.IdentityType, bool) {
	for _, typ := range t.idTypes {
		if t.Identities[typ] == col {
			return typ, true
		}
	}
	return "", false
}

// begin checks ctx, loads the schema and matches the subject's values
// (see matcher): the start of every method.
func (c *Connector) begin(ctx context.Context, op string, v values) (schema, *matcher, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, redact(fmt.Errorf("target %q: %s: %w", c.name, op, err), v.all())
	}
	s, err := c.loadSchema(ctx)
	if err != nil {
		return nil, nil, redact(err, v.all())
	}
	m, err := c.match(ctx, v, s)
	if err != nil {
		err = fmt.Errorf("target %q: %s: %w", c.name, op, err)
		if c.d.missing(err) {
			err = connector.Permanent(err)
		}
		return nil, nil, redact(err, v.all())
	}
	return s, m, nil
}

// fail wraps a database error with the target and table, marks errors no
// retry can fix, and strips any identity value a driver may have quoted.
func (c *Connector) fail(v values, op string, t *table, err error) error {
	err = fmt.Errorf("target %q: %s %q: %w", c.name, op, t.Name, err)
	if c.d.missing(err) {
		err = connector.Permanent(err)
	}
	return redact(err, v.all())
}

// text renders a scanned value as an identity value; false for NULL.
func text(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case []byte:
		return string(x), len(x) > 0
	case string:
		return x, x != ""
	case int64:
		return strconv.FormatInt(x, 10), true
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), true
	default:
		s := fmt.Sprint(x)
		return s, s != ""
	}
}

// Plan counts the subject's rows per table.
func (c *Connector) Plan(ctx context.Context, subj connector.Subject) (lethe.Report, error) {
	v := valuesOf(subj.Identities)
	s, m, err := c.begin(ctx, "plan", v)
	if err != nil {
		return lethe.Report{}, err
	}
	var rep lethe.Report
	for _, t := range c.tables {
		n, err := c.count(ctx, t, m, s)
		if err != nil {
			return lethe.Report{}, c.fail(v, "plan", t, err)
		}
		rep.Items = append(rep.Items, item(t, n))
		cascaded, err := c.cascadeItems(ctx, t, m, s)
		if err != nil {
			return lethe.Report{}, c.fail(v, "plan", t, err)
		}
		rep.Items = append(rep.Items, cascaded...)
	}
	return rep, nil
}

func item(t *table, n int64) lethe.ReportItem {
	it := lethe.ReportItem{Object: t.Name, Action: t.Action, Rows: n}
	if t.Action == lethe.ActionRetain {
		it.Reason, it.Until = t.Reason, t.until
	}
	return it
}

func (c *Connector) count(ctx context.Context, t *table, m *matcher, s schema) (int64, error) {
	q := &query{d: c.d}
	w := c.where(q, t, m, s)
	if w == "" {
		return 0, nil
	}
	var n int64
	err := c.db.QueryRowContext(ctx, fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE %s", c.d.quote(t.Name), w), q.args...).Scan(&n)
	return n, err
}

// Erase deletes or pseudonymizes the subject's rows, children before
// parents so foreign keys hold and links are followed before they are cut,
// in batches of batch_size rows that each commit on their own. Rows in the
// report are those changed by this call; on error the report holds what
// was committed before it.
func (c *Connector) Erase(ctx context.Context, subj connector.Subject) (lethe.Report, error) {
	v := valuesOf(subj.Identities)
	s, m, err := c.begin(ctx, "erase", v)
	if err != nil {
		return lethe.Report{}, err
	}
	if err := c.useLedger(ctx, subj.RequestID, m); err != nil {
		return lethe.Report{}, redact(err, v.all())
	}
	var rep lethe.Report
	for _, t := range c.tables {
		var n int64
		var err error
		switch t.Action {
		case lethe.ActionDelete:
			n, err = c.deleteRows(ctx, subj.RequestID, t, m, s)
		case lethe.ActionPseudonymize:
			n, err = c.pseudonymizeRows(ctx, subj.RequestID, t, m, s)
		case lethe.ActionRetain:
			n, err = c.count(ctx, t, m, s)
		}
		rep.Items = append(rep.Items, item(t, n))
		if err != nil {
			return rep, c.fail(v, "erase", t, err)
		}
	}
	return rep, nil
}

// deleteRows deletes the subject's rows of t in batches: each selects and
// locks up to batch_size primary keys, deletes them by key and commits on
// its own, keeping locks short (see the batch comment in dialect.go).
func (c *Connector) deleteRows(ctx context.Context, requestID string, t *table, m *matcher, s schema) (int64, error) {
	q := &query{d: c.d}
	w := c.where(q, t, m, s)
	if w == "" {
		return 0, nil
	}
	// No ORDER BY: it would tempt the planners to walk the primary key in
	// order instead of using the lookups, and deleted rows stop matching,
	// so the next batch finds the rest without a cursor.
	sel := fmt.Sprintf("SELECT %s FROM %s WHERE %s LIMIT %d%s",
		strings.Trim(c.d.keyCols(t.key), "()"), c.d.quote(t.Name), w, c.batch, c.d.lockRows())
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, more, err := c.deleteBatch(ctx, requestID, t, sel, q.args)
		total += n
		if err != nil || !more {
			return total, err
		}
	}
}

// deleteBatch runs one delete batch in one transaction and reports the
// rows deleted and whether the batch was full (more may remain). The
// batch's ledger entry commits with it.
func (c *Connector) deleteBatch(ctx context.Context, requestID string, t *table, sel string, args []any) (int64, bool, error) {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	var keys [][]any
	rows, err := tx.QueryContext(ctx, sel, args...)
	if err != nil {
		return 0, false, err
	}
	for rows.Next() {
		k := make([]any, len(t.key))
		ptrs := make([]any, len(k))
		for i := range k {
			ptrs[i] = &k[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			rows.Close()
			return 0, false, err
		}
		keys = append(keys, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, false, err
	}
	if len(keys) == 0 {
		return 0, false, nil
	}
	// What the ledger needs is read before the rows go: the values
	// children reference, and the rows the declared cascades will take.
	refs, err := c.referencedValues(ctx, tx, t, keys)
	if err != nil {
		return 0, false, err
	}
	cascaded, err := c.cascadeCounts(ctx, tx, t, keys, false)
	if err != nil {
		return 0, false, err
	}
	var n int64
	for rest := keys; len(rest) > 0; {
		chunk := rest[:min(len(rest), maxKeysPerStmt/len(t.key))]
		rest = rest[len(chunk):]
		q := &query{d: c.d}
		stmt := fmt.Sprintf("DELETE FROM %s WHERE %s", c.d.quote(t.Name), c.keyTerm(q, t, chunk))
		res, err := tx.ExecContext(ctx, stmt, q.args...)
		if err != nil {
			return 0, false, err
		}
		m, err := res.RowsAffected()
		if err != nil {
			return 0, false, err
		}
		n += m
	}
	// The keys are locked, so each must have been deleted. If one was not
	// (a key that does not read back as itself), stop: the next batch would
	// select the same rows forever.
	if n != int64(len(keys)) {
		return 0, false, fmt.Errorf("deleted %d of the %d rows selected by primary key", n, len(keys))
	}
	e := ledgerEntry{requestID: requestID, object: t.Name, keys: refs,
		lines: append([]lethe.ReportItem{{Object: t.Name, Action: lethe.ActionDelete, Rows: n}}, cascaded...)}
	if err := c.record(ctx, tx, e); err != nil {
		return 0, false, err
	}
	if err := tx.Commit(); err != nil {
		return 0, false, err
	}
	return n, len(keys) == c.batch, nil
}

// pseudonymizeRows rewrites the subject's rows batch by batch. The new
// values (HMACs, random strings) are computed here, not in SQL, so each
// batch selects its rows, locks them, and updates them by primary key, all
// of them in one statement where the dialect allows (dialect.updateRows).
// Batches advance by primary key, so every row is visited once per call
// even if a rewritten row were somehow to match again.
func (c *Connector) pseudonymizeRows(ctx context.Context, requestID string, t *table, m *matcher, s schema) (int64, error) {
	var total int64
	var last []any
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		q := &query{d: c.d}
		w := c.where(q, t, m, s)
		if w == "" {
			return total, nil
		}
		pk := c.d.keyCols(t.key)
		if last != nil {
			// A row value comparison walks a composite key in its order.
			w += fmt.Sprintf(" AND %s > %s", pk, q.tupleList([][]any{last}))
		}
		pk = strings.Trim(pk, "()")
		cols := []string{pk}
		for _, col := range t.columns {
			cols = append(cols, c.d.quote(col))
		}
		sel := fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY %s LIMIT %d%s",
			strings.Join(cols, ", "), c.d.quote(t.Name), w, pk, c.batch, c.d.lockRows())
		n, lastPK, err := c.pseudonymizeBatch(ctx, requestID, t, sel, q.args)
		total += n
		if err != nil || lastPK == nil {
			return total, err
		}
		last = lastPK
	}
}

// pseudonymizeBatch runs one batch in one transaction and returns the rows
// changed and the last primary key seen (nil when the batch was the last).
// The batch's ledger entry commits with it.
func (c *Connector) pseudonymizeBatch(ctx context.Context, requestID string, t *table, sel string, args []any) (int64, []any, error) {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, nil, err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	var batch []keyed
	rows, err := tx.QueryContext(ctx, sel, args...)
	if err != nil {
		return 0, nil, err
	}
	for rows.Next() {
		dst := make([]any, len(t.key)+len(t.columns))
		ptrs := make([]any, len(dst))
		for i := range dst {
			ptrs[i] = &dst[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			rows.Close()
			return 0, nil, err
		}
		batch = append(batch, keyed{pk: dst[:len(t.key)], vals: dst[len(t.key):]})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, nil, err
	}
	if len(batch) == 0 {
		return 0, nil, nil
	}
	keys := make([][]any, len(batch))
	for i, b := range batch {
		keys[i] = b.pk
	}
	refs, err := c.referencedValues(ctx, tx, t, keys)
	if err != nil {
		return 0, nil, err
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
		res, err := tx.ExecContext(ctx, q.text, q.args...)
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
	e := ledgerEntry{requestID: requestID, object: t.Name, keys: refs,
		lines: append([]lethe.ReportItem{{Object: t.Name, Action: lethe.ActionPseudonymize, Rows: n}}, cascaded...)}
	if err := c.record(ctx, tx, e); err != nil {
		return 0, nil, err
	}
	if err := tx.Commit(); err != nil {
		return 0, nil, err
	}
	if len(batch) < c.batch {
		return n, nil, nil
	}
	return n, batch[len(batch)-1].pk, nil
}

// pseudonymInput is the value a derived strategy (hash, redact_email) is
// computed from: for an identity column, its canonical form under the
// column's rule, so the case variants of one address (or the ways of
// writing one phone) get one pseudonym.
func (c *Connector) pseudonymInput(t *table, col string, value any) any {
	r, ok := t.rules[col]
	if !ok || r == MatchExact {
		return value
	}
	raw, ok := text(value)
	if !ok {
		return value
	}
	if cv, ok := canonical(r, c.region, raw); ok {
		return cv
	}
	return value
}

// pseudonym returns the replacement for value under st. NULL stays NULL
// for the derived strategies: there is nothing to hide.
func (c *Connector) pseudonym(st Strategy, value any) (any, error) {
	switch st.kind() {
	case StrategyNull:
		return nil, nil
	case StrategyFixed:
		return st.Value, nil
	}
	s, ok := text(value)
	if !ok {
		return nil, nil
	}
	switch st.kind() {
	case StrategyHash:
		return c.mac(s), nil
	case StrategyRedactEmail:
		return "erased+" + c.mac(s)[:16] + "@invalid", nil
	case StrategyRandom:
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		return hex.EncodeToString(b), nil
	}
	return nil, fmt.Errorf("unknown strategy %q", st.kind())
}

func (c *Connector) mac(s string) string {
	h := hmac.New(sha256.New, c.key)
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}

// Verify fails when a delete or pseudonymize table still has rows that
// match the subject: by its identity values, through parents still
// present, and by the key values the ledger kept of the parent rows this
// request erased, so a child row written after its parent was deleted is
// found. Pseudonymized rows no longer match: their identity and
// reference columns were rewritten (compile insists on it).
func (c *Connector) Verify(ctx context.Context, subj connector.Subject) error {
	v := valuesOf(subj.Identities)
	s, m, err := c.begin(ctx, "verify", v)
	if err != nil {
		return err
	}
	if err := c.useLedger(ctx, subj.RequestID, m); err != nil {
		return redact(err, v.all())
	}
	var left []string
	for _, t := range c.tables {
		if t.Action == lethe.ActionRetain {
			continue
		}
		n, err := c.count(ctx, t, m, s)
		if err != nil {
			return c.fail(v, "verify", t, err)
		}
		if n > 0 {
			left = append(left, fmt.Sprintf("%s (%d rows, %s)", t.Name, n, t.Action))
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("target %q: subject data remains in %s", c.name, strings.Join(left, ", "))
	}
	// Nothing is left: the key values kept for this check go too. A
	// later re-check still finds children by the subject's identity
	// values.
	if err := c.forgetErased(ctx, subj.RequestID); err != nil {
		return redact(fmt.Errorf("target %q: %w", c.name, err), v.all())
	}
	return nil
}

// redact strips every form of the subject's identities, and anything that
// looks like an email address or phone number, from a database error;
// an error no retry can fix stays so.
func redact(err error, ids []lethe.Identity) error {
	r := scrub.Error(err, ids)
	if r != err && connector.IsPermanent(err) {
		return connector.Permanent(r)
	}
	return r
}
