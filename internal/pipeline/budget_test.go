package pipeline

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector/sqlconn"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testdb"
)

// tally counts the statements a database is sent and the transactions
// committed in it. River's background work (leader election, queue
// upkeep, polls that find nothing to do, SQLite's polls for notifications
// of new jobs, however many polls see one, and the deletion of old
// notifications and of finished jobs, which takes however many
// accumulated since the last one) depends on timing rather than
// on the request, so it is left out: statements on River's tables other
// than river_job, and statements on River's tables, inserts aside, that
// touched no row (polls that found nothing).
type tally struct {
	mu         sync.Mutex
	statements int
	commits    int
	log        []string
	off        bool
	// began holds, per connection, a BEGIN not counted yet: a
	// transaction of River's that found nothing to do commits without a
	// counted statement, and is left out with its BEGIN and COMMIT.
	began map[any]bool
	open  map[any]bool // connections in a transaction whose BEGIN was counted
}

// Record counts one statement run on conn, which touched rows rows.
func (c *tally) Record(conn any, query string, rows int64) {
	q := strings.ToLower(strings.TrimSpace(query))
	for _, noise := range []string{"river_leader", "river_queue", "river_client", "river_migration", "listen ", "unlisten ", "pg_try_advisory", "notificationgetafter", "notificationdeletebefore", "jobdeletebefore"} {
		if strings.Contains(q, noise) {
			return
		}
	}
	if strings.Contains(q, "river_") && rows == 0 && !strings.Contains(q, "insert into") {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.off {
		return
	}
	if c.began == nil {
		c.began = map[any]bool{}
	}
	if c.open == nil {
		c.open = map[any]bool{}
	}
	switch {
	case strings.HasPrefix(q, "begin"):
		c.began[conn] = true
		return
	case q == "commit" || q == "rollback":
		delete(c.began, conn)
		if !c.open[conn] {
			return // nothing counted in it, or it began before counting did
		}
		delete(c.open, conn)
	case c.began[conn]:
		delete(c.began, conn)
		c.open[conn] = true
		c.statements++
		c.log = append(c.log, "     begin")
	}
	c.statements++
	if q == "commit" {
		c.commits++
	}
	c.log = append(c.log, fmt.Sprintf("%4d %s", rows, strings.Join(strings.Fields(query), " ")))
}

func (c *tally) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.statements, c.commits, c.log, c.off, c.began, c.open = 0, 0, nil, false, nil, nil
}

func (c *tally) stop() (statements, commits int, log []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off = true
	return c.statements, c.commits, c.log
}

// countedStore opens a store of dialect whose every statement (River's
// included) is counted by c, and a second, uncounted store on the same
// database for the test's own reads.
func countedStore(t *testing.T, dialect string, c *tally) (counted, plain store.Store) {
	t.Helper()
	st, plain := testdb.CountedStore(t, dialect, c)
	migratePipeline(t, st)
	return st, plain
}

