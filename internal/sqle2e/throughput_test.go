package sqle2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/testdb"
	"github.com/lethe-privacy/lethe/internal/testdb/shopdb"
)

// Environment of BenchmarkEraseThroughput.
const (
	envBenchSubjects = "LETHE_BENCH_SUBJECTS" // subjects erased per way and pool size; default 300
	envBenchStores   = "LETHE_BENCH_STORES"   // comma-separated: postgres,sqlite (the default, both)
	// benchBatch is how many subjects one EraseBatch call takes, as a
	// pipeline would hand over the erase tasks waiting together.
	benchBatch = 10
)

// BenchmarkEraseThroughput measures erasure throughput, subjects per
// second, of generated users of the benchmark shop (10 rows each: a user,
// an address, two orders pseudonymised, four order items, a ticket, and an
// invoice retained), on PostgreSQL and SQLite, with pools of 1 and 10
// connections, three ways in the same run:
//   - hand: one hand-written transaction per subject doing the same work
//     (handEraseUser), one worker per connection;
//   - sqlconn: Connector.Erase per subject, one worker per connection;
//   - sqlconn-batch: Connector.EraseBatch of 10 subjects per call.
//
// It prints one table with the ratios to hand-written SQL. Sizes come
// from LETHE_BENCH_USERS (default 100000,1000000). The PostgreSQL shops
// are BenchmarkErase's schemas; the SQLite ones are files in the temporary
// directory (lethe-bench-u<N>.sqlite), built once and reused; each run
// takes subjects never erased before, and a shop whose users are used up
// is generated again. Run with -benchtime 1x (scripts/bench-erase
// --throughput); it never runs as part of the test suite.
func BenchmarkEraseThroughput(b *testing.B) {
	if b.N > 1 {
		b.Skip("one pass measures everything; run with -benchtime 1x")
	}
	subjects := 300
	if v := os.Getenv(envBenchSubjects); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 5*benchBatch {
			b.Fatalf("%s: %q is not a count of at least %d", envBenchSubjects, v, 5*benchBatch)
		}
		subjects = n - n%(5*benchBatch)
	}
	stores := []string{"postgres", "sqlite"}
	if v := os.Getenv(envBenchStores); v != "" {
		stores = strings.Split(v, ",")
	}
	type result struct {
		store             string
		users             int64
		conns             int
		hand, conn, batch float64
	}
	var results []result
	for _, store := range stores {
		for _, n := range benchSizes(b) {
			bs := openThroughputShop(b, store, n, 6*subjects)
			for _, conns := range []int{1, 10} {
				r := result{store: store, users: n, conns: conns}
				hand := func(ctx context.Context, ids []int64) error {
					for _, id := range ids {
						total, err := handEraseUser(ctx, bs.b, bs.db, id)
						if err != nil {
							return err
						}
						if total != throughputRows {
							return fmt.Errorf("hand-written erase of user %d changed %d rows, want %d", id, total, throughputRows)
						}
					}
					return nil
				}
				conn := bs.connector(b, conns)
				single := func(ctx context.Context, ids []int64) error {
					for _, id := range ids {
						rep, err := conn.Erase(ctx, throughputSubject(id))
						if err != nil {
							return err
						}
						if rep.Total() != throughputRows {
							return fmt.Errorf("sqlconn erase of user %d reported %d rows, want %d", id, rep.Total(), throughputRows)
						}
					}
					return nil
				}
				batch := func(ctx context.Context, ids []int64) error {
					subs := make([]connector.Subject, len(ids))
					for i, id := range ids {
						subs[i] = throughputSubject(id)
					}
					reps, err := conn.EraseBatch(ctx, subs)
					if err != nil {
						return err
					}
					for i, rep := range reps {
						if rep.Total() != throughputRows {
							return fmt.Errorf("sqlconn batch erase of user %d reported %d rows, want %d", ids[i], rep.Total(), throughputRows)
						}
					}
					return nil
				}
				// The ways take turns in rounds, so that a change of load
				// on a shared machine falls on all of them alike.
				var took [3]time.Duration
				const rounds = 5
				for range rounds {
					took[0] += bs.measure(b, conns, subjects/rounds, hand, 1)
					took[1] += bs.measure(b, conns, subjects/rounds, single, 1)
					took[2] += bs.measure(b, conns, subjects/rounds, batch, benchBatch)
				}
				k := float64(subjects - subjects%rounds)
				r.hand, r.conn, r.batch = k/took[0].Seconds(), k/took[1].Seconds(), k/took[2].Seconds()
				conn.Close()
				b.Logf("%s, %d users, %d connections: hand %.0f, sqlconn %.0f, sqlconn-batch %.0f subjects/s", store, n, conns, r.hand, r.conn, r.batch)
				results = append(results, r)
			}
			bs.db.Close()
		}
	}
	var out strings.Builder
	fmt.Fprintf(&out, "\nerasure throughput, subjects/s (%d subjects per cell; ratio = / hand-written on the same pool)\n", subjects)
	fmt.Fprintf(&out, "%-9s %8s %5s %9s %9s %6s %14s %6s %14s\n", "store", "users", "conns", "hand", "sqlconn", "ratio", "sqlconn-batch", "ratio", "vs hand 1 conn")
	hand1 := map[string]float64{}
	for _, r := range results {
		if r.conns == 1 {
			hand1[fmt.Sprint(r.store, r.users)] = r.hand
		}
	}
	for _, r := range results {
		fmt.Fprintf(&out, "%-9s %8d %5d %9.0f %9.0f %6.2f %14.0f %6.2f %14.2f\n", r.store, r.users, r.conns, r.hand, r.conn, r.conn/r.hand,
			r.batch, r.batch/r.hand, r.batch/hand1[fmt.Sprint(r.store, r.users)])
		b.ReportMetric(r.conn/r.hand, fmt.Sprintf("ratio-%s-%d-%dconn", r.store, r.users, r.conns))
	}
	fmt.Print(out.String())
}

