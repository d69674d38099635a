package pipeline

import (
	"context"
	"database/sql"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// openStore opens a fresh store (testdb.OpenStore) with River's tables
// migrated too. PostgreSQL tests are skipped unless LETHE_TEST_POSTGRES is
// set.
func openStore(t *testing.T, dialect string) store.Store {
	t.Helper()
	st := testdb.OpenStore(t, dialect)
	migratePipeline(t, st)
	return st
}

// migratePipeline applies River's migrations to st and checks them.
func migratePipeline(t *testing.T, st store.Store) {
	t.Helper()
	ctx := context.Background()
	if err := Migrate(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := CheckMigrations(ctx, st); err != nil {
		t.Fatal(err)
	}
}

// execSQL runs one of two statements on the store's pool, by dialect:
// tests reach into River's table to simulate what only a crash can do.
func execSQL(t *testing.T, st store.Store, sqliteQuery, postgresQuery string) {
	t.Helper()
	ctx := context.Background()
	switch db := st.Driver().(type) {
	case *sql.DB:
		if _, err := db.ExecContext(ctx, sqliteQuery); err != nil {
			t.Fatalf("%s: %v", sqliteQuery, err)
		}
	case *pgxpool.Pool:
		if _, err := db.Exec(ctx, postgresQuery); err != nil {
			t.Fatalf("%s: %v", postgresQuery, err)
		}
	default:
		t.Fatalf("unknown pool %T", db)
	}
}

// queryStrings returns the first column of a query's rows, by dialect.
func queryStrings(t *testing.T, st store.Store, sqliteQuery, postgresQuery string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	switch db := st.Driver().(type) {
	case *sql.DB:
		rows, err := db.QueryContext(ctx, sqliteQuery)
		if err != nil {
			t.Fatalf("%s: %v", sqliteQuery, err)
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	case *pgxpool.Pool:
		rows, err := db.Query(ctx, postgresQuery)
		if err != nil {
			t.Fatalf("%s: %v", postgresQuery, err)
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown pool %T", db)
	}
	return out
}

// riverJobErrors returns the errors River recorded for every job, as JSON.
func riverJobErrors(t *testing.T, st store.Store) []string {
	t.Helper()
	return queryStrings(t, st,
		`SELECT coalesce(json(errors), '') FROM river_job`,
		`SELECT coalesce(array_to_string(errors, ' '), '') FROM river_job`)
}

// riverJobKinds returns the kind of every job in River's table.
func riverJobKinds(t *testing.T, st store.Store) []string {
	t.Helper()
	return queryStrings(t, st, `SELECT kind FROM river_job ORDER BY id`, `SELECT kind FROM river_job ORDER BY id`)
}
