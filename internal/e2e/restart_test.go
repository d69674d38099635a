package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// restartBound is how long after a restart the jobs a killed process left
// running may take to finish: a correctness bound, not a speed one. River's
// own rescue would leave them for job_timeout plus a minute (11 minutes
// here), so finishing within 4 minutes proves they resumed at start; the
// margin is for a loaded machine (on a quiet one they end within 20 s,
// which the log line below reports).
const restartBound = 4 * time.Minute

// TestRestartResumesOrphanedJobs kills the server with SIGKILL while 100
// requests are being erased and restarts it with production timeouts
// (job_timeout 10m, so River's own rescue would wait 11 minutes): the jobs
// the dead process left running are its own (SQLite allows one process;
// on PostgreSQL the restarted node has the same node id), so the restart
// resumes them at once and every request completes within restartBound.
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
	// Production timeouts: without the rescue at start, a job orphaned by
	// the kill would wait job_timeout + 1m = 11 minutes.
	short := "  job_timeout: 10s\n  rescue_after: 11s\n"
	if !strings.Contains(cfg, short) {
		t.Fatalf("the backend's config changed; update this test:\n%s", cfg)
	}
	cfg = strings.Replace(cfg, short, "  job_timeout: 10m\n", 1)
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
	orphans := int64(0)
	for attempt := 0; orphans == 0; attempt++ {
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
		orphans = count(t, st, `SELECT count(*) FROM river_job WHERE state = 'running'`)
		if orphans == 0 {
			srv.start()
		}
	}
	open := openRequests(t, b)
	t.Logf("killed with %d jobs running and %d of %d requests open", orphans, open, restartSubjects)

	restarted := time.Now()
	srv.start()
	waitFor(t, restartBound, "every request to end after the restart", func() (bool, string) {
		n := openRequests(t, b)
		running := count(t, st, `SELECT count(*) FROM river_job WHERE state = 'running'`)
		return n == 0, fmt.Sprintf("%d requests open, %d jobs running", n, running)
	})
	t.Logf("all requests ended %s after the restart", time.Since(restarted).Round(time.Millisecond))

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
