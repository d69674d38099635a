package sqle2e

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/testdb"
	"github.com/lethe-privacy/lethe/internal/testdb/shopdb"
)

// Benchmark shops live in their own PostgreSQL schemas, lethe_bench_u<N>,
// built once and reused: generating 1M users takes minutes, erasing one
// subject milliseconds. benchVersion names the generator; a schema built
// by another version (or half-built) is dropped and generated again.
const (
	benchVersion = 2
	envBenchSize = "LETHE_BENCH_USERS" // comma-separated user counts; default 100000,1000000
)

// The benchmark subject owns about 1,000 rows, all with ids from benchBase
// up, far above the generated ones, so each iteration can put them back
// and clear them without touching the rest.
const (
	benchBase    = int64(1_000_000_000_000)
	benchEmail   = "bench-subject@example.com"
	benchRows    = 1000 // 1 user, 10 addresses, 200 orders, 600 items, 100 tickets, 89 invoices
	benchOrders  = 200
	benchRetains = 89
)

// BenchmarkErase erases one subject with 1,000 rows from a PostgreSQL shop
// of 100k and of 1M users, several ways in the same run. Emails are
// matched case-insensitively (the default rule for email columns), so every
// way compares lower(trim(email)):
//   - sqlconn: Connector.Erase, what the pipeline's erase task runs;
//   - sqlconn-request: Resolve from the email, Erase and Verify, all the
//     connector work of one request;
//   - hand: one hand-written transaction doing the same deletes and the
//     same pseudonymisation with the same case-insensitive comparison (the
//     redacted email computed in Go, as redact_email does);
//
// all three with indexes on lower(trim(email)) (what docs/datamap.md asks
// for), and sqlconn-noindex and hand-noindex the same without them (only
// the plain email indexes, which a case-insensitive match cannot use).
// Phones are stored in E.164 by the generator, so the map declares
// match: exact for users.phone (the phone rule would scan).
//
// scripts/bench-erase runs it and prints the ratios; docs/performance.md
// has the results. It needs LETHE_TEST_POSTGRES; it never runs as part of
// the test suite (benchmarks run only with -bench).
func BenchmarkErase(b *testing.B) {
	base := testdb.Service(b, testdb.EnvPostgres)
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
	for _, n := range sizes {
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) {
			dsn := ensureBenchShop(b, base, n)
			db, err := sql.Open("pgx", dsn)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(testdb.TargetMaxConns) // the server may be shared
			s := &shop{b: testdb.TargetDBsOf("postgres")[0], dsn: dsn, db: db, users: n}
			benchMap := strings.Replace(s.mapYAML(), "    identities: {email: email, phone: phone, user_id: id, x-customer_ref: customer_ref}\n",
				"    identities: {email: email, phone: phone, user_id: id, x-customer_ref: customer_ref}\n    match: {phone: exact}\n", 1)
			if benchMap == s.mapYAML() {
				b.Fatal("bench map: users entry not found")
			}
			conn, err := sqlconn.New(context.Background(), connector.Target{Name: "shop", Kind: sqlconn.Kind,
				Decode: func(v any) error { return yaml.Unmarshal([]byte(benchMap), v) }})
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			if err := conn.Validate(context.Background()); err != nil {
				b.Fatal(err)
			}
			uid := strconv.FormatInt(benchBase, 10)
			full := connector.Subject{Identities: []lethe.Identity{
				{Type: lethe.IdentityEmail, Value: benchEmail}, {Type: lethe.IdentityUserID, Value: uid}}}
			given := connector.Subject{Identities: full.Identities[:1]}

			sqlconnErase := func(ctx context.Context) (int64, error) {
				rep, err := conn.Erase(ctx, full)
				return rep.Total(), err
			}
			handCI := func(ctx context.Context) (int64, error) { return handErase(ctx, db) }
			modes := []struct {
				name    string
				ciIndex bool
				erase   func(ctx context.Context) (int64, error)
			}{
				{"sqlconn", true, func(ctx context.Context) (int64, error) {
					rep, err := conn.Erase(ctx, full)
					return rep.Total(), err
				}},
				{"sqlconn-request", true, func(ctx context.Context) (int64, error) {
					found, err := conn.Resolve(ctx, given)
					if err != nil {
						return 0, err
					}
					subj := connector.Subject{Identities: append(given.Identities, found...)}
					rep, err := conn.Erase(ctx, subj)
					if err != nil {
						return 0, err
					}
					return rep.Total(), conn.Verify(ctx, subj)
				}},
				{"hand", true, handCI},
				{"sqlconn-noindex", false, sqlconnErase},
				{"hand-noindex", false, handCI},
			}
			defer setCIIndexes(b, s, true) // leave the shop as generated
			for _, m := range modes {
				setCIIndexes(b, s, m.ciIndex)
				b.Run(m.name, func(b *testing.B) {
					ctx := context.Background()
					b.ReportAllocs()
					b.StopTimer()
					for i := 0; i < b.N; i++ {
						clearSubject(b, s)
						putSubject(b, s)
						b.StartTimer()
						n, err := m.erase(ctx)
						b.StopTimer()
						if err != nil {
							b.Fatal(err)
						}
						if n != benchRows {
							b.Fatalf("erase reported %d rows, want %d", n, benchRows)
						}
						checkSubjectErased(b, s)
					}
					clearSubject(b, s)
					b.ReportMetric(benchRows, "rows/op")
				})
			}
		})
	}
}

