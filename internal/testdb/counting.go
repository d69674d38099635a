package testdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/store/postgres"
	"github.com/lethe-privacy/lethe/internal/store/sqlite"
)

// Recorder is told of every statement a counted connection runs, for the
// statement budget tests: query is its text ("begin", "commit" and
// "rollback" for the transaction's own), conn names the database
// connection it ran on, and rows is what it touched (rows read by a query,
// changed by a statement; 1 for begin, commit and rollback; 0 for a failed
// query).
type Recorder interface {
	Record(conn any, query string, rows int64)
}

// Tracer is a pgx tracer that records every query, begin and commit
// (pgx sends them all through it) and every query of a batch.
func Tracer(r Recorder) pgx.QueryTracer { return pgTracer{r} }

type pgTracer struct{ r Recorder }

type pgQueryKey struct{}

func (p pgTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, pgQueryKey{}, d.SQL)
}

func (p pgTracer) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, d pgx.TraceQueryEndData) {
	q, _ := ctx.Value(pgQueryKey{}).(string)
	p.r.Record(conn, q, d.CommandTag.RowsAffected())
}

func (p pgTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

func (p pgTracer) TraceBatchQuery(_ context.Context, conn *pgx.Conn, d pgx.TraceBatchQueryData) {
	p.r.Record(conn, d.SQL, d.CommandTag.RowsAffected())
}

func (p pgTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// CountingConnector wraps a database/sql connector (SQLite's) so that its
// connections record what they run; a query is recorded when its rows
// are closed, with the rows read.
func CountingConnector(base driver.Connector, r Recorder) driver.Connector {
	return countingConnector{base: base, r: r}
}

type countingConnector struct {
	base driver.Connector
	r    Recorder
}

func (c countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, r: c.r}, nil
}

func (c countingConnector) Driver() driver.Driver { return c.base.Driver() }

type countingConn struct {
	driver.Conn
	r Recorder
}

func (c *countingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	res, err := c.Conn.(driver.ExecerContext).ExecContext(ctx, q, args)
	var n int64
	if err == nil {
		n, _ = res.RowsAffected()
	}
	c.r.Record(c, q, max(n, 1))
	return res, err
}

func (c *countingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	rows, err := c.Conn.(driver.QueryerContext).QueryContext(ctx, q, args)
	if err != nil {
		c.r.Record(c, q, 0)
		return nil, err
	}
	return &countingRows{Rows: rows, q: q, c: c}, nil
}

func (c *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	tx, err := c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	c.r.Record(c, "begin", 1)
	return countingTx{Tx: tx, c: c}, nil
}

func (c *countingConn) CheckNamedValue(v *driver.NamedValue) error {
	if nc, ok := c.Conn.(driver.NamedValueChecker); ok {
		return nc.CheckNamedValue(v)
	}
	return driver.ErrSkip
}

func (c *countingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

type countingTx struct {
	driver.Tx
	c *countingConn
}

func (t countingTx) Commit() error {
	err := t.Tx.Commit()
	if err == nil {
		t.c.r.Record(t.c, "commit", 1)
	}
	return err
}

func (t countingTx) Rollback() error {
	t.c.r.Record(t.c, "rollback", 1)
	return t.Tx.Rollback()
}

type countingRows struct {
	driver.Rows
	q    string
	n    int64
	c    *countingConn
	done bool
}

func (r *countingRows) Next(dest []driver.Value) error {
	err := r.Rows.Next(dest)
	if err == nil {
		r.n++
	}
	return err
}

func (r *countingRows) Close() error {
	if !r.done {
		r.done = true
		r.c.r.Record(r.c, r.q, r.n)
	}
	return r.Rows.Close()
}

// CountedStore opens a migrated store of dialect whose every statement r
// records, and a second, unrecorded store on the same database for the
// test's own reads. River's tables are the caller's to add (the pipeline
// imports this package's users, not the other way round).
func CountedStore(tb testing.TB, dialect string, r Recorder) (counted, plain MigratedStore) {
	tb.Helper()
	ctx := context.Background()
	kr := Keyring(tb)
	var where string
	switch dialect {
	case "sqlite":
		where = SQLitePath(tb)
		base, err := sqlite.Connector(where)
		if err != nil {
			tb.Fatal(err)
		}
		db := sql.OpenDB(CountingConnector(base, r))
		db.SetMaxOpenConns(sqlite.DefaultMaxOpenConns)
		db.SetMaxIdleConns(sqlite.DefaultMaxOpenConns)
		st, err := sqlite.OpenDB(ctx, db, kr)
		if err != nil {
			tb.Fatal(err)
		}
		counted = st
	case "postgres":
		where = PostgresDSN(tb)
		cfg, err := pgxpool.ParseConfig(where)
		if err != nil {
			tb.Fatal(err)
		}
		cfg.ConnConfig.Tracer = Tracer(r)
		st, err := postgres.OpenConfig(ctx, cfg, postgres.Options{Keyring: kr, MaxConns: PostgresMaxConns})
		if err != nil {
			tb.Fatal(err)
		}
		counted = st
	default:
		tb.Fatalf("unknown dialect %q", dialect)
	}
	tb.Cleanup(func() { counted.Close() })
	if err := counted.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	return counted, OpenMigrated(tb, dialect, where, kr)
}