// benchSizes returns the shop sizes of LETHE_BENCH_USERS.
func benchSizes(b *testing.B) []int64 {
	sizes := []int64{100_000, 1_000_000}
	if v := os.Getenv(envBenchSize); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil || n < 1 {
				b.Fatalf("%s: %q is not a user count", envBenchSize, f)
			}
			sizes = append(sizes, n)
		}
	}
	return sizes
}

// throughputRows is what erasing one generated user changes or retains.
const throughputRows = 10

// throughputSubject is generated user id with every identity the shop
// holds of them, as Resolve would have found them.
func throughputSubject(id int64) connector.Subject {
	return connector.Subject{RequestID: "bench-" + strconv.FormatInt(id, 10), Identities: []lethe.Identity{
		{Type: lethe.IdentityEmail, Value: fmt.Sprintf("user%d@example.com", id)},
		{Type: lethe.IdentityUserID, Value: strconv.FormatInt(id, 10)},
		{Type: lethe.IdentityPhone, Value: "+49151" + strconv.FormatInt(10_000_000+id, 10)},
		{Type: lethe.IdentityType("x-customer_ref"), Value: "cref-" + strconv.FormatInt(id, 10)},
	}}
}

// handEraseUser is handErase for generated user id: one transaction, one
// set-based statement per table, children first, emails compared as the
// case-insensitive rule does.
func handEraseUser(ctx context.Context, b testdb.TargetDB, db *sql.DB, id int64) (int64, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	email := fmt.Sprintf("user%d@example.com", id)
	var total int64
	for _, st := range []struct {
		sql  string
		args []any
	}{
		{`DELETE FROM order_items WHERE order_id IN (SELECT id FROM orders WHERE user_id = ? OR lower(trim(email)) = ?)`, []any{id, email}},
		{`DELETE FROM support_tickets WHERE order_id IN (SELECT id FROM orders WHERE user_id = ? OR lower(trim(email)) = ?)`, []any{id, email}},
		{`DELETE FROM support_tickets WHERE lower(trim(email)) = ?`, []any{email}},
		{`UPDATE orders SET user_id = NULL, email = ?, shipping_name = NULL WHERE user_id = ? OR lower(trim(email)) = ?`, []any{redactedEmail(email), id, email}},
		{`DELETE FROM addresses WHERE user_id = ?`, []any{id}},
		{`DELETE FROM users WHERE id = ? OR lower(trim(email)) = ?`, []any{id, email}},
	} {
		res, err := tx.ExecContext(ctx, b.Rebind(st.sql), st.args...)
		if err != nil {
			return total, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += n
	}
	var kept int64
	if err := tx.QueryRowContext(ctx, b.Rebind(`SELECT count(*) FROM invoices WHERE user_id = ?`), id).Scan(&kept); err != nil {
		return total, err
	}
	return total + kept, tx.Commit()
}

// throughputShop is one generated shop the throughput benchmark erases
// users of.
type throughputShop struct {
	b     testdb.TargetDB
	dsn   string
	db    *sql.DB
	users int64
}

// openThroughputShop returns the shop of n users on store, generating it
// when it is missing, stale, or has fewer than need users never erased.
func openThroughputShop(b *testing.B, store string, n int64, need int) *throughputShop {
	b.Helper()
	for attempt := 0; ; attempt++ {
		var bs *throughputShop
		switch store {
		case "postgres":
			dsn := ensureBenchShop(b, testdb.Service(b, testdb.EnvPostgres), n)
			db, err := sql.Open("pgx", dsn)
			if err != nil {
				b.Fatal(err)
			}
			bs = &throughputShop{b: testdb.TargetDBsOf("postgres")[0], dsn: dsn, db: db, users: n}
		case "sqlite":
			bs = ensureSQLiteBenchShop(b, n)
		default:
			b.Fatalf("%s: store %q is not postgres or sqlite", envBenchStores, store)
		}
		bs.db.SetMaxOpenConns(10)
		bs.db.SetMaxIdleConns(10)
		bs.exec(b, `CREATE TABLE IF NOT EXISTS bench_cursor (next BIGINT NOT NULL)`)
		var next sql.NullInt64
		if err := bs.db.QueryRow(`SELECT MAX(next) FROM bench_cursor`).Scan(&next); err != nil {
			b.Fatal(err)
		}
		if !next.Valid || next.Int64+int64(need) <= n || attempt > 0 {
			for _, ix := range ciIndexes {
				bs.exec(b, `CREATE INDEX IF NOT EXISTS `+ix.name+` ON `+ix.table+` (lower(trim(email)))`)
			}
			if store == "postgres" {
				// Without statistics on the expression PostgreSQL's
				// generic plan for the hand-written statements expects
				// 10k rows per email and hash-joins whole tables.
				bs.exec(b, `ANALYZE users, orders, support_tickets`)
			}
			return bs
		}
		b.Logf("%s shop of %d users: used up; generating it again", store, n)
		bs.exec(b, `DELETE FROM bench_meta`)
		bs.db.Close()
	}
}

func (bs *throughputShop) exec(b *testing.B, stmt string, args ...any) {
	b.Helper()
	if _, err := bs.db.Exec(bs.b.Rebind(stmt), args...); err != nil {
		b.Fatalf("%s: %v", stmt, err)
	}
}

// take reserves k users never erased before.
func (bs *throughputShop) take(b *testing.B, k int) []int64 {
	b.Helper()
	var next sql.NullInt64
	if err := bs.db.QueryRow(`SELECT MAX(next) FROM bench_cursor`).Scan(&next); err != nil {
		b.Fatal(err)
	}
	first := int64(1)
	if next.Valid {
		first = next.Int64
	}
	if first+int64(k) > bs.users {
		b.Fatalf("the shop of %d users has too few left; drop it to have it generated again", bs.users)
	}
	bs.exec(b, `DELETE FROM bench_cursor`)
	bs.exec(b, `INSERT INTO bench_cursor (next) VALUES (?)`, first+int64(k))
	ids := make([]int64, k)
	for i := range ids {
		ids[i] = first + int64(i)
	}
	return ids
}

// connector opens the SQL connector on the shop with a pool of conns.
func (bs *throughputShop) connector(b *testing.B, conns int) *sqlconn.Connector {
	b.Helper()
	s := &shop{b: bs.b, dsn: bs.dsn}
	doc := strings.Replace(s.mapYAML(), "    identities: {email: email, phone: phone, user_id: id, x-customer_ref: customer_ref}\n",
		"    identities: {email: email, phone: phone, user_id: id, x-customer_ref: customer_ref}\n    match: {phone: exact}\n", 1)
	doc += fmt.Sprintf("max_connections: %d\n", conns)
	c, err := sqlconn.New(context.Background(), connector.Target{Name: "shop", Kind: sqlconn.Kind,
		Decode: func(v any) error { return yaml.Unmarshal([]byte(doc), v) }})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Validate(context.Background()); err != nil {
		b.Fatal(err)
	}
	return c
}

// measure erases k fresh users with conns workers, each calling erase
// with per users at a time, and returns how long it took.
func (bs *throughputShop) measure(b *testing.B, conns, k int, erase func(ctx context.Context, ids []int64) error, per int) time.Duration {
	b.Helper()
	ids := bs.take(b, k)
	work := make(chan []int64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	ctx := context.Background()
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for group := range work {
				if err := erase(ctx, group); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < len(ids); i += per {
		work <- ids[i:min(i+per, len(ids))]
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	return elapsed
}

// ensureSQLiteBenchShop returns the SQLite shop of n users, generating it
// (recursive CTEs, keys and indexes after the load) when missing or stale.
func ensureSQLiteBenchShop(b *testing.B, n int64) *throughputShop {
	b.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("lethe-bench-u%d.sqlite", n))
	// synchronous NORMAL, usual with WAL: a commit is not an fsync, so the
	// ways differ by what they ask of SQLite, not by the disk.
	dsn := "file:" + path + "?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	tdb := testdb.TargetDBsOf("sqlite")[0]
	open := func() *sql.DB {
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			b.Fatal(err)
		}
		return db
	}
	db := open()
	var have int64
	if err := db.QueryRow(`SELECT users FROM bench_meta WHERE version = ?`, benchVersion).Scan(&have); err == nil && have == n {
		return &throughputShop{b: tdb, dsn: dsn, db: db, users: n}
	}
	db.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			b.Fatal(err)
		}
	}
	start := time.Now()
	b.Logf("generating %s (%d users, about %d rows); reused by later runs", path, n, 10*n)
	db = open()
	ns := strconv.FormatInt(n, 10)
	series := func(limit string) string {
		return `WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ` + limit + `) `
	}
	stmts := []string{`PRAGMA synchronous = OFF`, `BEGIN`}
	stmts = append(stmts, shopdb.DDL...)
	stmts = append(stmts,
		series(ns)+`INSERT INTO users SELECT i, 'user' || i || '@example.com', '+49151' || (10000000 + i), 'cref-' || i, 'Name ' || i, i FROM g`,
		series(ns)+`INSERT INTO addresses SELECT i, i, i || ' Main St', i FROM g`,
		series("2 * "+ns)+`INSERT INTO orders (id, user_id, email, shipping_name, total, seed_owner) SELECT i, (i + 1) / 2, CASE WHEN i % 2 = 1 THEN 'user' || ((i + 1) / 2) || '@example.com' END, 'Ship', i, (i + 1) / 2 FROM g`,
		series("4 * "+ns)+`INSERT INTO order_items SELECT i, (i + 1) / 2, 'sku', 1, (i + 3) / 4 FROM g`,
		series(ns)+`INSERT INTO support_tickets SELECT i, 'user' || i || '@example.com', NULL, 'help', i FROM g`,
		series(ns)+`INSERT INTO invoices SELECT i, i, 1000 + i, i FROM g`,
	)
	stmts = append(stmts, shopdb.Indexes...)
	stmts = append(stmts,
		`CREATE TABLE bench_meta (version INT NOT NULL, users BIGINT NOT NULL)`,
		`INSERT INTO bench_meta VALUES (`+strconv.Itoa(benchVersion)+`, `+ns+`)`,
		// No ANALYZE: its statistics make SQLite scan support_tickets
		// for order_id IN (...), the generator's order_id being NULL in
		// every row (sqlite_stat1 does not tell NULLs from one value).
		`COMMIT`)
	conn, err := db.Conn(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	for _, stmt := range stmts {
		if _, err := conn.ExecContext(context.Background(), stmt); err != nil {
			b.Fatalf("%s: %v", stmt, err)
		}
	}
	conn.Close()
	b.Logf("generated %s in %s", path, time.Since(start).Round(time.Second))
	return &throughputShop{b: tdb, dsn: dsn, db: db, users: n}
}
