// Package sqlite is lethe's embedded store: one SQLite file (modernc.org/sqlite,
// pure Go) in WAL mode, shared with River through the same *sql.DB.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pressly/goose/v3"
	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DefaultMaxOpenConns is the pool size when Options.MaxOpenConns is 0.
//
// River's SQLite driver advises one connection because with deferred
// transactions a read that turns into a write fails with SQLITE_BUSY at
// once, busy_timeout or not. Here every transaction is BEGIN IMMEDIATE
// (see dsn), River's included (it begins through database/sql), so a
// writer waits for the lock at BEGIN through busy_timeout and that failure
// cannot happen; TestSharedWithRiver runs River's fetching and completing
// against intake-like transactions and readers on this pool under -race.
//
// Why more than one: with a single connection, a pool call made while a
// transaction holds the connection (a Store method used by mistake inside
// InTx, anything River does during a long transaction) hangs until its
// context ends, and one slow read stalls every writer. With a few, WAL
// readers run beside the writer and such a mistake surfaces as an error
// after busy_timeout instead of a hang. Why only four: writes serialise on
// the file anyway; the pool's transactions take turns at the write gate
// (writegate.go) rather than polling in SQLite's busy handler, but more
// connections buy no more writes. Callers that want it can set
// MaxOpenConns to 1.
const DefaultMaxOpenConns = 4

// ReadConns is the size of the store's second pool, which serves its
// reads outside transactions (a request's view, a list, a status poll).
//
// Why a pool of their own: a writer holds its pool connection while it
// waits at BEGIN IMMEDIATE for the write lock (up to BusyTimeout), so a
// few writers queued behind a slow one fill the writers' pool, and a read
// that needs no lock at all (WAL) would wait for one of them to finish,
// behind every other queued writer, until its caller gave up. Under load
// that turned GET /v1/deletion-requests/{id} into a wait of many seconds
// and a "context canceled" once the client left. Readers never take the
// write lock (query_only), so this pool is never held by a wait.
const ReadConns = 2

// BusyTimeout is how long a statement waits for the write lock before
// failing with SQLITE_BUSY.
const BusyTimeout = 10 * time.Second

// Options configure Open.
type Options struct {
	// Keyring seals identities and HMAC secrets. Required.
	Keyring *seal.Keyring
	// MaxOpenConns bounds the pool. Default DefaultMaxOpenConns.
	MaxOpenConns int
	// StatementCacheSize is how many prepared statements each connection
	// keeps (see stmtcache.go). Default DefaultStatementCacheSize;
	// negative turns the cache off.
	StatementCacheSize int
}

// Store is a store.Store on SQLite, with Migrate.
type Store struct {
	*sqlstore.Store
	db    *sql.DB
	stmts *statementCache
}

// readPool opens the readers' pool (see ReadConns), sharing stmts' schema
// counter so DDL run by a writer empties the readers' caches too.
func readPool(path string, stmts *statementCache) (*sql.DB, error) {
	base, err := msqlite.NewConnector(readDSN(path))
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(&statementCache{base: base, size: stmts.size, schema: stmts.schema, stats: stmts.stats})
	db.SetMaxOpenConns(ReadConns)
	db.SetMaxIdleConns(ReadConns)
	db.SetConnMaxLifetime(0)
	return db, nil
}

// DB returns the pool, for tests and tools that need raw access.
func (s *Store) DB() *sql.DB { return s.db }

// StatementCacheStats returns the pool's statement cache counters.
func (s *Store) StatementCacheStats() *StatementCacheStats { return s.stmts.stats }

// Open opens (creating if needed) the database file at path. It does not
// migrate: call Migrate. Ready fails until the schema is current.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("open sqlite: a path is required")
	}
	if opts.Keyring == nil {
		return nil, errors.New("open sqlite: a Keyring is required")
	}
	if opts.MaxOpenConns < 0 {
		return nil, errors.New("open sqlite: MaxOpenConns must not be negative")
	}
	n := opts.MaxOpenConns
	if n == 0 {
		n = DefaultMaxOpenConns
	}
	if err := CreatePrivateFile(path); err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	size := opts.StatementCacheSize
	if size == 0 {
		size = DefaultStatementCacheSize
	}
	base, err := msqlite.NewConnector(dsn(path))
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	stmts := &statementCache{base: base, size: size, schema: new(atomic.Uint64), stats: new(StatementCacheStats), gate: make(writeGate, 1)}
	db := sql.OpenDB(stmts)
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	// Connections never expire: each new one repeats the pragmas and drops
	// SQLite's page cache, and a local file has no server to time us out.
	db.SetConnMaxLifetime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	reads, err := readPool(path, stmts)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	st, err := newStore(conn{db: db, reads: reads}, opts.Keyring)
	if err != nil {
		db.Close()
		reads.Close()
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	return &Store{Store: st, db: db, stmts: stmts}, nil
}

