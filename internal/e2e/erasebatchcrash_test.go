package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCrashInsideEraseBatch kills the server with SIGKILL while it erases
// several subjects of one SQL table in one batch (connector.BatchEraser:
// their rows go in shared transactions), after some of the batch's
// transactions committed and before the batch ended, restarts it, and
// checks that every subject is erased exactly once in effect: every
// request completes, no request is ever seen completed while its
// subject's rows remain, each receipt counts exactly its subject's rows
// (those committed by the killed batch included, none twice), and the
// bystanders keep theirs.
func TestCrashInsideEraseBatch(t *testing.T) {
	t.Parallel()
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			crashInsideEraseBatch(t, newBackend(t, name))
		})
	}
}

// batchSubjects are submitted together, so that their erase jobs queue at
// the target while a batch runs and are taken up several at a time.
const batchSubjects = 60

// batchRows is the target's batch_size: a transaction of 4 changed rows
// spans two or more subjects (1 to 4 orders each), so the ledger shows a
// batch's shared transactions, and a batch of six subjects is many
// transactions.
const batchRows = 4

func crashInsideEraseBatch(t *testing.T, b *backend) {
	shop := b.newTarget(t, "shop")
	// Subjects 1..60 with ordersOf(i) orders each (counts that differ, so
	// a report handed to the wrong subject of a batch shows), and 10
	// bystanders (100001..100010) with 3 each, who keep everything.
	run(t, shop.db,
		`CREATE TABLE users (id BIGINT PRIMARY KEY, email TEXT NOT NULL)`,
		`CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users (id), note TEXT)`,
		`CREATE INDEX orders_user ON orders (user_id)`,
		fmt.Sprintf(`INSERT INTO users (id, email)
		 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)
		 SELECT CASE WHEN i <= %d THEN i ELSE i - %d + 100000 END,
		        CASE WHEN i <= %d THEN 'subject' || i || '@example.com' ELSE 'bystander' || i || '@example.com' END
		 FROM n`, batchSubjects+10, batchSubjects, batchSubjects, batchSubjects),
		`INSERT INTO orders (id, user_id, note)
		 WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 3)
		 SELECT u.id * 10 + n.i, u.id, 'order' FROM users u CROSS JOIN n
		 WHERE n.i < CASE WHEN u.id > 100000 THEN 3 ELSE u.id % 4 + 1 END`,
	)
	// Each order's delete is slowed (about 20 ms), so a batch is in flight
	// for a good part of a second: long enough for the kill to land inside.
	run(t, shop.db, slowDeletes(b.name)...)
	yaml := b.config([]target{shop}, map[string]string{"shop": shopMap})
	if !strings.Contains(yaml, "    tables:\n") {
		t.Fatalf("the backend's config changed; update this test:\n%s", yaml)
	}
	yaml = strings.Replace(yaml, "    tables:\n", fmt.Sprintf("    batch_size: %d\n    tables:\n", batchRows), 1)
	srv := newServer(t, yaml, b.secretKey)
	srv.start()

	ctx, cancel := context.WithTimeout(context.Background(), rescueWait)
	defer cancel()
	ids := submitAll(ctx, t, srv, batchSubjects)()
	subjectOf := map[string]int{} // request id -> subject number
	for id, n := range ids {
		subjectOf[id] = n
	}

	// Kill once a transaction shared by two subjects has committed while
	// subjects remain. The check and the kill race, so what counts is what
	// the target holds after the kill: a subject whose rows a committed
	// shared transaction erased in part (its orders in the ledger, its
	// user row still there) proves the kill cut a multi-subject batch
	// half way. If the kill missed, start and try again.
	var cut []int
	for attempt := 0; len(cut) == 0; attempt++ {
		if attempt == 5 {
			t.Fatal("no kill landed inside a multi-subject batch; the test proves nothing (make the deletes slower)")
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			var shared int64
			err := shop.db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT batch FROM lethe_erasure_ledger
				GROUP BY batch HAVING count(DISTINCT request_id) > 1) s`).Scan(&shared)
			// (An error is the ledger not created yet: lethe makes it at
			// its first erasure.)
			if err == nil && shared > 0 && partlyErased(t, shop.db, subjectOf) != nil {
				break
			}
			left := count(t, shop.db, `SELECT count(*) FROM users WHERE id <= 100000`)
			if left == 0 {
				t.Fatal("every subject was erased before the kill; the test proves nothing (make the deletes slower)")
			}
			if time.Now().After(deadline) {
				t.Fatalf("no shared transaction committed within 60s (%d shared, %d subjects left, ledger: %v)", shared, left, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		srv.kill()
		cut = partlyErased(t, shop.db, subjectOf)
		if len(cut) == 0 {
			srv.start()
		}
	}
	t.Logf("killed with subjects %v part way through a shared batch, %d of %d subjects left",
		cut, count(t, shop.db, `SELECT count(*) FROM users WHERE id <= 100000`), batchSubjects)

	srv.start()
	st := b.conn(t)
	// Until everything ends, check that whatever is reported done was
	// done: no request or task is ever seen done while its subject's rows
	// are still in the shop.
	checked := map[string]bool{}
	waitFor(t, rescueWait, "every request to end", func() (bool, string) {
		for _, id := range doneRequests(t, st) {
			if checked[id] {
				continue
			}
			n := subjectOf[id]
			if left := count(t, shop.db, `SELECT count(*) FROM users WHERE id = $1`, n) +
				count(t, shop.db, `SELECT count(*) FROM orders WHERE user_id = $1`, n); left != 0 {
				t.Fatalf("request %s reported done with %d rows of its subject left", id, left)
			}
			checked[id] = true
		}
		open := openRequests(t, b)
		return open == 0, fmt.Sprintf("%d requests open", open)
	})
	checkAllDone(t, st, shop.db, batchSubjects) // (bystanders: 10 users, 30 orders)

	// The ledger holds each subject's rows once: the killed batch's
	// committed transactions and the rerun's, none twice.
	rows, err := shop.db.QueryContext(ctx, `SELECT request_id, object, sum(changed) FROM lethe_erasure_ledger GROUP BY request_id, object`)
	if err != nil {
		t.Fatal(err)
	}
	ledger := map[string]map[string]int64{}
	for rows.Next() {
		var id, object string
		var n int64
		if err := rows.Scan(&id, &object, &n); err != nil {
			t.Fatal(err)
		}
		if ledger[id] == nil {
			ledger[id] = map[string]int64{}
		}
		ledger[id][object] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for id, n := range ids {
		if got, want := fmt.Sprint(ledger[id]), fmt.Sprint(map[string]int64{"users": 1, "orders": ordersOf(n)}); got != want {
			t.Errorf("request %s: ledger %s, want %s", id, got, want)
		}
	}
	if len(ledger) != batchSubjects {
		t.Errorf("ledger rows for %d requests, want %d", len(ledger), batchSubjects)
	}

	// Every signed receipt states exactly its subject's rows.
	keys := mustCall(t, http.MethodGet, srv.url+"/v1/signing-keys", nil, nil, http.StatusOK, nil)
	for id, n := range ids {
		rc := mustCall(t, http.MethodGet, srv.url+"/v1/deletion-requests/"+id+"/receipt", bearer(adminToken), nil, http.StatusOK, nil)
		checkReceipt(t, rc.body, keys.body, id, map[string]map[string]string{"shop": {"users": "delete 1", "orders": fmt.Sprintf("delete %d", ordersOf(n))}})
	}
}

// ordersOf is how many orders subject n has.
func ordersOf(n int) int64 { return int64(n%4 + 1) }

// slowDeletes returns the statements that make each delete from a
// target's orders take about 20 ms, done by the database itself.
func slowDeletes(dialect string) []string {
	if dialect == "postgres" {
		return []string{
			`CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.02); RETURN OLD; END $$`,
			`CREATE TRIGGER slow_delete BEFORE DELETE ON orders FOR EACH ROW EXECUTE FUNCTION slow_delete()`,
		}
	}
	// SQLite cannot sleep in a trigger (nor use WITH in one): it counts
	// a cross join of 700 x 700 rows instead.
	return []string{
		`CREATE TABLE slow_rows (i INTEGER PRIMARY KEY)`,
		`INSERT INTO slow_rows (i) WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 700) SELECT i FROM n`,
		`CREATE TRIGGER slow_delete BEFORE DELETE ON orders BEGIN SELECT count(*) FROM slow_rows a, slow_rows b; END`,
	}
}

// partlyErased returns the subjects that a committed transaction shared
// with another subject erased in part: their orders are in the ledger in
// a transaction with another request's rows, and their user row is still
// in the shop (users are erased after their orders, in the same batch).
func partlyErased(t *testing.T, shop *sql.DB, subjectOf map[string]int) []int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := shop.QueryContext(ctx, `SELECT DISTINCT l.request_id FROM lethe_erasure_ledger l
		WHERE l.batch IN (SELECT batch FROM lethe_erasure_ledger GROUP BY batch HAVING count(DISTINCT request_id) > 1)`)
	if err != nil {
		t.Fatal(err)
	}
	var shared []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		shared = append(shared, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var cut []int
	for _, id := range shared {
		n, ok := subjectOf[id]
		if !ok {
			t.Fatalf("ledger names request %s, which no subject was submitted as", id)
		}
		if count(t, shop, `SELECT count(*) FROM users WHERE id = $1`, n) == 1 {
			cut = append(cut, n)
		}
	}
	return cut
}

// doneRequests returns the requests completed or with a task done.
func doneRequests(t *testing.T, st *sql.DB) []string {
	t.Helper()
	rows, err := st.Query(`SELECT DISTINCT r.id FROM requests r JOIN tasks k ON k.request_id = r.id
		WHERE k.state = 'done' OR r.status = 'completed'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}
