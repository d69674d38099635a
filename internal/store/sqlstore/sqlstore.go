// Package sqlstore is the one implementation of store.Store, shared by the
// sqlite and postgres packages. Everything that differs between the two
// databases is in a Dialect and behind the small Conn interface, so every
// query and every rule is written, reviewed and tested once.
//
// Queries are written with "?" placeholders; postgres rewrites them to $n.
// Nothing else in the SQL is dialect-specific: both databases accept
// INSERT ... ON CONFLICT, RETURNING and partial indexes.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe/internal/seal"
	"github.com/lethe-privacy/lethe/internal/store"
)

// Querier runs statements; the database/sql and pgx adapters implement it.
type Querier interface {
	// Exec returns the number of rows affected.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) Row
}

// Rows is the subset of *sql.Rows and pgx.Rows the store uses.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// Row is a single-row result; Scan returns an error matching sql.ErrNoRows
// when there is no row (pgx.ErrNoRows does).
type Row interface {
	Scan(dest ...any) error
}

// Conn is a connection pool.
type Conn interface {
	Querier
	Begin(ctx context.Context) (TxConn, error)
	Ping(ctx context.Context) error
	// Driver is what Store.Driver returns.
	Driver() any
	Close() error
}

// TxConn is an open transaction.
type TxConn interface {
	Querier
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
	// Driver is what Tx.Driver returns.
	Driver() any
}

// Dialect holds what differs between the databases.
type Dialect struct {
	// Name is what Store.Dialect returns.
	Name string
	// Numbered placeholders ($1, $2, ...) instead of "?".
	Numbered bool
	// ForUpdate is appended to reads that must lock the row (" FOR UPDATE"),
	// empty where transactions already hold the database's write lock.
	ForUpdate string
	// LockAuditChains, when set, locks the audit chains of the request
	// ids in its array parameter, in the array's order, in one statement,
	// before their heads are read, so concurrent appends to a chain queue
	// instead of forking it. Empty where transactions already serialise
	// writers.
	LockAuditChains string
	// WritableCTE: a WITH clause may hold an INSERT ... RETURNING whose
	// rows the statement's SELECT reads, so a transaction's pending audit
	// events and a read of a chain go in one statement (ListAudit).
	WritableCTE bool
	// EncodeTime turns a UTC time, already truncated to microseconds, into
	// a query argument. Zero times never reach it (they are stored as NULL).
	EncodeTime func(time.Time) any
	// IsUniqueViolation reports whether err is a unique constraint error.
	IsUniqueViolation func(error) bool
}