// CreatePrivateFile creates a database file, empty and readable by its
// owner only (0600), when it does not exist yet: lethe's holds sealed
// identities, keyed hashes and the audit chain, and SQLite would create it
// with the umask's mode (usually 0644). SQLite gives its -wal and -shm
// files the mode of the database file. An existing file is left as it is.
func CreatePrivateFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

func newStore(c conn, kr *seal.Keyring) (*sqlstore.Store, error) {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	m, err := sqlstore.NewMigrator(goose.DialectSQLite3, c.db, fsys, false)
	if err != nil {
		return nil, err
	}
	return sqlstore.New(sqlstore.Config{Conn: c, Dialect: dialect, Keyring: kr, Migrator: m})
}

// dsn builds the modernc.org/sqlite connection string. The pragmas run on
// every new connection of the pool:
//   - busy_timeout first, so the others (and every later statement) wait
//     for a lock instead of failing at once;
//   - WAL, so readers never block the writer or each other;
//   - foreign_keys, off by default in SQLite;
//   - synchronous NORMAL, the recommended pairing with WAL: a commit
//     survives a process crash, only an OS crash may lose the last ones;
//   - temp_store MEMORY: a statement's own undo journal (SQLite keeps one
//     for a statement that may fail half-way, e.g. an insert into a table
//     with several unique indexes) is a temporary file otherwise, written
//     with a system call per page on every such insert; it is never needed
//     after the statement, so nothing durable is lost;
//   - _txlock=immediate, so every transaction takes the write lock at
//     BEGIN and never fails later on a lock upgrade that the busy handler
//     cannot wait out.
func dsn(path string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Set("_txlock", "immediate")
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// readDSN is dsn for the readers' pool: the same pragmas, and query_only
// so that a write sent there by mistake fails instead of taking the lock
// this pool exists not to wait for.
func readDSN(path string) string {
	return dsn(path) + "&_pragma=query_only%281%29"
}

var dialect = &sqlstore.Dialect{
	Name: "sqlite",
	EncodeTime: func(t time.Time) any {
		return t.UnixMicro()
	},
	IsUniqueViolation: func(err error) bool {
		var e *msqlite.Error
		if !errors.As(err, &e) {
			return false
		}
		return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	},
}

// conn adapts *sql.DB to sqlstore.Conn. A SELECT outside a transaction
// goes to reads (see ReadConns) when there is one; everything else,
// including the store's INSERT/UPDATE ... RETURNING run through Query,
// goes to db.
type conn struct{ db, reads *sql.DB }

func (c conn) pool(q string) *sql.DB {
	if c.reads != nil && isSelect(q) {
		return c.reads
	}
	return c.db
}

// isSelect reports whether q starts with SELECT: a plain read. A
// statement it misjudges as a read fails on the readers' query_only
// connections rather than writing there.
func isSelect(q string) bool {
	q = strings.TrimLeft(q, " \t\r\n(")
	return len(q) >= 6 && strings.EqualFold(q[:6], "SELECT")
}

func (c conn) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	return execResult(c.db.ExecContext(ctx, q, args...))
}

func (c conn) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	return c.pool(q).QueryContext(ctx, q, args...)
}

func (c conn) QueryRow(ctx context.Context, q string, args ...any) sqlstore.Row {
	return c.pool(q).QueryRowContext(ctx, q, args...)
}

func (c conn) Begin(ctx context.Context) (sqlstore.TxConn, error) {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return txConn{tx}, nil
}

func (c conn) Ping(ctx context.Context) error { return c.db.PingContext(ctx) }
func (c conn) Driver() any                    { return c.db }
func (c conn) Close() error {
	err := c.db.Close()
	if c.reads != nil {
		err = errors.Join(err, c.reads.Close())
	}
	return err
}

type txConn struct{ tx *sql.Tx }

func (t txConn) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	return execResult(t.tx.ExecContext(ctx, q, args...))
}

func (t txConn) Query(ctx context.Context, q string, args ...any) (sqlstore.Rows, error) {
	return t.tx.QueryContext(ctx, q, args...)
}

func (t txConn) QueryRow(ctx context.Context, q string, args ...any) sqlstore.Row {
	return t.tx.QueryRowContext(ctx, q, args...)
}

func (t txConn) Commit(context.Context) error   { return t.tx.Commit() }
func (t txConn) Rollback(context.Context) error { return t.tx.Rollback() }
func (t txConn) Driver() any                    { return t.tx }

func execResult(r sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}
