package testdb

import (
	"database/sql"
	"testing"

	"github.com/lethe-privacy/lethe/internal/demo"
)

// ScanRows reads every row of rows as the values its driver returns (nil
// for NULL; byte slices are copies) and closes rows, for tests that dump
// whole tables to compare them before and after an erase.
func ScanRows(tb testing.TB, rows *sql.Rows) (cols []string, out [][]any) {
	tb.Helper()
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		tb.Fatalf("columns: %v", err)
	}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			tb.Fatalf("scan: %v", err)
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		tb.Fatalf("rows: %v", err)
	}
	return cols, out
}

// Rebind turns the ? placeholders of stmt into PostgreSQL's $1, $2, ...
// on PostgreSQL, and returns it unchanged elsewhere (demo.Rebind).
func (d TargetDB) Rebind(stmt string) string {
	return demo.Rebind(d.Driver, stmt)
}