// countedShop is a PostgreSQL shop database reached through the real SQL
// connector on a pool whose statements c counts.
func countedShop(t *testing.T, c *tally) (Target, *sql.DB) {
	t.Helper()
	d := testdb.TargetDBsOf("postgres")[0]
	dsn, db := d.Open(t)
	for _, q := range []string{
		`CREATE TABLE users (id SERIAL PRIMARY KEY, email TEXT, phone TEXT)`,
		`CREATE TABLE orders (id SERIAL PRIMARY KEY, user_id INTEGER REFERENCES users (id), total INTEGER)`,
		`INSERT INTO users (email, phone) VALUES ('ada.lovelace@example.com', '+15551234567'), ('other@example.org', '+15550000000')`,
		`INSERT INTO orders (user_id, total) VALUES (1, 10), (1, 20), (2, 30)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pc.Tracer = testdb.Tracer(c)
	name := stdlib.RegisterConnConfig(pc)
	t.Cleanup(func() { stdlib.UnregisterConnConfig(name) })
	doc := "targets:\n  - name: shop\n    kind: sql\n    driver: postgres\n    dsn: \"" + name + "\"\n    tables:\n" +
		"      - {name: users, identities: {email: email, phone: phone}, action: delete}\n" +
		"      - {name: orders, references: {column: user_id, table: users}, action: delete}\n"
	cfg, err := config.Parse([]byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := sqlconn.New(context.Background(), cfg.ConnectorTargets()[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return Target{Name: "shop", Conn: conn}, db
}

// Budgets of one request end to end through one synchronous SQL target:
// intake's transaction (the request and its first job), every step, and
// River's own work for the request's jobs (fetching, completing). A change
// that makes a request cost more fails here; one that makes it cost less
// should lower the budget. Before a request's own job went straight
// through (one job per step and target, each completed twice), the same
// request cost 83-87 statements and 7-9 commits on either store. The
// budgets are the counts measured with review holds and batch erasure in
// (40 and 42), less the check that the request exists before its linked
// identities are stored, which the start transaction's compare-and-set on
// the request's row already made (39 and 41), less the list of tasks
// resolve's first read of the request no longer makes (38 and 40), less
// the store's own savings: a transaction's audit events stored together
// (the last transaction's four INSERTs down to two: the receipt reads the
// chain in between), minimisation not clearing a callback URL the request
// never had, a task's progress written with its end, and a new task's
// plan with its first attempt (33 and 35); on PostgreSQL also the
// receipt's read of the chain storing the events before it in the same
// statement, and the request inserted with its identities in one
// statement (33).
var requestBudgets = map[string]struct{ statements, commits int }{
	"sqlite":   {statements: 33, commits: 3},
	"postgres": {statements: 33, commits: 3},
}

// Budget of the same request in the target database (the SQL connector:
// resolve, erase, verify); 38 statements and 2 commits when the budget was
// first set, 30 and 1 before resolve stopped asking the target again with
// only the identities it had found itself, 27 and 1 before the straight
// path stopped planning a target whose reports are full and reading its
// ledger after a first attempt that succeeded (connector.FullReporter), 23
// and 1 before the candidate queries of a step (one per matched column)
// were one statement.
var targetBudget = struct{ statements, commits int }{statements: 21, commits: 1}

func TestRequestStatementBudget(t *testing.T) {
	t.Parallel()
	testdb.ForEachDialectName(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		var inStore, inTarget tally
		st, plain := countedStore(t, dialect, &inStore)
		shop, shopDB := countedShop(t, &inTarget)
		_, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg := testConfig()
		cfg.Signer = audit.NewSigner(priv)
		p := build(t, st, cfg, shop)
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		stopped := false
		stop := func() {
			if stopped {
				return
			}
			stopped = true
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := p.Stop(sctx); err != nil {
				t.Errorf("stop: %v", err)
			}
		}
		t.Cleanup(stop)
		// River's start (leader election, queues) is not the request's.
		time.Sleep(200 * time.Millisecond)
		inStore.reset()
		inTarget.reset()

		id := submit(t, st, p, email)
		waitDone(t, plain, id, lethe.StatusCompleted)
		waitJobsFinalized(t, plain)
		stop()
		statements, commits, log := inStore.stop()
		tStatements, tCommits, tLog := inTarget.stop()

		var n int
		if err := shopDB.QueryRow(`SELECT count(*) FROM users WHERE email = 'ada.lovelace@example.com'`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("subject's users rows left: %d (%v)", n, err)
		}
		t.Logf("%s store: %d statements, %d commits; target: %d statements, %d commits", dialect, statements, commits, tStatements, tCommits)
		b := requestBudgets[dialect]
		if statements > b.statements || commits > b.commits {
			t.Errorf("one request cost %d statements and %d commits in lethe's %s store, over the budget of %d and %d:\n%s",
				statements, commits, dialect, b.statements, b.commits, strings.Join(log, "\n"))
		}
		if tStatements > targetBudget.statements || tCommits > targetBudget.commits {
			t.Errorf("one request cost %d statements and %d commits in the target, over the budget of %d and %d:\n%s",
				tStatements, tCommits, targetBudget.statements, targetBudget.commits, strings.Join(tLog, "\n"))
		}
		if testing.Verbose() {
			t.Logf("store statements:\n%s\ntarget statements:\n%s", strings.Join(log, "\n"), strings.Join(tLog, "\n"))
		}
	})
}

// waitJobsFinalized waits until every job in River's table has ended.
func waitJobsFinalized(t *testing.T, st store.Store) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		open := queryStrings(t, st,
			`SELECT id FROM river_job WHERE finalized_at IS NULL`,
			`SELECT id::text FROM river_job WHERE finalized_at IS NULL`)
		if len(open) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs still open after %s: %v", waitTimeout, open)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
