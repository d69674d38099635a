package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx", for the PostgreSQL targets
	_ "modernc.org/sqlite"             // driver "sqlite", for the SQLite targets and store

	"github.com/lethe-privacy/lethe/internal/testdb"
)

// backend is where one test keeps lethe's store and its targets: SQLite
// files, or fresh PostgreSQL schemas.
type backend struct {
	name string
	// storeDB is lethe's db setting; storeConn opens it for direct reads.
	storeDB   string
	storeConn *sql.DB
	secretKey string // LETHE_SECRET_KEY; empty on SQLite (a key file is made)
	// newTarget returns a fresh target database: its sqlconn driver and
	// DSN, and a connection for seeding and checking.
	newTarget func(t *testing.T, name string) target
}

type target struct {
	name   string
	driver string // sqlconn's: sqlite | postgres
	dsn    string
	db     *sql.DB
}

// backends returns the backends a crash test runs on; PostgreSQL is
// skipped (by its subtest) without LETHE_TEST_POSTGRES.
func backends() []string { return []string{"sqlite", "postgres"} }

func newBackend(t *testing.T, name string) *backend {
	t.Helper()
	switch name {
	case "sqlite":
		dir := t.TempDir()
		path := filepath.Join(dir, "lethe.db")
		b := &backend{name: name, storeDB: path}
		b.storeConn = openDB(t, "sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
		b.newTarget = func(t *testing.T, name string) target {
			p := filepath.Join(dir, name+".db")
			// WAL lets the test count rows while lethe erases; the busy
			// timeout makes batches wait for the lock instead of failing.
			dsn := "file:" + p + "?_txlock=immediate&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"
			return target{name: name, driver: "sqlite", dsn: dsn, db: openDB(t, "sqlite", dsn)}
		}
		return b
	case "postgres":
		dsn := postgresDSN(t)
		b := &backend{name: name, storeDB: dsn, secretKey: randomKey(t)}
		b.newTarget = func(t *testing.T, name string) target {
			dsn := postgresDSN(t)
			return target{name: name, driver: "postgres", dsn: dsn, db: openDB(t, "pgx", dsn)}
		}
		return b
	}
	t.Fatalf("unknown backend %q", name)
	return nil
}

// connStore opens lethe's store for direct reads; on SQLite only once the
// server has created it.
func (b *backend) conn(t *testing.T) *sql.DB {
	t.Helper()
	if b.storeConn == nil {
		b.storeConn = openDB(t, "pgx", b.storeDB)
	}
	return b.storeConn
}

// openDB opens the test's own pool on a store or target, small and patient
// with a full server (testdb.OpenDB).
func openDB(t *testing.T, driver, dsn string) *sql.DB {
	t.Helper()
	return testdb.OpenDB(t, driver, dsn)
}

func run(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", firstLine(s), err)
		}
	}
}

func count(t *testing.T, db *sql.DB, query string, args ...any) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n int64
	if err := db.QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", firstLine(query), err)
	}
	return n
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

// config is lethe's configuration for a crash test. Timeouts are short so
// that a killed process's jobs are rescued within about a minute:
// rescue_after after the kill, plus up to 30s until River's rescuer looks.
func (b *backend) config(targets []target, tables map[string]string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "db: %q\nadmin_token: ${LETHE_ADMIN_TOKEN}\n", b.storeDB)
	sb.WriteString(`workers:
  concurrency: 6
  backoff_base: 200ms
  backoff_max: 2s
  job_timeout: 10s
  rescue_after: 11s
rate_limits:
  native: {limit: 100000, window: 1m, block: 1s}
targets:
`)
	for _, tg := range targets {
		fmt.Fprintf(&sb, "  - name: %s\n    kind: sql\n    driver: %s\n    dsn: %q\n    tables:\n%s", tg.name, tg.driver, tg.dsn, tables[tg.name])
	}
	return sb.String()
}
