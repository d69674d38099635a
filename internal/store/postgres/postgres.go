// Package postgres is lethe's store on PostgreSQL, through pgx's own pool
// (not database/sql) because River's riverpgxv5 driver needs pgx
// transactions to insert jobs atomically with the store's writes.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/lethe-privacy/lethe/internal/connlimit"
	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options configure Open.
type Options struct {
	// Keyring seals identities and HMAC secrets. Required.
	Keyring *seal.Keyring
	// MaxConns bounds the pool; 0 keeps the DSN's pool_max_conns or pgx's
	// default (the larger of 4 and the number of CPUs). River's workers
	// draw from the same pool.
	MaxConns int32
	// FullServerWait bounds how long opening the store, and each new
	// connection of its pool after that, waits while the server refuses
	// connections as full (too many clients, or the role's CONNECTION
	// LIMIT); 0 means connlimit.DefaultWait (2 minutes). A caller's
	// context that ends sooner ends the wait sooner.
	FullServerWait time.Duration
	// Log is told when such a wait starts and ends; nil means
	// slog.Default().
	Log *slog.Logger
}

// Store is a store.Store on PostgreSQL, with Migrate.
type Store struct {
	*sqlstore.Store
	pool *pgxpool.Pool
}

// Pool returns the pool, for tests and tools that need raw access.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Open connects to dsn (a postgres:// URL or key=value string, as pgx
// accepts). It does not migrate: call Migrate. Ready fails until the
// schema is current.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if opts.Keyring == nil {
		return nil, errors.New("open postgres: a Keyring is required")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors can echo the DSN, password included.
		return nil, errors.New("open postgres: the DSN does not parse")
	}
	return OpenConfig(ctx, cfg, opts)
}

// OpenConfig is Open on a parsed pool configuration, for tests that set
// pgx hooks on it (a tracer counting every statement, River's included).
func OpenConfig(ctx context.Context, cfg *pgxpool.Config, opts Options) (*Store, error) {
	if opts.Keyring == nil {
		return nil, errors.New("open postgres: a Keyring is required")
	}
	if opts.MaxConns < 0 {
		return nil, errors.New("open postgres: MaxConns must not be negative")
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.FullServerWait < 0 {
		return nil, errors.New("open postgres: FullServerWait must not be negative")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	c := conn{pool, connlimit.Waiter{What: "postgres store", Max: opts.FullServerWait, Log: opts.Log}}
	if err := c.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	// An advisory lock held for the whole run, so processes starting
	// together migrate one after the other instead of racing. Advisory
	// locks are database-wide; keying it by schema lets lethe instances in
	// different schemas of one database migrate without waiting on each
	// other.
	var schema string
	if err := c.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres: read current schema: %w", err)
	}
	h := fnv.New64a()
	h.Write([]byte("lethe.migrate:" + schema))
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(int64(h.Sum64())),
		lock.WithLockTimeout(1, 600), // poll every second, for up to 10 minutes
	)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	// goose speaks database/sql; this view borrows connections from the
	// pool (waiting like the store's own statements when the server is
	// full) and closing it leaves the pool open. No idle connections of
	// its own: they would be held out of the pool (stdlib.OpenDBFromPool).
	sqlDB := sql.OpenDB(connlimit.Connector(stdlib.GetPoolConnector(pool), c.w))
	sqlDB.SetMaxIdleConns(0)
	m, err := sqlstore.NewMigrator(goose.DialectPostgres, sqlDB, fsys, true, goose.WithSessionLocker(locker))
	if err != nil {
		sqlDB.Close()
		pool.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	st, err := sqlstore.New(sqlstore.Config{Conn: c, Dialect: dialect, Keyring: opts.Keyring, Migrator: m})
	if err != nil {
		sqlDB.Close()
		pool.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	return &Store{Store: st, pool: pool}, nil
}

var dialect = &sqlstore.Dialect{
	Name:      "postgres",
	Numbered:  true,
	ForUpdate: " FOR UPDATE",
	// A transaction-scoped advisory lock per request: appends to one chain
	// queue behind each other (even for events of no request, which have
	// no row to lock), appends to different chains do not. The prefix
	// keeps lethe's keys apart from other users of advisory locks. The
	// locks of many chains are taken in the order of the array (a
	// function scan reads it in order; nothing sorts it).
	LockAuditChains: `SELECT pg_advisory_xact_lock(hashtextextended('lethe.audit:' || id, 0)) FROM unnest(CAST(? AS text[])) AS id`,
	WritableCTE:     true,
	EncodeTime: func(t time.Time) any {
		return t
	},
	IsUniqueViolation: func(err error) bool {
		var e *pgconn.PgError
		return errors.As(err, &e) && e.Code == "23505"
	},
}

// pgxQuerier is what pgxpool.Pool and pgx.Tx have in common.
type pgxQuerier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type querier struct{ q pgxQuerier }

func (q querier) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	tag, err := q.q.Exec(ctx, sql, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (q querier) Query(ctx context.Context, sql string, args ...any) (sqlstore.Rows, error) {
	r, err := q.q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return rows{r}, nil
}

func (q querier) QueryRow(ctx context.Context, sql string, args ...any) sqlstore.Row {
	return q.q.QueryRow(ctx, sql, args...)
}

// rows gives pgx.Rows the database/sql Close signature.
type rows struct{ pgx.Rows }

func (r rows) Close() error {
	r.Rows.Close()
	return r.Rows.Err()
}

// conn is the store's pool. Every statement outside a transaction, and
// every Begin, may need a new connection: while the server refuses it as
// full, it waits (w). Running the call again is safe because a refused
// connection ran nothing; 53300 never comes from a statement lethe runs.
type conn struct {
	pool *pgxpool.Pool
	w    connlimit.Waiter
}

func (c conn) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	return connlimit.Wait(ctx, c.w, func(ctx context.Context) (int64, error) {
		return querier{c.pool}.Exec(ctx, sql, args...)
	})
}

func (c conn) Query(ctx context.Context, sql string, args ...any) (sqlstore.Rows, error) {
	return connlimit.Wait(ctx, c.w, func(ctx context.Context) (sqlstore.Rows, error) {
		return querier{c.pool}.Query(ctx, sql, args...)
	})
}

func (c conn) QueryRow(ctx context.Context, sql string, args ...any) sqlstore.Row {
	// pgx reports a QueryRow's connection error at Scan.
	return rowFunc(func(dest ...any) error {
		return c.w.Do(ctx, func(ctx context.Context) error {
			return c.pool.QueryRow(ctx, sql, args...).Scan(dest...)
		})
	})
}

// rowFunc is a sqlstore.Row from its Scan.
type rowFunc func(dest ...any) error

func (f rowFunc) Scan(dest ...any) error { return f(dest...) }

func (c conn) Begin(ctx context.Context) (sqlstore.TxConn, error) {
	tx, err := connlimit.Wait(ctx, c.w, c.pool.Begin)
	if err != nil {
		return nil, err
	}
	return txConn{querier{tx}, tx}, nil
}

func (c conn) Ping(ctx context.Context) error { return c.w.Do(ctx, c.pool.Ping) }
func (c conn) Driver() any                    { return c.pool }

func (c conn) Close() error {
	c.pool.Close()
	return nil
}

type txConn struct {
	querier
	tx pgx.Tx
}

func (t txConn) Commit(ctx context.Context) error   { return t.tx.Commit(ctx) }
func (t txConn) Rollback(ctx context.Context) error { return t.tx.Rollback(ctx) }
func (t txConn) Driver() any                        { return t.tx }