// rebind rewrites "?" placeholders for dialects that number them. Queries
// in this package never contain a literal "?".
func (d *Dialect) rebind(q string) string {
	if !d.Numbered || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// Config is what New needs.
type Config struct {
	Conn    Conn
	Dialect *Dialect
	Keyring *seal.Keyring
	// Migrator checks readiness and applies the embedded migrations.
	Migrator *Migrator
}

// Store implements store.Store on a Conn.
type Store struct {
	queries
	conn     Conn
	migrator *Migrator
}

var (
	_ store.Store = (*Store)(nil)
	_ store.Tx    = (*Tx)(nil)
)

// New returns a Store. It does not touch the database.
func New(cfg Config) (*Store, error) {
	if cfg.Conn == nil || cfg.Dialect == nil || cfg.Migrator == nil {
		return nil, errors.New("sqlstore: Conn, Dialect and Migrator are required")
	}
	if cfg.Keyring == nil {
		return nil, errors.New("sqlstore: a Keyring is required to seal identities and secrets")
	}
	s := &Store{conn: cfg.Conn, migrator: cfg.Migrator}
	s.queries = queries{d: cfg.Dialect, kr: cfg.Keyring, db: cfg.Conn}
	s.queries.atomic = func(ctx context.Context, fn func(*queries) error) error {
		return s.inTx(ctx, func(t *Tx) error { return fn(&t.queries) })
	}
	return s, nil
}

// InTx implements store.Store.
func (s *Store) InTx(ctx context.Context, fn func(store.Tx) error) error {
	return s.inTx(ctx, func(t *Tx) error { return fn(t) })
}

func (s *Store) inTx(ctx context.Context, fn func(*Tx) error) (err error) {
	tc, err := s.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	t := &Tx{tc: tc}
	t.queries = queries{d: s.d, kr: s.kr, db: tc, inTx: true}
	t.queries.atomic = func(_ context.Context, fn func(*queries) error) error { return fn(&t.queries) }
	committed := false
	defer func() {
		if committed {
			return
		}
		// The caller's context may be what failed; rolling back must not
		// depend on it, or the connection would go back to the pool with
		// the transaction (and on sqlite the write lock) still held.
		rbErr := tc.Rollback(context.WithoutCancel(ctx))
		if err == nil && rbErr != nil {
			err = fmt.Errorf("rollback: %w", rbErr)
		}
	}()
	if err := fn(t); err != nil {
		return err
	}
	if err := t.flushTaskWrites(ctx); err != nil {
		return err
	}
	if err := t.flushAudit(ctx); err != nil {
		return err
	}
	if err := tc.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	committed = true
	for _, f := range t.afterCommit {
		f()
	}
	return nil
}

// Ready implements store.Store.
func (s *Store) Ready(ctx context.Context) error {
	if err := s.conn.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return s.migrator.Check(ctx)
}

// Migrate applies every embedded migration not yet applied.
func (s *Store) Migrate(ctx context.Context) error { return s.migrator.Up(ctx) }

// Dialect implements store.Store.
func (s *Store) Dialect() string { return s.d.Name }

// Driver implements store.Store.
func (s *Store) Driver() any { return s.conn.Driver() }

// Close implements store.Store.
func (s *Store) Close() error {
	return errors.Join(s.migrator.Close(), s.conn.Close())
}

// Tx implements store.Tx.
type Tx struct {
	queries
	tc          TxConn
	afterCommit []func()
}

// Driver implements store.Tx.
func (t *Tx) Driver() any { return t.tc.Driver() }

// AfterCommit implements store.Tx.
func (t *Tx) AfterCommit(fn func()) { t.afterCommit = append(t.afterCommit, fn) }

// queries implements store.Queries once for both the pool and a
// transaction.
type queries struct {
	d    *Dialect
	kr   *seal.Keyring
	db   Querier
	inTx bool
	// atomic runs fn in a transaction: a new one on the pool, the current
	// one inside a Tx. Methods that write more than one statement use it
	// so each Store call stays all-or-nothing.
	atomic func(ctx context.Context, fn func(*queries) error) error
	// chains holds, inside a Tx, the head of every audit chain the
	// transaction appended to: it holds their locks until it ends, so
	// nobody else can move them (AppendAudits); and the empty chain of
	// every request it created, which nobody else can see yet.
	chains map[string]string
	// held holds, inside a Tx, the requests whose row the transaction
	// created, changed or locked: the row exists and nobody else can
	// delete it before the transaction ends, so it need not be read again
	// to know that (AddLinkedIdentities).
	held map[string]bool
	// pending holds, inside a Tx, the audit events appended and not yet
	// stored (AppendAudits): they are stored in one statement before the
	// transaction commits or runs anything else on audit_events.
	pending []pendingAudit
	// noCallback holds, inside a Tx, the requests read or created in it
	// without a callback URL (noteCallbackURL).
	noCallback map[string]bool
	// progress holds, inside a Tx, the task progress computed and not yet
	// stored (AddTaskProgress): it is stored before the transaction
	// commits or runs anything else on tasks, or with FinishTask's UPDATE.
	progress map[taskKey]pendingProgress
	// created holds, inside a Tx, the tasks its CreateTasks inserted, until
	// its next write; plans, the plans SetTaskPlan set on them and has not
	// stored yet (stored like progress, or with StartTaskAttempt's UPDATE).
	created map[taskKey]bool
	plans   map[taskKey]pendingProgress
}

// hold records, inside a Tx, that the transaction holds request id's row.
func (q *queries) hold(id string) {
	if !q.inTx {
		return
	}
	if q.held == nil {
		q.held = map[string]bool{}
	}
	q.held[id] = true
}

// flushPending stores what the transaction wrote and has not stored yet
// on the tables query names, before query runs and must see it: audit
// events (AppendAudits) before a statement on audit_events (a receipt
// reading the chain, a purge deleting it), task progress
// (AddTaskProgress) and plans (SetTaskPlan) before one on tasks.
func (q *queries) flushPending(ctx context.Context, query string) error {
	if len(q.pending) > 0 && strings.Contains(query, "audit_events") {
		if err := q.flushAudit(ctx); err != nil {
			return err
		}
	}
	if (len(q.progress) > 0 || len(q.plans) > 0) && strings.Contains(query, "tasks") {
		if err := q.flushTaskWrites(ctx); err != nil {
			return err
		}
	}
	// Tasks created by the transaction are known untouched until it
	// writes anything (SetTaskPlan).
	if len(q.created) > 0 && !strings.HasPrefix(strings.TrimSpace(query), "SELECT") {
		q.created = nil
	}
	return nil
}

func (q *queries) exec(ctx context.Context, query string, args ...any) (int64, error) {
	if err := q.flushPending(ctx, query); err != nil {
		return 0, err
	}
	return q.db.Exec(ctx, q.d.rebind(query), args...)
}

func (q *queries) query(ctx context.Context, query string, args ...any) (Rows, error) {
	if err := q.flushPending(ctx, query); err != nil {
		return nil, err
	}
	return q.db.Query(ctx, q.d.rebind(query), args...)
}

func (q *queries) queryRow(ctx context.Context, query string, args ...any) Row {
	if err := q.flushPending(ctx, query); err != nil {
		return errRow{err}
	}
	return q.db.QueryRow(ctx, q.d.rebind(query), args...)
}

// errRow is a Row whose Scan returns err.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// ts encodes a time for a query: UTC, truncated to microseconds (the
// precision both databases keep), NULL when zero.
func (q *queries) ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return q.d.EncodeTime(normTime(t))
}

func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// dbTime scans a time column of either dialect: sqlite keeps INTEGER unix
// microseconds, postgres timestamptz. NULL scans as the zero time.
type dbTime struct{ t *time.Time }

func (d dbTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*d.t = time.Time{}
	case int64:
		*d.t = time.UnixMicro(v).UTC()
	case time.Time:
		*d.t = v.UTC()
	default:
		return fmt.Errorf("scan time: unsupported %T", src)
	}
	return nil
}

// placeholders returns "?, ?, ..." for n arguments.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// notFound maps a no-rows error to store.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// collect drains rows with scan, closing them.
func collect[T any](rows Rows, scan func(Rows) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, rows.Close()
}
