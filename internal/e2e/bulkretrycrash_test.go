package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestBulkRetryCrashRestart: a target down past its retry budget fails
// every request on it; once it is back, an operator retries every failed
// task of the target in bulk, and the server is SIGKILLed while the bulk
// retry is part way through. After the restart the bulk retry resumes
// where it stopped: every task is retried exactly once (one task.retried
// event each, carrying the attempts it failed with), the bulk retry counts
// each once, and every request completes with exactly its subject's rows
// erased.
func TestBulkRetryCrashRestart(t *testing.T) {
	t.Parallel()
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			bulkRetryCrashRestart(t, newBackend(t, name))
		})
	}
}

// bulkSubjects is how many requests fail and are retried in bulk: the bulk
// retry takes them up one transaction each, so with this many the kill,
// given as soon as a few are taken up, lands long before the last.
const bulkSubjects = 200

// bulkMaxAttempts is the retry budget of a task: small, so the outage
// fails every request quickly.
const bulkMaxAttempts = 2

func bulkRetryCrashRestart(t *testing.T, b *backend) {
	shop := b.newTarget(t, "shop")
	seedShop(t, shop.db, bulkSubjects)
	yaml := withWorkers(b.config([]target{shop}, map[string]string{"shop": shopMap}),
		fmt.Sprintf("  max_attempts: %d\n", bulkMaxAttempts))
	srv := newServer(t, yaml, b.secretKey)
	srv.start()

	// The shop refuses every delete (a trigger stands in for a database
	// in maintenance, or a lock that never clears): every request resolves
	// and then fails on it, each task after its whole retry budget.
	refuse, recover := refusingDeletes(b.name)
	run(t, shop.db, refuse...)
	ctx, cancel := context.WithTimeout(context.Background(), rescueWait)
	defer cancel()
	ids := submitAll(ctx, t, srv, bulkSubjects)()
	st := b.conn(t)
	waitFor(t, rescueWait, "every request to fail", func() (bool, string) {
		open := openRequests(t, b)
		return open == 0, fmt.Sprintf("%d requests open", open)
	})
	if n := count(t, st, `SELECT count(*) FROM tasks WHERE target = 'shop' AND state = 'failed' AND attempts = $1`, bulkMaxAttempts); n != bulkSubjects {
		t.Fatalf("%d tasks failed after %d attempts, want %d (tasks: %s)", n, bulkMaxAttempts, bulkSubjects, taskStates(t, st))
	}
	if n := count(t, shop.db, `SELECT count(*) FROM users WHERE id <= 100000`); n != bulkSubjects {
		t.Fatalf("%d subjects in the shop while it was down, want all %d", n, bulkSubjects)
	}

	// The target is back; the operator retries its failed tasks in bulk
	// (lethe tasks retry asks the server, which answers at once and works
	// through them in a job).
	run(t, shop.db, recover...)
	var bulk struct {
		ID         string `json:"id"`
		Retried    int    `json:"retried"`
		FinishedAt string `json:"finished_at"`
	}
	out := cli(t, nil, "tasks", "retry", "--target", "shop", "--failed", "--server", srv.url, "--token", adminToken)
	if err := json.Unmarshal(out, &bulk); err != nil || bulk.ID == "" {
		t.Fatalf("lethe tasks retry printed %q: %v", out, err)
	}
	// Kill once a few tasks are taken up: each is one transaction, and
	// most are still to come.
	marked := func() int64 {
		return count(t, st, `SELECT count(*) FROM bulk_retry_tasks WHERE bulk_id = $1`, bulk.ID)
	}
	deadline := time.Now().Add(60 * time.Second)
	for marked() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the bulk retry took up no task within 60s")
		}
		time.Sleep(time.Millisecond)
	}
	srv.kill()
	// What counts is what the store holds after the kill.
	atKill := marked()
	t.Logf("killed with %d of %d tasks taken up by the bulk retry", atKill, bulkSubjects)
	if atKill == 0 || atKill >= bulkSubjects {
		t.Fatalf("the kill did not land part way (%d of %d taken up); the test proves nothing", atKill, bulkSubjects)
	}
	// A task's mark and its retry commit together: as many retries as
	// marks, none without the other.
	if n := retriedEvents(t, b, bulk.ID); int64(len(n)) != atKill {
		t.Fatalf("at the kill: %d tasks marked taken up but %d requests with a task.retried event", atKill, len(n))
	}

	srv.start()
	waitFor(t, rescueWait, "the bulk retry to finish", func() (bool, string) {
		bulk.FinishedAt = ""
		code, err := srv.do(ctx, http.MethodGet, "/v1/tasks/retry/"+bulk.ID, nil, nil, &bulk)
		return err == nil && code == http.StatusOK && bulk.FinishedAt != "", fmt.Sprintf("%d, %v: %+v", code, err, bulk)
	})
	if bulk.Retried != bulkSubjects {
		t.Errorf("bulk retry retried %d tasks, want %d", bulk.Retried, bulkSubjects)
	}
	checkAllDone(t, st, shop.db, bulkSubjects)

	// Each task retried exactly once, by this bulk retry, from the
	// attempts it had failed with; and each ran again from a fresh count.
	events := retriedEvents(t, b, bulk.ID)
	for id := range ids {
		e := events[id]
		if len(e) != 1 {
			t.Errorf("request %s: %d task.retried events, want 1: %v", id, len(e), e)
			continue
		}
		if e[0].Target != "shop" || e[0].PreviousAttempts != fmt.Sprint(bulkMaxAttempts) {
			t.Errorf("request %s: task.retried %+v, want target shop after %d attempts", id, e[0], bulkMaxAttempts)
		}
	}
	if len(events) != bulkSubjects {
		t.Errorf("task.retried events for %d requests, want %d", len(events), bulkSubjects)
	}
	if n := count(t, st, `SELECT count(*) FROM audit_events WHERE type = 'task.retried'`); n != bulkSubjects {
		t.Errorf("%d task.retried events in all, want %d", n, bulkSubjects)
	}
	// A retried task's attempts start again from zero; only a task whose
	// erasure the kill also cut needs more than one.
	if n := count(t, st, `SELECT count(*) FROM tasks WHERE attempts < 1 OR attempts > $1`, bulkMaxAttempts); n != 0 {
		t.Errorf("%d tasks with attempts outside 1..%d after the retry: %s", n, bulkMaxAttempts, taskStates(t, st))
	}
	// Every receipt-bound report counts exactly the subject's rows.
	for id := range ids {
		var v requestView
		if code, err := srv.do(ctx, http.MethodGet, "/v1/deletion-requests/"+id, nil, nil, &v); err != nil || code != http.StatusOK {
			t.Fatalf("GET request: %d, %v", code, err)
		}
		got := map[string]int64{}
		for _, task := range v.Tasks {
			for _, it := range task.Report.Items {
				got[task.Target+"."+it.Object] += it.Rows
			}
		}
		if want := map[string]int64{"shop.users": 1, "shop.orders": 3}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("request %s (%s) report %v, want %v", id, v.Status, got, want)
		}
	}
}

