package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rescueWait bounds how long a test waits for work after a restart: the
// killed process's jobs are rescued rescue_after (11s) after they started,
// once the new process is River's leader (the dead one's leadership expires
// after about 15s) and its rescuer looks (at start, then every 30s).
const rescueWait = 120 * time.Second

// TestCrashWithRequestsInFlight submits 200 requests concurrently, kills
// the server with SIGKILL while they are being erased (and some are still
// being submitted), restarts it on the same database and checks that every
// request completes exactly once, erasing exactly what it should.
func TestCrashWithRequestsInFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("about a minute: waits for River to rescue the killed server's jobs (runs without -short, as in CI)")
	}
	t.Parallel()
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			crashWithRequestsInFlight(t, newBackend(t, name))
		})
	}
}

const subjects = 200

func crashWithRequestsInFlight(t *testing.T, b *backend) {
	shop, crm := b.newTarget(t, "shop"), b.newTarget(t, "crm")
	run(t, shop.db,
		`CREATE TABLE users (id BIGINT PRIMARY KEY, email TEXT NOT NULL)`,
		`CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users (id), note TEXT)`,
		// Subjects 1..200 and 10 bystanders (1001..1010), who must keep
		// everything; every user has 3 orders.
		`INSERT INTO users (id, email)
		 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 210)
		 SELECT CASE WHEN i <= 200 THEN i ELSE i + 800 END,
		        CASE WHEN i <= 200 THEN 'subject' || i || '@example.com' ELSE 'bystander' || i || '@example.com' END
		 FROM n`,
		`INSERT INTO orders (id, user_id, note)
		 WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 2)
		 SELECT u.id * 10 + n.i, u.id, 'order' FROM users u CROSS JOIN n`,
	)
	run(t, crm.db,
		`CREATE TABLE contacts (id BIGINT PRIMARY KEY, email TEXT NOT NULL)`,
		`CREATE TABLE events (id BIGINT PRIMARY KEY, contact_id BIGINT NOT NULL REFERENCES contacts (id))`,
		`INSERT INTO contacts (id, email)
		 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 210)
		 SELECT i, CASE WHEN i <= 200 THEN 'subject' || i || '@example.com' ELSE 'bystander' || i || '@example.com' END
		 FROM n`,
		`INSERT INTO events (id, contact_id)
		 WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 1)
		 SELECT c.id * 10 + n.i, c.id FROM contacts c CROSS JOIN n`,
	)
	srv := newServer(t, b.config([]target{shop, crm}, map[string]string{
		"shop": `      - {name: users, identities: {email: email}, action: delete}
      - {name: orders, references: {column: user_id, table: users}, action: delete}
`,
		"crm": `      - {name: contacts, identities: {email: email}, action: delete}
      - {name: events, references: {column: contact_id, table: contacts}, action: delete}
`,
	}), b.secretKey)
	srv.start()

	// Every subject is submitted by its own client, retrying through the
	// crash under its idempotency key. Submissions are spread over about
	// two seconds so that the kill lands while some are still arriving.
	ctx, cancel := context.WithTimeout(context.Background(), rescueWait)
	defer cancel()
	ids := make([]string, subjects)
	errs := make([]error, subjects)
	var (
		wg       sync.WaitGroup
		accepted atomic.Int64
	)
	for i := range subjects {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 10 * time.Millisecond)
			ids[i], errs[i] = srv.submit(ctx, fmt.Sprintf("subject%d@example.com", i+1), fmt.Sprintf("key-%d", i+1))
			if errs[i] == nil {
				accepted.Add(1)
			}
		})
	}

	// Kill once some subjects are erased but most are not: mid-run.
	deadline := time.Now().Add(60 * time.Second)
	for {
		left := count(t, shop.db, `SELECT count(*) FROM users WHERE id <= 200`)
		if left <= subjects-5 {
			t.Logf("killing with %d of %d subjects left in shop, %d submissions answered", left, subjects, accepted.Load())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("erasure did not start within 60s (%d subjects left)", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.kill()
	leftAtKill := count(t, shop.db, `SELECT count(*) FROM users WHERE id <= 200`)
	if leftAtKill == 0 {
		t.Log("every subject was erased before the kill landed; the restart then only finishes bookkeeping")
	}
	srv.start()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("subject %d: %v", i+1, err)
		}
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("two subjects got the same request id %s", id)
		}
		seen[id] = true
	}

	st := b.conn(t)
	waitFor(t, rescueWait, "every request to end", func() (bool, string) {
		n := count(t, st, `SELECT count(*) FROM requests WHERE status NOT IN ('completed', 'failed', 'canceled')`)
		return n == 0, fmt.Sprintf("%d requests open", n)
	})

	// No request lost, none created twice, all completed.
	if n := count(t, st, `SELECT count(*) FROM requests`); n != subjects {
		t.Errorf("%d requests stored, want %d", n, subjects)
	}
	if n := count(t, st, `SELECT count(*) FROM requests WHERE status = 'completed'`); n != subjects {
		t.Errorf("%d requests completed, want %d", n, subjects)
	}
	// None finished twice: exactly one request.completed event each.
	if n := count(t, st, `SELECT count(*) FROM audit_events WHERE type = 'request.completed'`); n != subjects {
		t.Errorf("%d request.completed events, want %d", n, subjects)
	}
	if n := count(t, st, `SELECT count(DISTINCT request_id) FROM audit_events WHERE type = 'request.completed'`); n != subjects {
		t.Errorf("request.completed events for %d requests, want %d", n, subjects)
	}
	// Every task counted exactly its subject's rows, across the crash.
	if n := count(t, st, `SELECT count(*) FROM tasks WHERE state = 'done'`); n != 2*subjects {
		t.Errorf("%d tasks done, want %d", n, 2*subjects)
	}
	for _, id := range ids[:20] { // the API read is slow-ish; a sample
		var v requestView
		if code, err := srv.do(context.Background(), "GET", "/v1/deletion-requests/"+id, nil, nil, &v); err != nil || code != 200 {
			t.Fatalf("GET request: %d, %v", code, err)
		}
		want := map[string]map[string]int64{"shop": {"users": 1, "orders": 3}, "crm": {"contacts": 1, "events": 2}}
		for _, task := range v.Tasks {
			got := map[string]int64{}
			for _, it := range task.Report.Items {
				got[it.Object] += it.Rows
			}
			if fmt.Sprint(got) != fmt.Sprint(want[task.Target]) {
				t.Errorf("request %s task %s report %v, want %v", id, task.Target, got, want[task.Target])
			}
		}
	}

	// The subjects' rows are gone from every target; the bystanders' stay.
	for _, c := range []struct {
		tg         target
		query      string
		want       int64
		whatIsLeft string
	}{
		{shop, `SELECT count(*) FROM users WHERE id <= 200`, 0, "subject users"},
		{shop, `SELECT count(*) FROM orders WHERE user_id <= 200`, 0, "subject orders"},
		{shop, `SELECT count(*) FROM users`, 10, "users"},
		{shop, `SELECT count(*) FROM orders`, 30, "orders"},
		{crm, `SELECT count(*) FROM contacts WHERE id <= 200`, 0, "subject contacts"},
		{crm, `SELECT count(*) FROM events WHERE contact_id <= 200`, 0, "subject events"},
		{crm, `SELECT count(*) FROM contacts`, 10, "contacts"},
		{crm, `SELECT count(*) FROM events`, 20, "events"},
	} {
		if n := count(t, c.tg.db, c.query); n != c.want {
			t.Errorf("%s: %d %s, want %d", c.tg.name, n, c.whatIsLeft, c.want)
		}
	}
}

