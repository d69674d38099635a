package storetest

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// The at-rest checks read the database around the store, as an attacker
// with a copy of it would, to prove values are sealed or hashed.

// rawRows returns every row of query as byte strings, read around the
// store through its driver.
func rawRows(t *testing.T, s store.Store, query string) [][][]byte {
	t.Helper()
	ctx := context.Background()
	var out [][][]byte
	switch db := s.Driver().(type) {
	case *sql.DB:
		rows, err := db.QueryContext(ctx, query)
		if err != nil {
			t.Fatal(err)
		}
		_, all := testdb.ScanRows(t, rows)
		for _, vals := range all {
			out = append(out, toBytes(vals))
		}
	case *pgxpool.Pool:
		rows, err := db.Query(ctx, query)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, toBytes(vals))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("cannot read %T raw", db)
	}
	return out
}

func toBytes(vals []any) [][]byte {
	out := make([][]byte, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case []byte:
			out[i] = v
		case string:
			out[i] = []byte(v)
		default:
			out[i] = fmt.Append(nil, v)
		}
	}
	return out
}

// assertAbsent fails if plaintext appears in any column of any row of table.
func assertAbsent(t *testing.T, s store.Store, table, plaintext string) {
	t.Helper()
	rows := rawRows(t, s, "SELECT * FROM "+table)
	if len(rows) == 0 {
		t.Fatalf("table %s is empty; nothing was checked", table)
	}
	for _, row := range rows {
		for _, col := range row {
			if bytes.Contains(col, []byte(plaintext)) {
				t.Fatalf("table %s holds the plaintext", table)
			}
		}
	}
}