// retriedEvent is what a task.retried event says.
type retriedEvent struct {
	Target           string `json:"target"`
	PreviousAttempts string `json:"previous_attempts"`
	BulkRetry        string `json:"bulk_retry"`
}

// retriedEvents returns the task.retried events of bulk retry bulkID, by
// request.
func retriedEvents(t *testing.T, b *backend, bulkID string) map[string][]retriedEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := `SELECT request_id, details FROM audit_events WHERE type = 'task.retried'`
	if b.name == "postgres" {
		q = `SELECT request_id, details::text FROM audit_events WHERE type = 'task.retried'`
	}
	rows, err := b.conn(t).QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]retriedEvent{}
	for rows.Next() {
		var id, details string
		if err := rows.Scan(&id, &details); err != nil {
			t.Fatal(err)
		}
		var e retriedEvent
		if err := json.Unmarshal([]byte(details), &e); err != nil {
			t.Fatalf("task.retried details %q: %v", details, err)
		}
		if e.BulkRetry == bulkID {
			out[id] = append(out[id], e)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// refusingDeletes returns the statements that make a target's orders
// refuse every delete with an error lethe retries, and those that end it.
func refusingDeletes(dialect string) (refuse, recover []string) {
	if dialect == "postgres" {
		return []string{
				`CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'shop is in maintenance'; END $$`,
				`CREATE TRIGGER refuse_delete BEFORE DELETE ON orders FOR EACH ROW EXECUTE FUNCTION refuse_delete()`,
			}, []string{
				`DROP TRIGGER refuse_delete ON orders`,
			}
	}
	return []string{
			`CREATE TRIGGER refuse_delete BEFORE DELETE ON orders BEGIN SELECT RAISE(ABORT, 'shop is in maintenance'); END`,
		}, []string{
			`DROP TRIGGER refuse_delete`,
		}
}

// taskStates summarises the tasks by state and attempts, for a failure
// message.
func taskStates(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.Query(`SELECT state, attempts, count(*) FROM tasks GROUP BY state, attempts ORDER BY state, attempts`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var s string
	for rows.Next() {
		var state string
		var attempts, n int64
		if err := rows.Scan(&state, &attempts, &n); err != nil {
			t.Fatal(err)
		}
		s += fmt.Sprintf("%s/%d: %d; ", state, attempts, n)
	}
	return s
}
