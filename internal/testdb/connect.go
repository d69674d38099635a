package testdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The test servers may be shared with other runs and other people, so a
// connection refused because the server is full at that moment is waited
// out, not failed: up to fullServerWait, backing off from 50 ms to 2 s.
const fullServerWait = 2 * time.Minute

// serverFull says err is the server refusing a connection because it has
// as many as it allows: PostgreSQL's too_many_connections (53300), or
// MariaDB's ER_CON_COUNT_ERROR (1040).
func serverFull(err error) bool {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pe.Code == "53300"
	}
	if me, ok := errors.AsType[*mysql.MySQLError](err); ok {
		return me.Number == 1040
	}
	return false
}

// whileFull runs open until it succeeds, fails otherwise than by a full
// server, or fullServerWait passes (its last error then).
func whileFull[T any](ctx context.Context, open func(context.Context) (T, error)) (T, error) {
	deadline := time.Now().Add(fullServerWait)
	wait := 50 * time.Millisecond
	for {
		v, err := open(ctx)
		if err == nil || !serverFull(err) || time.Now().Add(wait).After(deadline) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
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
	db, err := sql.Open(sqlDriver, dsn)
	if err != nil {
		tb.Fatalf("open %s: %v", sqlDriver, err)
	}
	if dc, ok := db.Driver().(driver.DriverContext); ok {
		c, err := dc.OpenConnector(dsn)
		if err != nil {
			db.Close()
			tb.Fatalf("open %s: %v", sqlDriver, err)
		}
		db.Close()
		db = sql.OpenDB(patientConnector{c})
	}
	db.SetMaxOpenConns(TargetMaxConns)
	tb.Cleanup(func() { db.Close() })
	return db
}

// patientConnector is a driver.Connector that waits while the server is
// full (database/sql only retries a connection on driver.ErrBadConn).
type patientConnector struct{ driver.Connector }

func (c patientConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := whileFull(ctx, c.Connector.Connect)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return conn, nil
}
