package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// The fault tests of the "scale out" work: several lethe processes on one
// PostgreSQL, a node killed, a target and the store cut off mid-run. Each
// stays within about a minute (the node kill waits for River's rescue of
// the dead node's jobs: rescue_after plus up to 30s); they run in
// parallel with each other and the crash tests.

// outage is how long a database is cut off. Production outages last
// longer (a failover takes 30s or more); in CI 12s already spans many
// retries with backoff_max 2s, which is what the tests are about.
const outage = 12 * time.Second

// shopMap is the data map of the seeded shop: users and their orders.
const shopMap = `      - {name: users, identities: {email: email}, action: delete}
      - {name: orders, references: {column: user_id, table: users}, action: delete}
`

// seedShop creates n subjects (ids 1..n, subject<i>@example.com) with 3
// orders each, and 10 bystanders (ids 100001..100010) who keep everything.
func seedShop(t *testing.T, db *sql.DB, n int) {
	t.Helper()
	run(t, db,
		`CREATE TABLE users (id BIGINT PRIMARY KEY, email TEXT NOT NULL)`,
		`CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users (id), note TEXT)`,
		`CREATE INDEX orders_user ON orders (user_id)`,
		fmt.Sprintf(`INSERT INTO users (id, email)
		 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)
		 SELECT CASE WHEN i <= %d THEN i ELSE i - %d + 100000 END,
		        CASE WHEN i <= %d THEN 'subject' || i || '@example.com' ELSE 'bystander' || i || '@example.com' END
		 FROM n`, n+10, n, n, n),
		`INSERT INTO orders (id, user_id, note)
		 WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 2)
		 SELECT u.id * 10 + n.i, u.id, 'order' FROM users u CROSS JOIN n`,
	)
}

// withWorkers adds settings to the harness's workers block: the outage
// tests need more attempts than the default 10, which at backoff_max 2s
// would run out within the outage and fail tasks (correctly).
func withWorkers(yaml, extra string) string {
	return strings.Replace(yaml, "workers:\n", "workers:\n"+extra, 1)
}

// submitAll submits subjects 1..n concurrently through srv (each retrying
// through failures under its idempotency key) and returns request id ->
// subject number. It runs in the background; wait on the returned func.
func submitAll(ctx context.Context, t *testing.T, srv *server, n int) func() map[string]int {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ids  = map[string]int{}
		errs []error
	)
	for i := 1; i <= n; i++ {
		wg.Go(func() {
			id, err := srv.submit(ctx, fmt.Sprintf("subject%d@example.com", i), fmt.Sprintf("key-%d", i))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("subject %d: %w", i, err))
				return
			}
			if _, dup := ids[id]; dup {
				errs = append(errs, fmt.Errorf("two subjects got request id %s", id))
			}
			ids[id] = i
		})
	}
	return func() map[string]int {
		t.Helper()
		wg.Wait()
		for _, err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			t.FailNow()
		}
		return ids
	}
}

// waitErasing waits until at least k subjects of n are erased from db.
func waitErasing(t *testing.T, db *sql.DB, n, k int) {
	t.Helper()
	waitFor(t, 60*time.Second, "erasure to start", func() (bool, string) {
		left := count(t, db, `SELECT count(*) FROM users WHERE id <= $1`, n)
		return left <= int64(n-k), fmt.Sprintf("%d of %d subjects left", left, n)
	})
}

