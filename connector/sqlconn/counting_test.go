package sqlconn_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/lethe-privacy/lethe/internal/connlimit"
)

// counts is what a target connection saw: statements sent to the database
// (executions, not preparations), commits, and statements run outside an
// explicit transaction (each its own commit when it writes).
type counts struct {
	statements, commits, autocommit atomic.Int64
	// afterCommit, when set, is called after each commit with the
	// commits so far: a test stops a run there, as a crash would.
	afterCommit func(n int64)
}

type snapshotCounts struct{ statements, commits, autocommit int64 }

func (c *counts) snap() snapshotCounts {
	return snapshotCounts{c.statements.Load(), c.commits.Load(), c.autocommit.Load()}
}

func (a snapshotCounts) minus(b snapshotCounts) snapshotCounts {
	return snapshotCounts{a.statements - b.statements, a.commits - b.commits, a.autocommit - b.autocommit}
}

// countingOpen opens dsn with the database/sql driver named driverName
// behind a wrapper that counts what reaches the database, so budgets are
// measured on the target connection itself, not inferred from the code.
func countingOpen(tb testing.TB, c *counts) func(driverName, dsn string) (*sql.DB, error) {
	return func(driverName, dsn string) (*sql.DB, error) {
		probe, err := sql.Open(driverName, dsn)
		if err != nil {
			return nil, err
		}
		drv := probe.Driver()
		probe.Close()
		var inner driver.Connector
		if dc, ok := drv.(driver.DriverContext); ok {
			if inner, err = dc.OpenConnector(dsn); err != nil {
				return nil, err
			}
		} else {
			inner = dsnConnector{drv: drv, dsn: dsn}
		}
		// Waiting while a shared server is full, as the connector does.
		inner = connlimit.Connector(inner, connlimit.Waiter{What: "test target", Log: slog.New(slog.DiscardHandler)})
		return sql.OpenDB(countingConnector{inner: inner, c: c}), nil
	}
}

type dsnConnector struct {
	drv driver.Driver
	dsn string
}

func (d dsnConnector) Connect(context.Context) (driver.Conn, error) { return d.drv.Open(d.dsn) }
func (d dsnConnector) Driver() driver.Driver                        { return d.drv }

type countingConnector struct {
	inner driver.Connector
	c     *counts
}

func (cc countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := cc.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, c: cc.c}, nil
}

func (cc countingConnector) Driver() driver.Driver { return cc.inner.Driver() }

type countingConn struct {
	driver.Conn
	c    *counts
	inTx bool
}

func (k *countingConn) count() {
	k.c.statements.Add(1)
	if !k.inTx {
		k.c.autocommit.Add(1)
	}
}

func (k *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	var tx driver.Tx
	var err error
	if b, ok := k.Conn.(driver.ConnBeginTx); ok {
		tx, err = b.BeginTx(ctx, opts)
	} else {
		tx, err = k.Conn.Begin() //nolint:staticcheck // drivers without BeginTx
	}
	if err != nil {
		return nil, err
	}
	k.inTx = true
	return &countingTx{Tx: tx, k: k}, nil
}

func (k *countingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := k.Conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	res, err := e.ExecContext(ctx, query, args)
	if !errors.Is(err, driver.ErrSkip) {
		k.count()
	}
	return res, err
}

func (k *countingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := k.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	rows, err := q.QueryContext(ctx, query, args)
	if !errors.Is(err, driver.ErrSkip) {
		k.count()
	}
	return rows, err
}

func (k *countingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	var st driver.Stmt
	var err error
	if p, ok := k.Conn.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, query)
	} else {
		st, err = k.Conn.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	return &countingStmt{Stmt: st, k: k}, nil
}

func (k *countingConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := k.Conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func (k *countingConn) ResetSession(ctx context.Context) error {
	if r, ok := k.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (k *countingConn) IsValid() bool {
	if v, ok := k.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

type countingTx struct {
	driver.Tx
	k *countingConn
}

func (t *countingTx) Commit() error {
	t.k.inTx = false
	err := t.Tx.Commit()
	n := t.k.c.commits.Add(1)
	if err == nil && t.k.c.afterCommit != nil {
		t.k.c.afterCommit(n)
	}
	return err
}

func (t *countingTx) Rollback() error {
	t.k.inTx = false
	return t.Tx.Rollback()
}

type countingStmt struct {
	driver.Stmt
	k *countingConn
}

func (s *countingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.k.count()
	if e, ok := s.Stmt.(driver.StmtExecContext); ok {
		return e.ExecContext(ctx, args)
	}
	return nil, errors.New("counting driver: statement without ExecContext")
}

func (s *countingStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.k.count()
	if q, ok := s.Stmt.(driver.StmtQueryContext); ok {
		return q.QueryContext(ctx, args)
	}
	return nil, errors.New("counting driver: statement without QueryContext")
}

func (s *countingStmt) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := s.Stmt.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return s.k.CheckNamedValue(nv)
}
