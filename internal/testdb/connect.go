package testdb

import (
	"context"
	"database/sql"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-privacy/lethe/internal/connlimit"
)

// The test servers may be shared with other runs and other people, so a
// connection refused because the server is full at that moment is waited
// out like lethe waits it out (connlimit), quietly: the test's output is
// not the place for it.
var fullServer = connlimit.Waiter{What: "test database", Log: slog.New(slog.DiscardHandler)}

// whileFull runs open until it succeeds, fails otherwise than by a full
// server, or connlimit.DefaultWait passes.
func whileFull[T any](ctx context.Context, open func(context.Context) (T, error)) (T, error) {
	return connlimit.Wait(ctx, fullServer, open)
}

// pgConnect opens one connection to the test PostgreSQL at dsn, waiting
// while the server is full.
func pgConnect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	return whileFull(ctx, func(ctx context.Context) (*pgx.Conn, error) { return pgx.Connect(ctx, dsn) })
}

// OpenDB opens a pool of sqlDriver (database/sql's name: "pgx", "mysql",
// "sqlite") on dsn for a test's own reads and writes, capped at
// TargetMaxConns, each connection waiting while the server is full, and
// closed after the test.
func OpenDB(tb testing.TB, sqlDriver, dsn string) *sql.DB {
	tb.Helper()
	db, err := connlimit.OpenDB(sqlDriver, dsn, fullServer)
	if err != nil {
		tb.Fatalf("open %s: %v", sqlDriver, err)
	}
	db.SetMaxOpenConns(TargetMaxConns)
	tb.Cleanup(func() { db.Close() })
	return db
}
