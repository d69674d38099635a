package pipeline

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
)

// TestKilledBetweenStartAndEnd leaves what a process killed between a
// request's two transactions leaves: the request running at stage erase,
// its first attempt counted, its own job still "running" under the dead
// process. The job's rerun must carry the request on, erasing once more
// (Erase is idempotent) and completing it once.
func TestKilledBetweenStartAndEnd(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		target := newMemTarget()
		target.put(email, 2)
		cfg := testConfig()
		cfg.JobTimeout = time.Second
		cfg.RescueStuckJobsAfter = 2 * time.Second
		p := build(t, st, cfg, Target{"t", target})
		id := submit(t, st, p, email)
		killedAfterStart(t, st, p, id, "t")
		startBuilt(t, p)
		r := waitDone(t, st, id, lethe.StatusCompleted)
		waitIdle(t, p)
		if task := taskOf(t, r, "t"); task.Attempts != 2 || task.State != lethe.TaskDone {
			t.Errorf("task: %s after %d attempts, want done after 2 (the killed one and the rerun)", task.State, task.Attempts)
		}
		if target.held(email) != 0 {
			t.Error("data left")
		}
		want := map[string]int{"request.running": 1, "task.running": 2, "task.done": 1, "request.verified": 1, "request.completed": 1, "identities.dropped": 1}
		if diff := cmp.Diff(want, auditTypes(t, st, id)); diff != "" {
			t.Errorf("audit events (-want +got):\n%s", diff)
		}
	})
}

// TestStraightThroughIsOneJob: a request on targets that answer at once
// is one job, completed once, and nothing else is queued for it.
func TestStraightThroughIsOneJob(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		a, b := newMemTarget(), newMemTarget()
		a.put(email, 1)
		b.put(email, 3)
		p := start(t, st, testConfig(), Target{"a", a}, Target{"b", b})
		id := submit(t, st, p, email)
		waitDone(t, st, id, lethe.StatusCompleted)
		waitIdle(t, p)
		if diff := cmp.Diff([]string{kindResolve}, riverJobKinds(t, st)); diff != "" {
			t.Errorf("jobs (-want +got):\n%s", diff)
		}
		want := map[string]int{"request.running": 1, "task.running": 2, "task.done": 2, "request.verified": 1, "request.completed": 1, "identities.dropped": 1}
		if diff := cmp.Diff(want, auditTypes(t, st, id)); diff != "" {
			t.Errorf("audit events (-want +got):\n%s", diff)
		}
		if a.count("erase") != 1 || b.count("erase") != 1 || a.count("verify") != 1 || b.count("verify") != 1 {
			t.Errorf("calls: a %v, b %v; want one Erase and one Verify each", a.calls, b.calls)
		}
	})
}

// killedAfterStart leaves request id as a process killed after its
// request's first transaction leaves it: running at stage erase, a first
// attempt counted on each target's task, and every job in River's table
// "running" under a dead process.
func killedAfterStart(t *testing.T, st store.Store, p *Pipeline, id string, targets ...string) {
	t.Helper()
	ctx := context.Background()
	err := st.InTx(ctx, func(tx store.Tx) error {
		ok, err := tx.UpdateRequestState(ctx, store.UpdateRequestStateParams{
			ID: id, From: []lethe.Status{lethe.StatusReceived}, FromStage: []lethe.Stage{lethe.StageResolve},
			To: lethe.StatusRunning, ToStage: lethe.StageErase, At: time.Now(),
		})
		if err != nil || !ok {
			return fmt.Errorf("move request: %v %v", ok, err)
		}
		if err := tx.CreateTasks(ctx, id, targets, time.Now()); err != nil {
			return err
		}
		events := []*lethe.AuditEvent{p.event(id, lethe.EventRequestRunning, nil)}
		for _, target := range targets {
			if _, ok, err := tx.StartTaskAttempt(ctx, id, target, time.Now()); err != nil || !ok {
				return fmt.Errorf("start attempt: %v %v", ok, err)
			}
			events = append(events, p.event(id, lethe.EventTaskRunning, map[string]string{"target": target, "attempt": "1"}))
		}
		return p.appendAudit(ctx, tx, events...)
	})
	if err != nil {
		t.Fatal(err)
	}
	execSQL(t, st,
		`UPDATE river_job SET state = 'running', attempt = 1, attempted_at = '2000-01-01 00:00:00.000', attempted_by = json('["dead-process"]')`,
		`UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now() - interval '1 hour', attempted_by = '{dead-process}'`)
}
