package sqlite_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/store/sqlite"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// pinned returns one connection of s's pool, closed at the end of the test.
func pinned(t *testing.T, s *sqlite.Store) *sql.Conn {
	t.Helper()
	c, err := s.DB().Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustExec(t *testing.T, c interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, q string, args ...any) {
	t.Helper()
	if _, err := c.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// columnsOf runs q on c and returns its column names and first row.
func columnsOf(t *testing.T, c *sql.Conn, q string) ([]string, []any, error) {
	t.Helper()
	rows, err := c.QueryContext(context.Background(), q)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	cols, out := testdb.ScanRows(t, rows)
	if len(out) == 0 {
		return cols, nil, nil
	}
	return cols, out[0], nil
}

func TestStatementCacheReusesStatements(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testdb.OpenSQLite(t, testdb.SQLitePath(t), sqlite.Options{MaxOpenConns: 1})
	c := pinned(t, s)
	mustExec(t, c, `CREATE TABLE t (a INTEGER)`)
	stats := s.StatementCacheStats()
	before := stats.Prepared.Load()
	for i := range 10 {
		mustExec(t, c, `INSERT INTO t (a) VALUES (?)`, i)
		var n int
		if err := c.QueryRowContext(ctx, `SELECT count(*) FROM t WHERE a <= ?`, i).Scan(&n); err != nil || n != i+1 {
			t.Fatalf("count after %d inserts = %d, %v", i+1, n, err)
		}
	}
	if got := stats.Prepared.Load() - before; got != 2 {
		t.Errorf("20 runs of 2 statements prepared %d statements, want 2", got)
	}
	if stats.Hits.Load() < 18 {
		t.Errorf("%d cache hits, want at least 18", stats.Hits.Load())
	}
}

// A statement whose Rows are still open is not reset under them: the same
// text run meanwhile gets a statement of its own.
func TestStatementCacheOpenRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testdb.OpenSQLite(t, testdb.SQLitePath(t), sqlite.Options{MaxOpenConns: 1})
	c := pinned(t, s)
	mustExec(t, c, `CREATE TABLE t (a INTEGER)`)
	mustExec(t, c, `INSERT INTO t (a) VALUES (1), (2), (3)`)
	const q = `SELECT a FROM t ORDER BY a`
	outer, err := c.QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for outer.Next() {
		var a int
		if err := outer.Scan(&a); err != nil {
			t.Fatal(err)
		}
		got = append(got, a)
		inner, err := c.QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for inner.Next() {
			n++
		}
		if err := inner.Close(); err != nil || n != 3 {
			t.Fatalf("inner query: %d rows, %v", n, err)
		}
	}
	if err := outer.Err(); err != nil {
		t.Fatal(err)
	}
	outer.Close()
	if fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("outer query read %v, want [1 2 3]", got)
	}
	if s.StatementCacheStats().Uncached.Load() == 0 {
		t.Errorf("the nested query of the same text ran on the busy cached statement")
	}
}

