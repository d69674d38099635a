package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// restartJobTimeout is the job timeout the restarted server runs with.
// River's own rescuer leaves a running job alone until rescue_after (job
// timeout plus a minute, 31 minutes here), so the jobs the kill orphaned can
// only finish within restartBound if the restart rescued them at start.
const restartJobTimeout = "30m"

// restartBound is how long after the restart the test waits for every
// request to end: a liveness bound far below what River's rescuer would
// take, generous for a loaded machine; what the test asserts is the
// mechanism (each orphan carries the rescue at start, recorded before the
// restarted server answered /readyz). The time it took is logged; on a
// quiet machine it is well under the 30 s a single node must recover in.
const restartBound = 10 * time.Minute

// restartRescueMark is what the rescue at start records in an orphaned
// job's errors (internal/pipeline's rescueOrphans); River's rescuer writes
// riverRescueMark instead.
const (
	restartRescueMark = "rescued at restart"
	riverRescueMark   = "rescued by JobRescuer"
)

func TestRestartResumesOrphanedJobs(t *testing.T) {
	t.Parallel()
	for _, name := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			restartResumesOrphanedJobs(t, newBackend(t, name))
		})
	}
}

const restartSubjects = 100

func restartResumesOrphanedJobs(t *testing.T, b *backend) {
	shop := b.newTarget(t, "shop")
	run(t, shop.db,
		`CREATE TABLE users (id BIGINT PRIMARY KEY, email TEXT NOT NULL)`,
		`CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users (id), note TEXT)`,
		`CREATE INDEX orders_user ON orders (user_id)`,
		fmt.Sprintf(`INSERT INTO users (id, email)
		 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)
		 SELECT i, 'restart' || i || '@example.com' FROM n`, restartSubjects+5),
		// 20 orders a user: erase jobs long enough to be caught running by
		// the kill, short enough that the bound measures the resumption,
		// not the machine's speed.
		`INSERT INTO orders (id, user_id, note)
		 WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 19)
		 SELECT u.id * 1000 + n.i, u.id, 'order' FROM users u CROSS JOIN n`,
	)
	cfg := b.config([]target{shop}, map[string]string{
		"shop": `      - {name: users, identities: {email: email}, action: delete}
      - {name: orders, references: {column: user_id, table: users}, action: delete}
`,
	})
	// Long timeouts: without the rescue at start, a job orphaned by the
	// kill would wait job_timeout + 1m = 31 minutes.
	short := "  job_timeout: 10s\n  rescue_after: 11s\n"
	if !strings.Contains(cfg, short) {
		t.Fatalf("the backend's config changed; update this test:\n%s", cfg)
	}
	cfg = strings.Replace(cfg, short, "  job_timeout: "+restartJobTimeout+"\n", 1)
	srv := newServer(t, cfg, b.secretKey)
	srv.start()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ids := make([]string, restartSubjects)
	errs := make([]error, restartSubjects)
	var wg sync.WaitGroup
	for i := range restartSubjects {
		wg.Go(func() {
			ids[i], errs[i] = srv.submit(ctx, fmt.Sprintf("restart%d@example.com", i+1), fmt.Sprintf("restart-%d", i+1))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("subject %d: %v", i+1, err)
		}
	}

	// Kill while jobs run. The check and the kill race (a job may end in
	// between), so what counts is what the database holds after the kill:
	// if no job was left running, the kill proved nothing; start and try
	// again while requests remain.
	st := b.conn(t)
	var orphans map[int64]int64 // job id -> its attempt when the process died
	for attempt := 0; len(orphans) == 0; attempt++ {
		if attempt == 5 {
			t.Fatal("no kill landed while a job was running; the test proves nothing (make the erase slower)")
		}
		deadline := time.Now().Add(60 * time.Second)
		for count(t, st, `SELECT count(*) FROM river_job WHERE state = 'running'`) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no job running within 60s (%d requests open)", openRequests(t, b))
			}
			time.Sleep(2 * time.Millisecond)
		}
		srv.kill()
		orphans = runningJobs(t, st)
		if len(orphans) == 0 {
			srv.start()
		}
	}
	open := openRequests(t, b)
	t.Logf("killed with %d jobs running and %d of %d requests open", len(orphans), open, restartSubjects)

	restarted := time.Now()
	srv.start()
	// Ready means rescued: the restarted server answers /readyz only after
	// it has made every orphan available again, each with the rescue
	// recorded against the attempt the kill interrupted. Without the rescue
	// at start they would still be running under the dead process.
	for id, attempt := range orphans {
		rescues := 0
		for _, e := range jobErrors(t, b, id) {
			if strings.Contains(e.Error, restartRescueMark) && e.Attempt == attempt {
				rescues++
			}
		}
		if rescues != 1 {
			t.Fatalf("job %d (attempt %d when killed) carries %d rescues at start of that attempt, want 1: %+v", id, attempt, rescues, jobErrors(t, b, id))
		}
	}
	waitFor(t, restartBound, "every request to end after the restart", func() (bool, string) {
		n := openRequests(t, b)
		running := count(t, st, `SELECT count(*) FROM river_job WHERE state = 'running'`)
		return n == 0, fmt.Sprintf("%d requests open, %d jobs running", n, running)
	})
	t.Logf("all requests ended %s after the restart (a single node must recover within 30 s)", time.Since(restarted).Round(time.Millisecond))
	// Nothing waited for River's rescuer, the path that takes the job
	// timeout plus a minute: every job of every request ran on without it.
	for id := range allJobs(t, st) {
		for _, e := range jobErrors(t, b, id) {
			if strings.Contains(e.Error, riverRescueMark) {
				t.Errorf("job %d was rescued by River's rescuer after the timeout, not at the restart: %+v", id, e)
			}
		}
	}
	// Every orphan ran again after its rescue, and finished.
	for id, attempt := range orphans {
		var state string
		var now int64
		if err := st.QueryRow(fmt.Sprintf(`SELECT state, attempt FROM river_job WHERE id = %d`, id)).Scan(&state, &now); err != nil {
			t.Fatalf("job %d: %v", id, err)
		}
		if state != "completed" || now <= attempt {
			t.Errorf("job %d: %s at attempt %d, want completed after attempt %d", id, state, now, attempt)
		}
	}

	if n := count(t, st, `SELECT count(*) FROM requests WHERE status = 'completed'`); n != restartSubjects {
		t.Errorf("%d requests completed, want %d", n, restartSubjects)
	}
	if n := count(t, st, `SELECT count(DISTINCT request_id) FROM audit_events WHERE type = 'request.completed'`); n != restartSubjects {
		t.Errorf("request.completed events for %d requests, want %d", n, restartSubjects)
	}
	if n := count(t, shop.db, fmt.Sprintf(`SELECT count(*) FROM users WHERE id <= %d`, restartSubjects)); n != 0 {
		t.Errorf("%d subjects left in shop", n)
	}
	if n := count(t, shop.db, `SELECT count(*) FROM orders`); n != 5*20 {
		t.Errorf("%d orders left, want the 5 bystanders' 100", n)
	}
}

