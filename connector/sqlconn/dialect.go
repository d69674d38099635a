package sqlconn

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	// The drivers register themselves with database/sql under the names
	// in dialects.
	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"
)

// dialect holds everything that differs between the supported databases;
// the rest of the package writes portable SQL through it.
type dialect struct {
	name   string // the Options.Driver value
	driver string // the database/sql driver name
}

var dialects = map[string]dialect{
	"postgres": {name: "postgres", driver: "pgx"},
	"mysql":    {name: "mysql", driver: "mysql"},
	"sqlite":   {name: "sqlite", driver: "sqlite"},
}

// sessionDSN is dsn with the session settings the connector's statements
// want, where the DSN does not set them itself. On PostgreSQL that is
// plan_cache_mode=force_generic_plan: a list is one array parameter (see
// in), and the planner's default then plans every call anew, because a
// generic plan's estimate for an array of unknown length never beats the
// custom plan's for the few values a subject has. Planning these nested
// statements cost PostgreSQL about twice what running them did; a generic
// plan is made once per statement and connection. The statements find
// rows by equality on indexed columns, which a generic plan does as well.
// A DSN pgx cannot parse is returned as it is, for the driver to refuse.
func (d dialect) sessionDSN(dsn string) string {
	if d.name != "postgres" {
		return dsn
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return dsn
	}
	if _, ok := cfg.RuntimeParams["plan_cache_mode"]; ok || strings.Contains(cfg.RuntimeParams["options"], "plan_cache_mode") {
		return dsn
	}
	const set = "plan_cache_mode=force_generic_plan"
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " " + set // keyword/value form
	}
	if strings.Contains(dsn, "?") {
		return dsn + "&" + set
	}
	return dsn + "?" + set
}

// quote quotes a validated identifier, schema-qualified or not.
func (d dialect) quote(name string) string {
	q := `"`
	if d.name == "mysql" {
		q = "`"
	}
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = q + strings.ReplaceAll(p, q, q+q) + q
	}
	return strings.Join(parts, ".")
}