// A schema change through the pool (a migration) empties the caches; one
// made behind the pool's back (another process) is caught by SQLite's
// re-preparation. Either way a cached statement sees the new schema, and a
// statement on a dropped table fails instead of reading stale data.
func TestStatementCacheSchemaChanges(t *testing.T) {
	t.Parallel()
	path := testdb.SQLitePath(t)
	s := testdb.OpenSQLite(t, path, sqlite.Options{MaxOpenConns: 2})
	a, b := pinned(t, s), pinned(t, s)
	mustExec(t, a, `CREATE TABLE t (x INTEGER)`)
	mustExec(t, a, `INSERT INTO t VALUES (1)`)
	const q = `SELECT * FROM t`
	if cols, _, err := columnsOf(t, a, q); err != nil || len(cols) != 1 {
		t.Fatalf("before: %v, %v", cols, err)
	}

	// Through the pool, on the other connection.
	inv := s.StatementCacheStats().Invalidated.Load()
	mustExec(t, b, `DROP TABLE t`)
	mustExec(t, b, `CREATE TABLE t (x INTEGER, y TEXT)`)
	mustExec(t, b, `INSERT INTO t VALUES (2, 'two')`)
	cols, row, err := columnsOf(t, a, q)
	if err != nil || strings.Join(cols, ",") != "x,y" || fmt.Sprint(row) != "[2 two]" {
		t.Fatalf("after a change through the pool: %v %v, %v; want x,y [2 two]", cols, row, err)
	}
	if s.StatementCacheStats().Invalidated.Load() == inv {
		t.Errorf("DDL through the pool did not empty the other connection's cache")
	}

	// Behind the pool's back: a plain connection of its own.
	other, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	mustExec(t, other, `ALTER TABLE t ADD COLUMN z INTEGER DEFAULT 7`)
	cols, row, err = columnsOf(t, a, q)
	if err != nil || strings.Join(cols, ",") != "x,y,z" || fmt.Sprint(row) != "[2 two 7]" {
		t.Fatalf("after a change by another process: %v %v, %v; want x,y,z [2 two 7]", cols, row, err)
	}
	mustExec(t, other, `DROP TABLE t`)
	if _, _, err := columnsOf(t, a, q); err == nil || !strings.Contains(err.Error(), "no such table") {
		t.Fatalf("query of a dropped table: %v, want no such table", err)
	}
	if _, err := a.ExecContext(context.Background(), `INSERT INTO t VALUES (3, 'three', 3)`); err == nil {
		t.Fatalf("insert into a dropped table succeeded")
	}
}

// Statements die with their connection: after the pool discards one, the
// next connection prepares its own and the query still works.
func TestStatementCacheConnectionRecycled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testdb.OpenSQLite(t, testdb.SQLitePath(t), sqlite.Options{MaxOpenConns: 1})
	mustExec(t, s.DB(), `CREATE TABLE t (a INTEGER)`)
	const q = `SELECT count(*) FROM t`
	var n int
	for range 2 {
		if err := s.DB().QueryRowContext(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	stats := s.StatementCacheStats()
	prepared := stats.Prepared.Load()
	c, err := s.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// ErrBadConn from Raw makes database/sql close the connection.
	_ = c.Raw(func(any) error { return driver.ErrBadConn })
	c.Close()
	if got := s.DB().Stats().OpenConnections; got != 0 {
		t.Fatalf("%d open connections after discarding the only one", got)
	}
	if err := s.DB().QueryRowContext(ctx, q).Scan(&n); err != nil {
		t.Fatalf("query on a new connection: %v", err)
	}
	if stats.Prepared.Load() != prepared+1 {
		t.Errorf("new connection prepared %d statements, want 1 (its own)", stats.Prepared.Load()-prepared)
	}
}

// With the cache off every call prepares a statement of its own.
func TestStatementCacheOff(t *testing.T) {
	t.Parallel()
	s := testdb.OpenSQLite(t, testdb.SQLitePath(t), sqlite.Options{MaxOpenConns: 1, StatementCacheSize: -1})
	mustExec(t, s.DB(), `CREATE TABLE t (a INTEGER)`)
	for i := range 3 {
		mustExec(t, s.DB(), `INSERT INTO t VALUES (?)`, i)
	}
	if st := s.StatementCacheStats(); st.Prepared.Load() != 0 || st.Uncached.Load() != 4 {
		t.Fatalf("cache off: prepared %d, uncached %d; want 0 and 4", st.Prepared.Load(), st.Uncached.Load())
	}
}

// A cache smaller than the working set keeps working, evicting the least
// recently used statements.
func TestStatementCacheEviction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testdb.OpenSQLite(t, testdb.SQLitePath(t), sqlite.Options{MaxOpenConns: 1, StatementCacheSize: 2})
	mustExec(t, s.DB(), `CREATE TABLE t (a INTEGER)`)
	for i := range 5 {
		for j := range 3 {
			var n int
			if err := s.DB().QueryRowContext(ctx, fmt.Sprintf(`SELECT %d + count(*) FROM t`, j)).Scan(&n); err != nil || n != j {
				t.Fatalf("round %d query %d: %d, %v", i, j, n, err)
			}
		}
	}
}

