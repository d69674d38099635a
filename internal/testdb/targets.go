package testdb

import (
	"database/sql"
	"slices"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// TargetDB is a kind of database the SQL connector erases in: a target's
// database, as opposed to lethe's own store (Dialects).
type TargetDB struct {
	Driver    string // the connector's driver name (sqlconn Options.Driver)
	SQLDriver string // the database/sql driver behind it
}

// TargetDBs are the databases SQL-connector tests run on.
var TargetDBs = []TargetDB{
	{Driver: "sqlite", SQLDriver: "sqlite"},
	{Driver: "postgres", SQLDriver: "pgx"},
	{Driver: "mysql", SQLDriver: "mysql"},
}

// TargetMaxConns bounds a test's own pool on a target database; the
// servers are shared with other test packages and runs.
const TargetMaxConns = 4

// NewDSN creates an empty database of this kind for the test (a SQLite
// file, a PostgreSQL schema, a MariaDB database) and returns the DSN the
// connector and the test reach it by. It is dropped after the test, even
// when the test fails.
func (d TargetDB) NewDSN(tb testing.TB) string {
	tb.Helper()
	switch d.Driver {
	case "sqlite":
		// Foreign keys on, as a real SQLite application runs them; WAL
		// and a long busy timeout so a parallel reader never fails the
		// erasing writer.
		return "file:" + SQLitePath(tb) + "?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate"
	case "postgres":
		return PostgresDSN(tb)
	case "mysql":
		return MariaDBDSN(tb)
	}
	tb.Fatalf("unknown target database %q", d.Driver)
	return ""
}

// Open creates an empty database (NewDSN) and opens a pool on it, capped
// at TargetMaxConns and closed after the test.
func (d TargetDB) Open(tb testing.TB) (dsn string, db *sql.DB) {
	tb.Helper()
	dsn = d.NewDSN(tb)
	return dsn, d.OpenDSN(tb, dsn)
}

// OpenDSN opens a pool on the database at dsn (OpenDB), capped at
// TargetMaxConns and closed after the test.
func (d TargetDB) OpenDSN(tb testing.TB, dsn string) *sql.DB {
	tb.Helper()
	return OpenDB(tb, d.SQLDriver, dsn)
}

// ForEachTargetDB runs test once per target database (TargetDBs), as
// parallel subtests named after its driver.
func ForEachTargetDB(t *testing.T, test func(t *testing.T, d TargetDB)) {
	t.Helper()
	for _, d := range TargetDBs {
		t.Run(d.Driver, func(t *testing.T) {
			t.Parallel()
			test(t, d)
		})
	}
}

// TargetDBsOf returns the target databases of drivers, in that order. An
// unknown driver is a mistake in the test, and panics.
func TargetDBsOf(drivers ...string) []TargetDB {
	var out []TargetDB
	for _, driver := range drivers {
		i := slices.IndexFunc(TargetDBs, func(d TargetDB) bool { return d.Driver == driver })
		if i < 0 {
			panic("testdb: unknown target database " + driver)
		}
		out = append(out, TargetDBs[i])
	}
	return out
}