// checkAllDone checks that every one of n requests completed exactly once,
// each with one done task that erased exactly its subject's rows, and that
// the bystanders kept theirs.
func checkAllDone(t *testing.T, st, shop *sql.DB, n int) {
	t.Helper()
	waitFor(t, rescueWait, "every request to end", func() (bool, string) {
		open := count(t, st, `SELECT count(*) FROM requests WHERE status NOT IN ('completed', 'failed', 'canceled')`)
		return open == 0, fmt.Sprintf("%d requests open", open)
	})
	for _, c := range []struct {
		db    *sql.DB
		query string
		want  int64
	}{
		{st, `SELECT count(*) FROM requests`, int64(n)},
		{st, `SELECT count(*) FROM requests WHERE status = 'completed'`, int64(n)},
		{st, `SELECT count(*) FROM audit_events WHERE type = 'request.completed'`, int64(n)},
		{st, `SELECT count(DISTINCT request_id) FROM audit_events WHERE type = 'request.completed'`, int64(n)},
		{st, `SELECT count(*) FROM tasks WHERE state = 'done'`, int64(n)},
		{shop, `SELECT count(*) FROM users WHERE id <= 100000`, 0},
		{shop, `SELECT count(*) FROM orders WHERE user_id <= 100000`, 0},
		{shop, `SELECT count(*) FROM users`, 10},
		{shop, `SELECT count(*) FROM orders`, 30},
	} {
		if got := count(t, c.db, c.query); got != c.want {
			t.Errorf("%s = %d, want %d", c.query, got, c.want)
		}
	}
}

// TestThreeNodesOneKilled runs an api node, a worker node and an all node
// on one PostgreSQL, submits through the api node, SIGKILLs the all node
// mid-run and checks that every request still completes, exactly once.
func TestThreeNodesOneKilled(t *testing.T) {
	t.Parallel()
	const n = 200
	b := newBackend(t, "postgres")
	shop := b.newTarget(t, "shop")
	seedShop(t, shop.db, n)
	yaml := b.config([]target{shop}, map[string]string{"shop": shopMap})

	nodes := map[string]*server{}
	for _, r := range []string{"api", "worker", "all"} {
		s := newServer(t, yaml, b.secretKey)
		s.env = append(s.env, "LETHE_ROLE="+r)
		s.start()
		nodes[r] = s
	}
	// A worker answers probes and metrics, not the API.
	var v requestView
	if code, err := nodes["worker"].do(context.Background(), "GET", "/v1/deletion-requests", nil, nil, &v); err != nil || code != 404 {
		t.Errorf("API call on a worker node: %d, %v; want 404", code, err)
	}
	if code, err := nodes["worker"].do(context.Background(), "GET", "/metrics", nil, nil, nil); err != nil || code != 200 {
		t.Errorf("metrics on a worker node: %d, %v", code, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), rescueWait)
	defer cancel()
	wait := submitAll(ctx, t, nodes["api"], n)
	waitErasing(t, shop.db, n, 10)
	nodes["all"].kill()
	t.Logf("killed the all node with %d of %d subjects left", count(t, shop.db, `SELECT count(*) FROM users WHERE id <= $1`, n), n)
	wait()
	checkAllDone(t, b.conn(t), shop.db, n)
}