// TestCrashMidErase kills the server while it erases one subject's 50,000
// rows in batches of 1,000, restarts it, and checks that the erasure
// completes and the task reports exactly what was erased: the batches
// committed before the kill are counted though the attempt that erased
// them never reported back.
func TestCrashMidErase(t *testing.T) {
	if testing.Short() {
		t.Skip("about a minute: waits for River to rescue the killed server's jobs (runs without -short, as in CI)")
	}
	t.Parallel()
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			crashMidErase(t, newBackend(t, name))
		})
	}
}

const bigRows = 50000

func crashMidErase(t *testing.T, b *backend) {
	shop := b.newTarget(t, "shop")
	run(t, shop.db,
		`CREATE TABLE users (id BIGINT PRIMARY KEY, email TEXT NOT NULL)`,
		`CREATE TABLE addresses (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users (id), city TEXT)`,
		`CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users (id), note TEXT)`,
		`CREATE INDEX orders_user ON orders (user_id)`,
		`INSERT INTO users (id, email) VALUES (1, 'big@example.com'), (2, 'bystander@example.com')`,
		`INSERT INTO addresses (id, user_id, city) VALUES (1, 1, 'a'), (2, 1, 'b'), (3, 1, 'c'), (4, 2, 'd')`,
		fmt.Sprintf(`INSERT INTO orders (id, user_id, note)
		 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)
		 SELECT i, CASE WHEN i <= %d THEN 1 ELSE 2 END, 'order' FROM n`, bigRows+100, bigRows),
	)
	srv := newServer(t, b.config([]target{shop}, map[string]string{
		"shop": `      - {name: users, identities: {email: email}, action: delete}
      - {name: addresses, references: {column: user_id, table: users}, action: delete}
      - {name: orders, references: {column: user_id, table: users}, action: delete}
`,
	}), b.secretKey)
	srv.start()

	ctx, cancel := context.WithTimeout(context.Background(), rescueWait)
	defer cancel()
	id, err := srv.submit(ctx, "big@example.com", "big")
	if err != nil {
		t.Fatal(err)
	}
	// Kill once at least one batch has committed and before the last: the
	// attempt then dies with work done that it never reported.
	deadline := time.Now().Add(60 * time.Second)
	var left int64
	for {
		left = count(t, shop.db, `SELECT count(*) FROM orders WHERE user_id = 1`)
		if left < bigRows {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("erasure did not start within 60s")
		}
		time.Sleep(2 * time.Millisecond)
	}
	srv.kill()
	atKill := count(t, shop.db, `SELECT count(*) FROM orders WHERE user_id = 1`)
	t.Logf("killed with %d of %d orders left (%d when seen)", atKill, bigRows, left)
	if atKill == 0 {
		t.Fatal("the erasure finished before the kill landed; the test proves nothing (make the kill faster or the data larger)")
	}

	srv.start()
	st := b.conn(t)
	waitFor(t, rescueWait, "the request to end", func() (bool, string) {
		n := count(t, st, `SELECT count(*) FROM requests WHERE status IN ('completed', 'failed', 'canceled')`)
		return n == 1, "open"
	})
	var v requestView
	if code, err := srv.do(context.Background(), "GET", "/v1/deletion-requests/"+id, nil, nil, &v); err != nil || code != 200 {
		t.Fatalf("GET request: %d, %v", code, err)
	}
	if v.Status != "completed" || len(v.Tasks) != 1 {
		t.Fatalf("request %s with %d tasks, want completed with 1", v.Status, len(v.Tasks))
	}
	task := v.Tasks[0]
	if task.Attempts < 2 {
		t.Errorf("task attempts %d, want at least 2 (one killed, one finishing)", task.Attempts)
	}
	got := map[string]int64{}
	for _, it := range task.Report.Items {
		got[it.Object] += it.Rows
	}
	want := map[string]int64{"users": 1, "addresses": 3, "orders": bigRows}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("task report %v, want %v", got, want)
	}
	if n := count(t, shop.db, `SELECT count(*) FROM orders WHERE user_id = 1`); n != 0 {
		t.Errorf("%d of the subject's orders left", n)
	}
	if n := count(t, shop.db, `SELECT count(*) FROM orders`); n != 100 {
		t.Errorf("%d orders left, want the bystander's 100", n)
	}
	if n := count(t, shop.db, `SELECT count(*) FROM users`); n != 1 {
		t.Errorf("%d users left, want the bystander", n)
	}
	if n := count(t, st, `SELECT count(*) FROM audit_events WHERE type = 'request.completed'`); n != 1 {
		t.Errorf("%d request.completed events, want 1", n)
	}
}

// waitFor polls cond every 200ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s: %s", d, what, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