// placeholder returns the marker for the n-th (1-based) argument.
func (d dialect) placeholder(n int) string {
	if d.name == "postgres" {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// lockRows is appended to a SELECT whose rows the transaction will delete
// or update. SQLite locks the whole database for a write transaction
// instead.
func (d dialect) lockRows() string {
	if d.name == "sqlite" {
		return ""
	}
	return " FOR UPDATE"
}

// Every batch, delete or pseudonymize, is one short transaction that
// first selects (and locks) the batch's primary keys through the indexed
// lookups of where, then changes exactly those rows by primary key. The
// change itself never carries the subject's condition: MariaDB plans
// DELETE ... WHERE col IN (subquery) ORDER BY pk LIMIT n as a walk of the
// whole primary key with a dependent subquery per row, locking every row
// it walks under REPEATABLE READ, so concurrent erasures of different
// subjects deadlocked. A SELECT with the same condition is planned through
// the indexes (semi-join materialization), and a change by primary key
// locks only the rows it changes. PostgreSQL and SQLite take the same path
// so that there is one way a batch works.

// Limits on the statements that change a batch by primary key.
const (
	// maxKeysPerStmt bounds one IN list: SQLite allows 32,766 parameters
	// per statement by default, MySQL and PostgreSQL 65,535, and
	// batch_size may be up to 100,000.
	maxKeysPerStmt = 8192
	// maxCaseRows bounds the rows of one CASE update (MySQL, SQLite): each
	// row's CASE is evaluated by walking its WHEN list, so the work grows
	// with the square of the rows per statement.
	maxCaseRows = 256
)

// maxParams is the most parameters one statement may carry.
func (d dialect) maxParams() int {
	if d.name == "sqlite" {
		return 32766
	}
	return 65535
}

// keyList writes an IN list of keys as parameters. The list is padded to
// the next power of two by repeating the last key (harmless in IN): pgx
// prepares and caches every distinct statement text, and batches of every
// size from 1 to batch_size would each be a new statement.
func (q *query) keyList(keys []any) string {
	n := 1
	for n < len(keys) {
		n *= 2
	}
	ph := make([]string, n)
	for i := range ph {
		ph[i] = q.arg(keys[min(i, len(keys)-1)])
	}
	return strings.Join(ph, ", ")
}

// in writes "expr IN list" for values of one type. PostgreSQL gets the
// list as one array parameter (expr = ANY($n)) where array allows it
// (column.array): the statement's text is then the same for every list
// length, so each connection plans it once and runs its generic plan from
// then on, where a text per length (as padded IN lists still give) was
// planned again and again; planning these nested statements cost
// PostgreSQL twice as much as running them. Otherwise the list is padded
// (keyList): MySQL and SQLite have no array parameters.
func (q *query) in(expr string, vals []any, array bool) string {
	if array && q.d.name == "postgres" {
		return fmt.Sprintf("%s = ANY(%s)", expr, q.arg(vals))
	}
	return fmt.Sprintf("%s IN (%s)", expr, q.keyList(vals))
}

// assign is one column a pseudonymize batch rewrites.
type assign struct {
	col string // unquoted
	// perRow: the values differ by row (hash, redact_email, random) and
	// come from rows; otherwise every row gets value (NULL when nil).
	perRow bool
	value  any
}

// keyed is one row of a pseudonymize batch: its primary key (one value per
// key column) and the new value of each perRow column, in the order of the
// assignments.
type keyed struct {
	pk   []any
	vals []any
}

// updateRows writes the statements (with their arguments) that give each
// row its new values by primary key: one statement for the whole batch on
// PostgreSQL, one per maxCaseRows rows elsewhere. Values travel only as
// parameters.
func (d dialect) updateRows(table string, pk []string, sets []assign, rows []keyed) ([]query, error) {
	perRow := slices.ContainsFunc(sets, func(a assign) bool { return a.perRow })
	if d.name == "postgres" && perRow {
		q, err := d.updateFromJSON(table, pk, sets, rows)
		if err != nil {
			return nil, err
		}
		return []query{q}, nil
	}
	size := maxKeysPerStmt
	if perRow {
		size = maxCaseRows
	}
	var out []query
	for len(rows) > 0 {
		chunk := rows[:min(len(rows), size)]
		rows = rows[len(chunk):]
		q := query{d: d}
		list := make([]string, len(sets))
		i := 0
		for j, a := range sets {
			c := d.quote(a.col)
			switch {
			case a.perRow:
				// CASE pk WHEN k THEN v ...: MySQL and SQLite share no way
				// of joining a list of values in an UPDATE (multi-table
				// UPDATE there, UPDATE ... FROM here), and CASE compares pk
				// with the column's own rules, as IN does. MySQL applies
				// assignments left to right, each seeing the ones before;
				// CASE reads only pk, which is never rewritten, and the
				// column's own old value.
				var b strings.Builder
				fmt.Fprintf(&b, "%s = CASE", c)
				for _, r := range chunk {
					conds := make([]string, len(pk))
					for k, col := range pk {
						conds[k] = d.quote(col) + " = " + q.arg(r.pk[k])
					}
					fmt.Fprintf(&b, " WHEN %s THEN %s", strings.Join(conds, " AND "), q.arg(r.vals[i]))
				}
				// ELSE keeps the value rather than NULLing it should a
				// key ever fail to compare equal; Verify then says so.
				fmt.Fprintf(&b, " ELSE %s END", c)
				list[j] = b.String()
				i++
			case a.value == nil:
				list[j] = c + " = NULL"
			default:
				list[j] = c + " = " + q.arg(a.value)
			}
		}
		keys := make([][]any, len(chunk))
		for k, r := range chunk {
			keys[k] = r.pk
		}
		q.text = fmt.Sprintf("UPDATE %s SET %s WHERE %s IN (%s)", d.quote(table), strings.Join(list, ", "), d.keyCols(pk), q.tupleList(keys))
		out = append(out, q)
	}
	return out, nil
}

// updateFromJSON writes PostgreSQL's batch update: the rows travel as one
// JSON parameter that json_populate_recordset turns into records of the
// table's own row type, so every value gets its column's type without the
// statement naming any type, and the statement text is the same for every
// batch (pgx prepares it once per connection).
func (d dialect) updateFromJSON(table string, pk []string, sets []assign, rows []keyed) (query, error) {
	q := query{d: d}
	list := make([]string, len(sets))
	var perRow []string
	for j, a := range sets {
		c := d.quote(a.col)
		switch {
		case a.perRow:
			list[j] = fmt.Sprintf("%s = lethe_v.%s", c, c)
			perRow = append(perRow, a.col)
		case a.value == nil:
			list[j] = c + " = NULL"
		default:
			list[j] = c + " = " + q.arg(a.value)
		}
	}
	objs := make([]map[string]any, len(rows))
	for i, r := range rows {
		o := make(map[string]any, len(perRow)+1)
		for k, col := range pk {
			o[col] = jsonKey(r.pk[k])
		}
		for k, col := range perRow {
			o[col] = r.vals[k]
		}
		objs[i] = o
	}
	doc, err := json.Marshal(objs)
	if err != nil {
		return query{}, fmt.Errorf("encode batch: %w", err)
	}
	t := d.quote(table)
	join := make([]string, len(pk))
	for k, col := range pk {
		join[k] = fmt.Sprintf("lethe_t.%s = lethe_v.%s", d.quote(col), d.quote(col))
	}
	q.text = fmt.Sprintf("UPDATE %s AS lethe_t SET %s FROM json_populate_recordset(NULL::%s, %s) AS lethe_v WHERE %s",
		t, strings.Join(list, ", "), t, q.arg(string(doc)), strings.Join(join, " AND "))
	return q, nil
}

// jsonKey renders a primary key scanned from PostgreSQL so that
// json_populate_recordset reads back the same value: bytea in its hex
// input form (JSON would carry []byte as base64); everything else pgx
// returns (integers, strings for text, uuid and numeric, times) already
// round-trips through its JSON form.
func jsonKey(v any) any {
	if b, ok := v.([]byte); ok {
		return `\x` + hex.EncodeToString(b)
	}
	return v
}

// colKind is what matters about a column's type when comparing it with an
// identity value, which is always a string.
type colKind int

const (
	kindText colKind = iota
	// kindInt: only integer-looking values are compared. PostgreSQL would
	// fail the whole query on a non-integer (and quote the value in the
	// error); MySQL would cast "42abc" to 42 and match the wrong person.
	kindInt
	// kindUUID (PostgreSQL): only UUID-looking values, for the same reason.
	kindUUID
)

// column is one column of the live schema.
type column struct {
	dataType string
	kind     colKind
	// array: a list compared with the column may travel as one array
	// parameter (query.in). pgx encodes arrays of the types it knows
	// only: a column of an extension's or the user's own type (citext,
	// an enum) gets an IN list, whose parameters the server types.
	array bool
}

// arrayTypes are the PostgreSQL data types (as information_schema.columns
// names them) of columns that take array parameters: those of identities
// and keys.
var arrayTypes = map[string]bool{"text": true, "character varying": true, "character": true,
	"smallint": true, "integer": true, "bigint": true, "uuid": true}

// columns returns the columns of table in the live schema; an empty map
// means the table does not exist.
func (d dialect) columns(ctx context.Context, db *sql.DB, table string) (map[string]column, error) {
	schema, name, qualified := strings.Cut(table, ".")
	if !qualified {
		name, schema = schema, ""
	}
	var q string
	var args []any
	switch d.name {
	case "postgres":
		q = `SELECT column_name, data_type FROM information_schema.columns
			WHERE table_schema = COALESCE(NULLIF($1, ''), current_schema()) AND table_name = $2`
		args = []any{schema, name}
	case "mysql":
		q = `SELECT column_name, data_type FROM information_schema.columns
			WHERE table_schema = COALESCE(NULLIF(?, ''), DATABASE()) AND table_name = ?`
		args = []any{schema, name}
	case "sqlite":
		if schema == "" {
			schema = "main"
		}
		q = `SELECT name, type FROM pragma_table_info(?, ?)`
		args = []any{name, schema}
	}
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols := map[string]column{}
	for rows.Next() {
		var n, typ string
		if err := rows.Scan(&n, &typ); err != nil {
			return nil, err
		}
		cols[n] = column{dataType: typ, kind: d.kindOf(typ), array: d.name == "postgres" && arrayTypes[typ]}
	}
	return cols, rows.Err()
}

func (d dialect) kindOf(dataType string) colKind {
	t := strings.ToLower(dataType)
	switch {
	case d.name == "sqlite":
		// SQLite's affinity rule: any declared type containing INT.
		if strings.Contains(t, "int") {
			return kindInt
		}
	case strings.HasSuffix(t, "int") || t == "integer" || t == "serial" || t == "bigserial":
		return kindInt // smallint, integer, bigint, tinyint, mediumint, int
	case t == "uuid":
		return kindUUID
	}
	return kindText
}

// textual reports whether strategies producing text may write the column.
func (c column) textual() bool { return c.kind == kindText }

// missing reports whether err says a table or column does not exist:
// retrying cannot fix that, so the pipeline should fail the task at once.
func (d dialect) missing(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	m := err.Error()
	switch d.name {
	case "postgres":
		return strings.Contains(m, "SQLSTATE 42P01") || strings.Contains(m, "SQLSTATE 42703")
	case "mysql":
		return strings.Contains(m, "Error 1146") || strings.Contains(m, "Error 1054")
	case "sqlite":
		return strings.Contains(m, "no such table") || strings.Contains(m, "no such column")
	}
	return false
}

// phoneFilter returns the expression and LIKE pattern of the phone
// rule's candidate filter for a number whose national significant number
// is nsn: every written form of the number holds those digits. On
// PostgreSQL the column's digits (non-digits stripped) must contain them
// as a run, which a trigram index on that expression serves
// (docs/datamap.md). Elsewhere no index can serve a phone match, and
// rewriting every row costs a regular expression (MySQL) or eleven
// replace calls (SQLite) per row, so the value itself must hold the
// digits in order with anything between them ("+44 7911 123-456",
// "(07911) 123456"): a wider filter, read without rewriting anything.
// CanonicalPhone then decides.
func (d dialect) phoneFilter(col, nsn string) (expr, pattern string) {
	if d.name == "postgres" {
		return fmt.Sprintf("regexp_replace(CAST(%s AS TEXT), '[^0-9]', '', 'g')", col), "%" + nsn + "%"
	}
	var b strings.Builder
	b.WriteByte('%')
	for _, r := range nsn {
		b.WriteRune(r)
		b.WriteByte('%')
	}
	typ := "TEXT"
	if d.name == "mysql" {
		typ = "CHAR"
	}
	return "CAST(" + col + " AS " + typ + ")", b.String()
}

// lowerTrim is the expression the case-insensitive rule compares: an
// index on exactly this expression serves it (see the package
// documentation).
func (d dialect) lowerTrim(expr string) string {
	return "lower(trim(" + expr + "))"
}

// keyCols writes a primary key for comparison: the column, or a row value
// of the columns of a composite key.
func (d dialect) keyCols(key []string) string {
	cols := make([]string, len(key))
	for i, k := range key {
		cols[i] = d.quote(k)
	}
	if len(cols) == 1 {
		return cols[0]
	}
	return "(" + strings.Join(cols, ", ") + ")"
}

// tupleList is keyList for keys of any width: one parameter per key
// column, in row values when a key has several.
func (q *query) tupleList(keys [][]any) string {
	if len(keys) > 0 && len(keys[0]) == 1 {
		flat := make([]any, len(keys))
		for i, k := range keys {
			flat[i] = k[0]
		}
		return q.keyList(flat)
	}
	n := 1
	for n < len(keys) {
		n *= 2
	}
	out := make([]string, n)
	for i := range out {
		k := keys[min(i, len(keys)-1)]
		ph := make([]string, len(k))
		for j, v := range k {
			ph[j] = q.arg(v)
		}
		out[i] = "(" + strings.Join(ph, ", ") + ")"
	}
	return strings.Join(out, ", ")
}