// TestTargetOutage cuts a PostgreSQL target off for the outage mid-run:
// its tasks retry with backoff and complete afterwards, and at no moment
// is a request or task reported done whose subject's rows still exist.
func TestTargetOutage(t *testing.T) {
	t.Parallel()
	const n = 100
	b := newBackend(t, "sqlite")
	direct := postgresDSN(t)
	px := newProxy(t, pgHostPort(t, direct))
	// lethe's sessions on the target are told apart by their name.
	app := fmt.Sprintf("lethe_outage_%d", time.Now().UnixNano())
	shop := target{name: "shop", driver: "postgres", dsn: px.via(direct) + "&application_name=" + app, db: openDB(t, "pgx", direct)}
	seedShop(t, shop.db, n)
	yaml := withWorkers(b.config([]target{shop}, map[string]string{"shop": shopMap}), "  max_attempts: 100\n")
	srv := newServer(t, yaml, b.secretKey)
	srv.start()

	ctx, cancel := context.WithTimeout(context.Background(), rescueWait)
	defer cancel()
	// One subject's account row is held locked, so that an erasure is
	// surely in flight on the target when the outage starts: erasures
	// take milliseconds, and a cut falling between them would test
	// nothing but resolves.
	hold, err := shop.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback()
	if _, err := hold.ExecContext(ctx, `SELECT id FROM users WHERE id = $1 FOR UPDATE`, n/2); err != nil {
		t.Fatal(err)
	}
	wait := submitAll(ctx, t, srv, n)
	waitErasing(t, shop.db, n, 5)
	waitFor(t, 60*time.Second, "an erasure to wait for the held row", func() (bool, string) {
		waiting := count(t, shop.db, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, app)
		return waiting > 0, "no session of lethe waits for a lock"
	})
	px.cut(outage)
	if err := hold.Rollback(); err != nil {
		t.Fatal(err)
	}
	ids := wait()

	// Until everything ends, check every 200ms that whatever is reported
	// done was done: the subject's rows are really gone.
	st := b.conn(t)
	checked := map[string]bool{}
	waitFor(t, rescueWait, "every request to end", func() (bool, string) {
		rows, err := st.Query(`SELECT r.id, r.status FROM requests r JOIN tasks k ON k.request_id = r.id
			WHERE k.state = 'done' OR r.status = 'completed'`)
		if err != nil {
			t.Fatal(err)
		}
		var done []string
		for rows.Next() {
			var id, status string
			if err := rows.Scan(&id, &status); err != nil {
				t.Fatal(err)
			}
			done = append(done, id)
		}
		rows.Close()
		for _, id := range done {
			if checked[id] {
				continue
			}
			subject := ids[id]
			if left := count(t, shop.db, `SELECT count(*) FROM users WHERE id = $1`, subject) +
				count(t, shop.db, `SELECT count(*) FROM orders WHERE user_id = $1`, subject); left != 0 {
				t.Fatalf("request %s reported done with %d rows of its subject left", id, left)
			}
			checked[id] = true
		}
		open := count(t, st, `SELECT count(*) FROM requests WHERE status NOT IN ('completed', 'failed', 'canceled')`)
		return open == 0, fmt.Sprintf("%d requests open, proxy down: %v", open, px.down())
	})
	checkAllDone(t, st, shop.db, n)
	for id, subject := range ids {
		if subject != n/2 {
			continue
		}
		if a := count(t, st, `SELECT attempts FROM tasks WHERE request_id = ?`, id); a < 2 {
			t.Errorf("the held subject's task ended after %d attempt(s): the outage did not fail its erasure in flight", a)
		}
	}
	t.Logf("%d tasks retried through the outage", count(t, st, `SELECT count(*) FROM tasks WHERE attempts > 1`))
}

// TestStoreOutage cuts two nodes off their PostgreSQL store for the outage
// mid-run: they reconnect by themselves, and no request is lost or
// completed twice.
func TestStoreOutage(t *testing.T) {
	t.Parallel()
	const n = 150
	b := newBackend(t, "postgres")
	shop := b.newTarget(t, "shop")
	seedShop(t, shop.db, n)
	direct := b.storeDB
	px := newProxy(t, pgHostPort(t, direct))
	b.storeDB = px.via(direct)
	yaml := withWorkers(b.config([]target{shop}, map[string]string{"shop": shopMap}), "  max_attempts: 100\n")
	b.storeDB = direct // the test's own reads bypass the proxy
	nodes := []*server{newServer(t, yaml, b.secretKey), newServer(t, yaml, b.secretKey)}
	for _, s := range nodes {
		s.start()
	}

	ctx, cancel := context.WithTimeout(context.Background(), rescueWait)
	defer cancel()
	half := submitAll(ctx, t, nodes[0], n)
	waitErasing(t, shop.db, n, 5)
	px.cut(outage)
	half()
	checkAllDone(t, b.conn(t), shop.db, n)
	// Both nodes are still up and ready.
	for i, s := range nodes {
		if code, err := s.do(context.Background(), "GET", "/readyz", nil, nil, nil); err != nil || code != 200 {
			t.Errorf("node %d after the outage: /readyz %d, %v", i, code, err)
		}
	}
}
