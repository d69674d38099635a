package sqlconn

import (
	"context"
	"database/sql"
	"sync"
)

// maxCachedStmts bounds the prepared statements a connector keeps per
// connection. Statement texts repeat: IN lists are padded to powers of two
// and a map has few tables, so a few hundred cover a busy target.
const maxCachedStmts = 256

// stmtCache keeps prepared statements by their text, so that SQLite does
// not parse a statement (the nested subqueries of where cost more to
// prepare than to run) and MySQL does not prepare, execute and close it in
// three round trips on every call. database/sql prepares each statement
// once per connection and re-prepares it on a new one; SQLite and MySQL
// re-prepare by themselves when the schema changes. PostgreSQL needs none:
// pgx caches prepared statements per connection by text.
type stmtCache struct {
	db  *sql.DB
	off bool
	mu  sync.Mutex
	m   map[string]*sql.Stmt
	// wanted are texts first met in a transaction, prepared once it ends:
	// preparing on the pool needs a free connection, and a caller holding
	// a transaction's connection must never wait for another (with every
	// connection in a transaction, all would wait forever).
	wanted map[string]bool
}

func newStmtCache(db *sql.DB, d dialect) *stmtCache {
	return &stmtCache{db: db, off: d.name == "postgres", m: map[string]*sql.Stmt{}, wanted: map[string]bool{}}
}

// stmt returns the prepared statement of text; nil when the cache is off,
// or when text is new and inTx (the caller runs it unprepared; see
// wanted). The caller must hold no connection unless inTx.
func (sc *stmtCache) stmt(ctx context.Context, text string, inTx bool) (*sql.Stmt, error) {
	if sc.off {
		return nil, nil
	}
	sc.mu.Lock()
	st, ok := sc.m[text]
	if !ok && inTx {
		sc.wanted[text] = true
	}
	sc.mu.Unlock()
	if ok || inTx {
		return st, nil
	}
	return sc.prepare(ctx, text)
}

// prepare prepares text on the pool and keeps it, unless another caller
// did meanwhile.
func (sc *stmtCache) prepare(ctx context.Context, text string) (*sql.Stmt, error) {
	st, err := sc.db.PrepareContext(ctx, text)
	if err != nil {
		return nil, err
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if have, ok := sc.m[text]; ok {
		st.Close()
		return have, nil
	}
	if len(sc.m) >= maxCachedStmts {
		// Starting over is simpler than tracking use, and rare: a
		// statement in use is closed only once its users are done.
		for _, old := range sc.m {
			old.Close()
		}
		clear(sc.m)
	}
	sc.m[text] = st
	return st, nil
}

// prepareWanted prepares the texts met in transactions; called with no
// connection held. A failure only leaves them unprepared.
func (sc *stmtCache) prepareWanted(ctx context.Context) {
	if sc.off {
		return
	}
	sc.mu.Lock()
	texts := make([]string, 0, len(sc.wanted))
	for text := range sc.wanted {
		texts = append(texts, text)
	}
	clear(sc.wanted)
	sc.mu.Unlock()
	for _, text := range texts {
		if _, err := sc.prepare(ctx, text); err != nil {
			return
		}
	}
}

func (sc *stmtCache) close() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for _, st := range sc.m {
		st.Close()
	}
	clear(sc.m)
}

// queryContext runs a query in tx (nil: on the pool) through the cache.
func (c *Connector) queryContext(ctx context.Context, tx *sql.Tx, text string, args ...any) (*sql.Rows, error) {
	st, err := c.stmts.stmt(ctx, text, tx != nil)
	switch {
	case err != nil:
		return nil, err
	case st == nil && tx != nil:
		return tx.QueryContext(ctx, text, args...)
	case st == nil:
		return c.db.QueryContext(ctx, text, args...)
	case tx != nil:
		return tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return st.QueryContext(ctx, args...)
}

// execContext runs a statement in tx (nil: on the pool) through the cache.
func (c *Connector) execContext(ctx context.Context, tx *sql.Tx, text string, args ...any) (sql.Result, error) {
	st, err := c.stmts.stmt(ctx, text, tx != nil)
	switch {
	case err != nil:
		return nil, err
	case st == nil && tx != nil:
		return tx.ExecContext(ctx, text, args...)
	case st == nil:
		return c.db.ExecContext(ctx, text, args...)
	case tx != nil:
		return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return st.ExecContext(ctx, args...)
}

// scanOne runs a query returning one row and scans it into dst.
func (c *Connector) scanOne(ctx context.Context, tx *sql.Tx, text string, args []any, dst ...any) error {
	rows, err := c.queryContext(ctx, tx, text, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dst...); err != nil {
		return err
	}
	return rows.Close()
}
