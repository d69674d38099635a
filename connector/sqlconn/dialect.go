package sqlconn

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

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

// deleteBatch deletes at most limit rows matching where. MySQL and MariaDB
// have DELETE ... LIMIT (and refuse LIMIT inside an IN subquery); PostgreSQL
// and SQLite (as usually built) have no DELETE ... LIMIT, so the batch is
// picked by primary key in a subquery.
func (d dialect) deleteBatch(table, pk, where string, limit int) string {
	if d.name == "mysql" {
		return fmt.Sprintf("DELETE FROM %s WHERE %s ORDER BY %s LIMIT %d", table, where, pk, limit)
	}
	return fmt.Sprintf("DELETE FROM %s WHERE %s IN (SELECT %s FROM %s WHERE %s LIMIT %d)", table, pk, pk, table, where, limit)
}

// lockRows is appended to a SELECT whose rows the transaction will update.
// SQLite locks the whole database for a write transaction instead.
func (d dialect) lockRows() string {
	if d.name == "sqlite" {
		return ""
	}
	return " FOR UPDATE"
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
}

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
		cols[n] = column{dataType: typ, kind: d.kindOf(typ)}
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