func openRequests(t *testing.T, b *backend) int64 {
	t.Helper()
	return count(t, b.conn(t), `SELECT count(*) FROM requests WHERE status NOT IN ('completed', 'failed', 'canceled')`)
}

// runningJobs returns the jobs River holds as running, with their attempts.
func runningJobs(t *testing.T, db *sql.DB) map[int64]int64 {
	t.Helper()
	return jobsWhere(t, db, `WHERE state = 'running'`)
}

// jobsWhere returns the jobs River holds that match where, with their
// attempts.
func jobsWhere(t *testing.T, db *sql.DB, where string) map[int64]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, `SELECT id, attempt FROM river_job `+where)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	jobs := map[int64]int64{}
	for rows.Next() {
		var id, attempt int64
		if err := rows.Scan(&id, &attempt); err != nil {
			t.Fatal(err)
		}
		jobs[id] = attempt
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return jobs
}

// allJobs returns every job River holds, with its attempt.
func allJobs(t *testing.T, db *sql.DB) map[int64]int64 {
	t.Helper()
	return jobsWhere(t, db, "")
}

// jobErrors returns the attempt errors River holds for a job.
func jobErrors(t *testing.T, b *backend, id int64) []struct {
	Attempt int64  `json:"attempt"`
	Error   string `json:"error"`
} {
	t.Helper()
	q := `SELECT coalesce(array_to_json(errors)::text, '[]') FROM river_job WHERE id = %d`
	if b.name == "sqlite" {
		q = `SELECT coalesce(json(errors), '[]') FROM river_job WHERE id = %d` // stored as SQLite JSONB
	}
	var text string
	if err := b.conn(t).QueryRow(fmt.Sprintf(q, id)).Scan(&text); err != nil {
		t.Fatalf("errors of job %d: %v", id, err)
	}
	var errs []struct {
		Attempt int64  `json:"attempt"`
		Error   string `json:"error"`
	}
	if err := json.Unmarshal([]byte(text), &errs); err != nil {
		t.Fatalf("errors of job %d: %v", id, err)
	}
	return errs
}
