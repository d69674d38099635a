package sqlite

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"
	"strings"
	"sync/atomic"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// DefaultStatementCacheSize is how many prepared statements each pooled
// connection keeps when Options.StatementCacheSize is 0. lethe's store and
// River together run a few hundred distinct statements; the ones of a
// request's life fit with room to spare, and a connection's statements
// cost some kilobytes each.
const DefaultStatementCacheSize = 256

// The modernc driver prepares (parses and plans) every statement that
// database/sql hands it through Exec or Query, and finalises it afterwards.
// River's statements cost tens to hundreds of microseconds to prepare, more
// than running them, so each connection of the pool keeps its statements
// prepared, keyed by their text, and only binds, steps and resets them.
//
// Safety:
//   - Statements belong to their connection (SQLite's rule): the cache lives
//     on the driver connection and is finalised with it, so a recycled or
//     broken connection takes its statements along.
//   - Schema changes: modernc prepares with sqlite3_prepare_v2, so SQLite
//     itself re-prepares a statement whose schema changed under it the next
//     time it runs. When that fails with SQLITE_SCHEMA the statement is
//     dropped and the call retried once on a freshly prepared one. And any
//     DDL run through the pool (lethe's and River's migrations) empties
//     every connection's cache before its next statement, so no statement
//     prepared against an old schema is kept.
//   - A statement still being read (its Rows open) is never handed out a
//     second time: a query of the same text meanwhile runs uncached.
//   - Every cached statement is reset after each use (modernc does that
//     when an Exec ends and when Rows close), so an idle one holds no read
//     snapshot and no lock.

// statementCache makes the pool's connections, each with its own cache.
type statementCache struct {
	base driver.Connector // msqlite.NewConnector's
	size int
	// schema counts DDL statements run through any connection; a
	// connection empties its cache when it sees the count change. The
	// store's two pools (writers and readers) share it and stats.
	schema *atomic.Uint64
	stats  *StatementCacheStats
	// gate lets the pool's transactions take the write lock in turn
	// (writegate.go); nil: no gate (the readers' pool never writes).
	gate writeGate
}

// StatementCacheStats counts statement preparations, for tests and the
// benchmark; all fields are cumulative over the pool.
type StatementCacheStats struct {
	// Prepared counts statements prepared to be cached.
	Prepared atomic.Int64
	// Hits counts calls that ran an already prepared statement.
	Hits atomic.Int64
	// Uncached counts calls that prepared a one-off statement (cache
	// disabled, or the cached one busy with open Rows).
	Uncached atomic.Int64
	// Invalidated counts cache flushes after DDL and statements dropped on
	// SQLITE_SCHEMA.
	Invalidated atomic.Int64
}

var _ driver.Connector = (*statementCache)(nil)

func (c *statementCache) Driver() driver.Driver { return c.base.Driver() }

func (c *statementCache) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	inner, ok := dc.(modernConn)
	if !ok {
		dc.Close()
		return nil, errors.New("sqlite driver connection lacks the context methods lethe relies on")
	}
	return &cachingConn{modernConn: inner, cache: c, byText: map[string]*list.Element{}, lru: list.New(), schema: c.schema.Load()}, nil
}

// modernConn is what modernc's connection implements and database/sql
// uses; cachingConn forwards all of it.
type modernConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// modernRows is what modernc's rows implement; the wrapper keeps every
// optional interface so database/sql's ColumnTypes see no difference.
type modernRows interface {
	driver.Rows
	driver.RowsColumnTypeDatabaseTypeName
	driver.RowsColumnTypeLength
	driver.RowsColumnTypeNullable
	driver.RowsColumnTypePrecisionScale
	driver.RowsColumnTypeScanType
}

type modernStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// cachingConn is not safe for concurrent use, and need not be:
// database/sql never uses a driver connection from two goroutines at once
// (Rows.Close included).
type cachingConn struct {
	modernConn
	cache  *statementCache
	byText map[string]*list.Element // of *cachedStmt, most recent at the front
	lru    *list.List
	schema uint64
}

type cachedStmt struct {
	text string
	st   modernStmt
	busy bool // its Rows are open
	// evicted: dropped from the cache while busy; closed when its Rows are.
	evicted bool
}

var (
	_ modernConn = (*cachingConn)(nil)
	_ modernRows = (*cachedRows)(nil)
)

