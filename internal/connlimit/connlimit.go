// Package connlimit waits out a database server that refuses a new
// connection because it already has as many as it allows, instead of
// failing: a shared PostgreSQL or MariaDB near max_connections (or a role
// at its CONNECTION LIMIT) usually frees a slot within seconds, and
// lethe's own start-up, its store's pool and its SQL targets' pools would
// otherwise fail on a refusal that waiting fixes. The wait is bounded
// (DefaultWait), so a server that stays full gives a clear error.
package connlimit

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultWait bounds how long a connection is waited for while the server
// refuses it as full, when a Waiter does not say otherwise.
const DefaultWait = 2 * time.Minute

// Backoff between attempts: from firstBackoff doubling up to maxBackoff,
// half of each step random so processes waiting together spread out.
const (
	firstBackoff = 50 * time.Millisecond
	maxBackoff   = 2 * time.Second
)

// Reached says err is a database server refusing a new connection because
// it has as many as it allows: PostgreSQL's too_many_connections (SQLSTATE
// 53300: max_connections, or a role's or database's CONNECTION LIMIT), or
// MySQL/MariaDB's ER_CON_COUNT_ERROR (1040), ER_TOO_MANY_USER_CONNECTIONS
// (1203) or an account's max_user_connections (1226; that number also
// reports hourly quotas, which waiting minutes does not fix, so only the
// max_user_connections form counts).
func Reached(err error) bool {
	return code(err) != ""
}

// code names the refusal in err, "" when err is not one.
func code(err error) string {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		if pe.Code == "53300" {
			return "SQLSTATE 53300"
		}
		return ""
	}
	if me, ok := errors.AsType[*mysql.MySQLError](err); ok {
		switch {
		case me.Number == 1040, me.Number == 1203,
			me.Number == 1226 && strings.Contains(me.Message, "max_user_connections"):
			return fmt.Sprintf("MySQL error %d", me.Number)
		}
	}
	return ""
}

// Waiter says how to wait for one pool or start-up step.
type Waiter struct {
	// What is connecting, for the log and the error ("store", `target
	// "shop"`). Never a DSN, host or user name.
	What string
	// Max bounds the wait; 0 means DefaultWait.
	Max time.Duration
	// Log is told when a wait starts and ends; nil means slog.Default().
	Log *slog.Logger
}

// Error is the refusal still answered after the Waiter's bound (or when
// the caller's context ended first). Its text names neither the DSN nor
// the user: the server's own message (which names the role) is only in
// the wrapped error. Callers add what was connecting, as for any error.
type Error struct {
	Code   string // "SQLSTATE 53300", "MySQL error 1040", ...
	Waited time.Duration
	err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("the database server refused new connections as full (too many connections, %s) for %s",
		e.Code, e.Waited.Round(time.Millisecond))
}

// Unwrap returns the server's error.
func (e *Error) Unwrap() error { return e.err }

// Do runs fn until it succeeds, fails otherwise than by Reached, or the
// wait is over (an *Error then). fn must be safe to run again after a
// refusal: a refused connection ran nothing.
func (w Waiter) Do(ctx context.Context, fn func(context.Context) error) error {
	_, err := Wait(ctx, w, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}

// Wait is Do for a function that returns a value (a connection).
func Wait[T any](ctx context.Context, w Waiter, fn func(context.Context) (T, error)) (T, error) {
	v, err := fn(ctx)
	c := code(err)
	if c == "" {
		return v, err
	}
	log := w.Log
	if log == nil {
		log = slog.Default()
	}
	limit := w.Max
	if limit <= 0 {
		limit = DefaultWait
	}
	start := time.Now()
	deadline := start.Add(limit)
	log.Warn("database server refuses new connections as full; waiting", "what", w.What, "code", c, "max_wait", limit.String())
	step := firstBackoff
	for {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		d := min(step/2+rand.N(step/2+1), left)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, &Error{Code: c, Waited: time.Since(start), err: err}
		case <-t.C:
		}
		step = min(2*step, maxBackoff)
		v, err = fn(ctx)
		if c = code(err); c == "" {
			if err == nil {
				log.Info("database server accepted the connection after waiting", "what", w.What, "waited", time.Since(start).Round(time.Millisecond).String())
			}
			return v, err
		}
	}
	log.Error("database server stayed full; giving up", "what", w.What, "code", c, "waited", time.Since(start).Round(time.Millisecond).String())
	return v, &Error{Code: c, Waited: time.Since(start), err: err}
}

// Connector makes every new connection of a database/sql pool wait while
// the server is full (database/sql only retries a connection on
// driver.ErrBadConn).
func Connector(c driver.Connector, w Waiter) driver.Connector {
	return connector{c, w}
}

type connector struct {
	driver.Connector
	w Waiter
}

func (c connector) Connect(ctx context.Context) (driver.Conn, error) {
	return Wait(ctx, c.w, c.Connector.Connect)
}

// OpenDB is sql.Open with every new connection waiting while the server is
// full. Like sql.Open it does not connect.
func OpenDB(driverName, dsn string, w Waiter) (*sql.DB, error) {
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, err
	}
	drv := db.Driver()
	db.Close()
	var c driver.Connector = dsnConnector{drv, dsn}
	if dc, ok := drv.(driver.DriverContext); ok {
		if c, err = dc.OpenConnector(dsn); err != nil {
			return nil, err
		}
	}
	return sql.OpenDB(Connector(c, w)), nil
}

// dsnConnector is what database/sql does for a driver without
// DriverContext.
type dsnConnector struct {
	drv driver.Driver
	dsn string
}

func (c dsnConnector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c dsnConnector) Driver() driver.Driver                        { return c.drv }