// BenchmarkStatementCache drains requests the way lethe does on SQLite:
// an intake transaction (request, audit, River job) per request while
// River fetches and a worker completes each job in a store transaction,
// once with the statement cache and once without, in the same run, and
// reports both rates and their ratio.
//
//	go test -run '^$' -bench StatementCache -benchtime 1x ./internal/store/sqlite
func BenchmarkStatementCache(b *testing.B) {
	const requests = 300
	var cached, uncached time.Duration
	for range b.N {
		cached += drainRequests(b, 0, requests)
		uncached += drainRequests(b, -1, requests)
	}
	rate := func(d time.Duration) float64 { return float64(requests*b.N) / d.Seconds() }
	b.ReportMetric(rate(cached), "req/s-cached")
	b.ReportMetric(rate(uncached), "req/s-uncached")
	b.ReportMetric(rate(cached)/rate(uncached), "x-uncached")
	b.Logf("%d requests drained: cached %.0f/s, uncached %.0f/s, ratio %.2f", requests*b.N, rate(cached), rate(uncached), rate(cached)/rate(uncached))
}

// drainRequests returns how long n requests took from the first intake to
// the last completion.
func drainRequests(b *testing.B, cacheSize, n int) time.Duration {
	ctx := context.Background()
	dir := b.TempDir()
	kr := testdb.Keyring(b)
	s, err := sqlite.Open(ctx, dir+"/bench.db", sqlite.Options{Keyring: kr, StatementCacheSize: cacheSize})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	drv := riversqlite.New(s.DB())
	m, err := rivermigrate.New(drv, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		b.Fatal(err)
	}
	var errs atomic.Int64
	workers := river.NewWorkers()
	river.AddWorker(workers, &finishWorker{s: s, errs: &errs})
	client, err := river.NewClient(drv, &river.Config{
		Logger:            slog.New(slog.DiscardHandler),
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 4}},
		Workers:           workers,
		FetchPollInterval: 5 * time.Millisecond,
		FetchCooldown:     time.Millisecond,
		PollOnly:          true,
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		client.Stop(stopCtx)
	}()
	start := time.Now()
	for i := range n {
		id, _ := uuid.NewV7()
		now := time.Now()
		r := &lethe.Request{
			ID: id.String(), ClientID: "c", Regulation: lethe.GDPR, Status: lethe.StatusReceived, Stage: lethe.StageResolve,
			Identities: []lethe.Identity{{Type: lethe.IdentityUserID, Value: fmt.Sprint("u-", i)}},
			SubjectKey: fmt.Sprint("s-", i), ReceivedAt: now, DueAt: now.Add(time.Hour), UpdatedAt: now,
		}
		err := s.InTx(ctx, func(tx store.Tx) error {
			if _, err := tx.FindOpenRequest(ctx, r.ClientID, r.SubjectKey); err == nil {
				return fmt.Errorf("duplicate subject")
			}
			if err := tx.CreateRequest(ctx, r); err != nil {
				return err
			}
			if err := tx.AppendAudit(ctx, &lethe.AuditEvent{RequestID: r.ID, Time: now, Actor: lethe.ActorClient, ActorID: "c", Type: "request.received"}); err != nil {
				return err
			}
			_, err := client.InsertTx(ctx, tx.Driver().(*sql.Tx), finishArgs{RequestID: r.ID}, nil)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	for {
		counts, err := s.CountRequestsByStatus(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if counts[lethe.StatusCompleted] == int64(n) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	took := time.Since(start)
	if n := errs.Load(); n != 0 {
		b.Fatalf("%d job attempts failed", n)
	}
	return took
}