// get returns the cached statement for text, preparing it when missing; nil
// (and no error) when the call must run uncached.
func (c *cachingConn) get(ctx context.Context, text string) (*cachedStmt, error) {
	if c.cache.size <= 0 {
		return nil, nil
	}
	if g := c.cache.schema.Load(); g != c.schema {
		c.flush()
		c.schema = g
		c.cache.stats.Invalidated.Add(1)
	}
	if e, ok := c.byText[text]; ok {
		cs := e.Value.(*cachedStmt)
		if cs.busy {
			return nil, nil
		}
		c.lru.MoveToFront(e)
		c.cache.stats.Hits.Add(1)
		return cs, nil
	}
	ds, err := c.modernConn.PrepareContext(ctx, text)
	if err != nil {
		return nil, err
	}
	st, ok := ds.(modernStmt)
	if !ok {
		ds.Close()
		return nil, nil
	}
	c.cache.stats.Prepared.Add(1)
	cs := &cachedStmt{text: text, st: st}
	c.byText[text] = c.lru.PushFront(cs)
	for c.lru.Len() > c.cache.size {
		c.drop(c.lru.Back().Value.(*cachedStmt))
	}
	return cs, nil
}

// drop removes cs from the cache and finalises it, or marks it to be
// finalised when its Rows close.
func (c *cachingConn) drop(cs *cachedStmt) {
	if e, ok := c.byText[cs.text]; ok && e.Value.(*cachedStmt) == cs {
		c.lru.Remove(e)
		delete(c.byText, cs.text)
	}
	if cs.busy {
		cs.evicted = true
		return
	}
	cs.st.Close()
}

func (c *cachingConn) flush() {
	for e := c.lru.Front(); e != nil; {
		next := e.Next()
		c.drop(e.Value.(*cachedStmt))
		e = next
	}
}

func (c *cachingConn) ExecContext(ctx context.Context, text string, args []driver.NamedValue) (driver.Result, error) {
	if isDDL(text) {
		// Other connections empty their caches before their next statement;
		// this one too, but after running it.
		defer c.cache.schema.Add(1)
	}
	for attempt := 0; ; attempt++ {
		cs, err := c.get(ctx, text)
		if err != nil {
			return nil, err
		}
		if cs == nil {
			c.cache.stats.Uncached.Add(1)
			return c.modernConn.ExecContext(ctx, text, args)
		}
		r, err := cs.st.ExecContext(ctx, args)
		if attempt == 0 && isSchemaChanged(err) {
			c.drop(cs)
			c.cache.stats.Invalidated.Add(1)
			continue
		}
		return r, err
	}
}

func (c *cachingConn) QueryContext(ctx context.Context, text string, args []driver.NamedValue) (driver.Rows, error) {
	for attempt := 0; ; attempt++ {
		cs, err := c.get(ctx, text)
		if err != nil {
			return nil, err
		}
		if cs == nil {
			c.cache.stats.Uncached.Add(1)
			return c.modernConn.QueryContext(ctx, text, args)
		}
		rows, err := cs.st.QueryContext(ctx, args)
		if attempt == 0 && isSchemaChanged(err) {
			c.drop(cs)
			c.cache.stats.Invalidated.Add(1)
			continue
		}
		if err != nil {
			return nil, err
		}
		mr, ok := rows.(modernRows)
		if !ok {
			rows.Close()
			c.drop(cs)
			c.cache.stats.Uncached.Add(1)
			return c.modernConn.QueryContext(ctx, text, args)
		}
		cs.busy = true
		return &cachedRows{modernRows: mr, conn: c, stmt: cs}, nil
	}
}

func (c *cachingConn) Close() error {
	for e := c.lru.Front(); e != nil; e = e.Next() {
		// Busy ones too: their Rows cannot outlive the connection.
		e.Value.(*cachedStmt).st.Close()
	}
	c.byText, c.lru = map[string]*list.Element{}, list.New()
	return c.modernConn.Close()
}

type cachedRows struct {
	modernRows
	conn   *cachingConn
	stmt   *cachedStmt
	closed bool
}

func (r *cachedRows) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	err := r.modernRows.Close() // resets the statement for its next use
	r.stmt.busy = false
	if err != nil {
		// A statement that failed to reset is not trusted again.
		r.conn.drop(r.stmt)
	}
	if r.stmt.evicted {
		r.stmt.st.Close()
	}
	return err
}

// isSchemaChanged reports SQLITE_SCHEMA, which SQLite returns when it could
// not re-prepare a statement to a schema that changed under it.
func isSchemaChanged(err error) bool {
	var e *msqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_SCHEMA
}

// isDDL reports whether text holds a statement that changes the schema. A
// false positive (a keyword after a ';' inside a string) only costs a
// cache flush.
func isDDL(text string) bool {
	for stmt := range strings.SplitSeq(text, ";") {
		w := strings.TrimLeft(stmt, " \t\r\n")
		for strings.HasPrefix(w, "--") {
			i := strings.IndexByte(w, '\n')
			if i < 0 {
				w = ""
				break
			}
			w = strings.TrimLeft(w[i+1:], " \t\r\n")
		}
		end := strings.IndexFunc(w, func(r rune) bool { return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') })
		if end >= 0 {
			w = w[:end]
		}
		if strings.EqualFold(w, "CREATE") || strings.EqualFold(w, "ALTER") || strings.EqualFold(w, "DROP") {
			return true
		}
	}
	return false
}