// ciIndexes are the expression indexes that serve case-insensitive email
// matching (docs/datamap.md).
var ciIndexes = []struct{ name, table string }{
	{"bench_users_email_ci", "users"},
	{"bench_orders_email_ci", "orders"},
	{"bench_support_tickets_email_ci", "support_tickets"},
}

// setCIIndexes creates (and analyzes) or drops the ciIndexes.
func setCIIndexes(tb testing.TB, s *shop, on bool) {
	tb.Helper()
	for _, ix := range ciIndexes {
		if on {
			s.exec(tb, `CREATE INDEX IF NOT EXISTS `+ix.name+` ON `+ix.table+` (lower(trim(email)))`)
			s.exec(tb, `ANALYZE `+ix.table)
		} else {
			s.exec(tb, `DROP INDEX IF EXISTS `+ix.name)
		}
	}
}

// handErase is what a careful engineer would write for this schema: one
// transaction, one set-based statement per table, children first, emails
// compared as lethe's case-insensitive rule does.
func handErase(ctx context.Context, db *sql.DB) (int64, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	var total int64
	uid, email := benchBase, benchEmail
	for _, st := range []struct {
		sql  string
		args []any
	}{
		{`DELETE FROM order_items WHERE order_id IN (SELECT id FROM orders WHERE user_id = $1 OR lower(trim(email)) = $2)`, []any{uid, email}},
		// Two statements, not "email = $2 OR order_id IN (...)": under OR
		// PostgreSQL scans the whole table (see sqlconn's where).
		{`DELETE FROM support_tickets WHERE order_id IN (SELECT id FROM orders WHERE user_id = $1 OR lower(trim(email)) = $2)`, []any{uid, email}},
		{`DELETE FROM support_tickets WHERE lower(trim(email)) = $1`, []any{email}},
		{`UPDATE orders SET user_id = NULL, email = $3, shipping_name = NULL WHERE user_id = $1 OR lower(trim(email)) = $2`, []any{uid, email, redactedEmail(email)}},
		{`DELETE FROM addresses WHERE user_id = $1`, []any{uid}},
		{`DELETE FROM users WHERE id = $1 OR lower(trim(email)) = $2`, []any{uid, email}},
	} {
		res, err := tx.ExecContext(ctx, st.sql, st.args...)
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
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM invoices WHERE user_id = $1`, benchBase).Scan(&kept); err != nil {
		return total, err
	}
	return total + kept, tx.Commit()
}

// putSubject inserts the benchmark subject's rows, server-side.
func putSubject(tb testing.TB, s *shop) {
	tb.Helper()
	base := strconv.FormatInt(benchBase, 10)
	for _, stmt := range []string{
		`INSERT INTO users (id, email, phone, customer_ref, name, seed_owner) VALUES (` + base + `, '` + benchEmail + `', '+4917000000000', 'cref-bench', 'Bench Subject', -1)`,
		`INSERT INTO addresses (id, user_id, street, seed_owner) SELECT ` + base + ` + g, ` + base + `, 'Bench St', -1 FROM generate_series(1, 10) g`,
		`INSERT INTO orders (id, user_id, email, shipping_name, total, seed_owner)
			SELECT ` + base + ` + g, CASE WHEN g <= 150 THEN ` + base + ` END, '` + benchEmail + `', 'Bench', g, -1 FROM generate_series(1, ` + strconv.Itoa(benchOrders) + `) g`,
		`INSERT INTO order_items (id, order_id, sku, qty, seed_owner)
			SELECT ` + base + ` + 3*(o.id - ` + base + `) + j, o.id, 'sku', 1, -1 FROM orders o, generate_series(0, 2) j WHERE o.id > ` + base,
		`INSERT INTO support_tickets (id, email, order_id, body, seed_owner)
			SELECT ` + base + ` + g, CASE WHEN g <= 50 THEN '` + benchEmail + `' END, CASE WHEN g > 50 THEN ` + base + ` + g END, 'help', -1 FROM generate_series(1, 100) g`,
		`INSERT INTO invoices (id, user_id, amount, seed_owner) SELECT ` + base + ` + g, ` + base + `, g, -1 FROM generate_series(1, ` + strconv.Itoa(benchRetains) + `) g`,
	} {
		s.exec(tb, stmt)
	}
}

// clearSubject removes whatever is left of the benchmark subject.
func clearSubject(tb testing.TB, s *shop) {
	tb.Helper()
	for _, t := range []string{"order_items", "support_tickets", "orders", "addresses", "invoices", "users"} {
		s.exec(tb, `DELETE FROM `+t+` WHERE id >= ?`, benchBase)
	}
}

// checkSubjectErased checks the end state both ways must reach.
func checkSubjectErased(tb testing.TB, s *shop) {
	tb.Helper()
	var got []string
	for _, q := range []string{
		`SELECT count(*) FROM users WHERE id >= $1`,
		`SELECT count(*) FROM addresses WHERE id >= $1`,
		`SELECT count(*) FROM order_items WHERE id >= $1`,
		`SELECT count(*) FROM support_tickets WHERE id >= $1`,
		`SELECT count(*) FROM orders WHERE id >= $1 AND user_id IS NULL AND shipping_name IS NULL AND email LIKE 'erased+%@invalid'`,
		`SELECT count(*) FROM invoices WHERE id >= $1`,
	} {
		var n int64
		if err := s.db.QueryRow(q, benchBase).Scan(&n); err != nil {
			tb.Fatal(err)
		}
		got = append(got, strconv.FormatInt(n, 10))
	}
	if want := fmt.Sprintf("0 0 0 0 %d %d", benchOrders, benchRetains); strings.Join(got, " ") != want {
		tb.Fatalf("after erase: rows left %v, want %s (users addresses items tickets pseudonymised-orders invoices)", got, want)
	}
}

// foreignKey matches the trailing foreign key of a shopdb.DDL statement.
var foreignKey = regexp.MustCompile(`,\s*FOREIGN KEY[^)]*\)[^)]*\)\)$`)

// ensureBenchShop returns a DSN for the shop of n users in schema
// lethe_bench_u<n>, generating it first if it is missing or stale.
func ensureBenchShop(b *testing.B, base string, n int64) string {
	b.Helper()
	ctx := context.Background()
	schema := fmt.Sprintf("lethe_bench_u%d", n)
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var have int64
	err = conn.QueryRow(ctx, `SELECT users FROM `+schema+`.bench_meta WHERE version = $1`, benchVersion).Scan(&have)
	if err == nil && have == n {
		return testdb.WithSearchPath(b, base, schema)
	}
	start := time.Now()
	b.Logf("generating %s (%d users, about %d rows); reused by later runs", schema, n, 10*n)
	// The schema is the benchmark's own: rebuilding it loses nothing.
	// Loading without keys, then adding them, is several times faster.
	stmts := []string{
		`DROP SCHEMA IF EXISTS ` + schema + ` CASCADE`,
		`CREATE SCHEMA ` + schema,
		`SET search_path = ` + schema,
		`SET synchronous_commit = off`,
		`SET maintenance_work_mem = '256MB'`,
	}
	for _, ddl := range shopdb.DDL {
		// Keys are added after the load.
		ddl = strings.Replace(ddl, " PRIMARY KEY", "", 1)
		stmts = append(stmts, foreignKey.ReplaceAllString(ddl, ")"))
	}
	ns := strconv.FormatInt(n, 10)
	stmts = append(stmts,
		`INSERT INTO users SELECT i, 'user' || i || '@example.com', '+49151' || (10000000 + i), 'cref-' || i, 'Name ' || i, i FROM generate_series(1, `+ns+`) i`,
		`INSERT INTO addresses SELECT i, i, i || ' Main St', i FROM generate_series(1, `+ns+`) i`,
		`INSERT INTO orders (id, user_id, email, shipping_name, total, seed_owner) SELECT o, (o + 1) / 2, CASE WHEN o % 2 = 1 THEN 'user' || (o + 1) / 2 || '@example.com' END, 'Ship', o, (o + 1) / 2
			FROM generate_series(1, 2 * `+ns+`) o`,
		`INSERT INTO order_items SELECT i, (i + 1) / 2, 'sku', 1, (i + 3) / 4 FROM generate_series(1, 4 * `+ns+`) i`,
		`INSERT INTO support_tickets SELECT i, 'user' || i || '@example.com', NULL, 'help', i FROM generate_series(1, `+ns+`) i`,
		`INSERT INTO invoices SELECT i, i, 1000 + i, i FROM generate_series(1, `+ns+`) i`,
	)
	for _, t := range shopdb.Tables {
		stmts = append(stmts, `ALTER TABLE `+t+` ADD PRIMARY KEY (id)`)
	}
	stmts = append(stmts, shopdb.Indexes...)
	stmts = append(stmts,
		`ALTER TABLE addresses ADD FOREIGN KEY (user_id) REFERENCES users (id)`,
		`ALTER TABLE orders ADD FOREIGN KEY (user_id) REFERENCES users (id)`,
		`ALTER TABLE order_items ADD FOREIGN KEY (order_id) REFERENCES orders (id)`,
		`ALTER TABLE support_tickets ADD FOREIGN KEY (order_id) REFERENCES orders (id)`,
		`ALTER TABLE ticket_messages ADD FOREIGN KEY (ticket_id) REFERENCES support_tickets (id)`,
		`VACUUM ANALYZE users, addresses, orders, order_items, support_tickets, ticket_messages, invoices`,
		`CREATE TABLE bench_meta (version INT NOT NULL, users BIGINT NOT NULL)`,
		`INSERT INTO bench_meta VALUES (`+strconv.Itoa(benchVersion)+`, `+ns+`)`,
	)
	for _, stmt := range stmts {
		t0 := time.Now()
		if _, err := conn.Exec(ctx, stmt); err != nil {
			b.Fatalf("%s: %v", stmt, err)
		}
		if d := time.Since(t0); d > 5*time.Second {
			b.Logf("  %s: %s", strings.Fields(stmt)[0]+" "+strings.Fields(stmt)[1]+" "+strings.Fields(stmt)[2], d.Round(time.Millisecond))
		}
	}
	b.Logf("generated %s in %s", schema, time.Since(start).Round(time.Second))
	return testdb.WithSearchPath(b, base, schema)
}
