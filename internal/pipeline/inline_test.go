package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/store"
)

// rerunAfterKill submits a request for email to target "t", leaves it as
// a process killed between its two transactions would (killedAfterStart),
// lets killed do what the killed attempt did meanwhile, then starts the
// pipeline and returns the request once it completed and the queue is idle.
func rerunAfterKill(t *testing.T, st store.Store, target connector.Connector, killed func(id string)) *lethe.Request {
	t.Helper()
	cfg := testConfig()
	cfg.JobTimeout = time.Second
	cfg.RescueStuckJobsAfter = 2 * time.Second
	p := build(t, st, cfg, Target{"t", target})
	id := submit(t, st, p, email)
	killedAfterStart(t, st, p, id, "t")
	if killed != nil {
		killed(id)
	}
	startBuilt(t, p)
	r := waitDone(t, st, id, lethe.StatusCompleted)
	waitIdle(t, p)
	return r
}

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
		r := rerunAfterKill(t, st, target, nil)
		if task := taskOf(t, r, "t"); task.Attempts != 2 || task.State != lethe.TaskDone {
			t.Errorf("task: %s after %d attempts, want done after 2 (the killed one and the rerun)", task.State, task.Attempts)
		}
		if target.held(email) != 0 {
			t.Error("data left")
		}
		want := map[string]int{"request.running": 1, "task.running": 2, "task.done": 1, "request.verified": 1, "request.completed": 1, "identities.dropped": 1}
		if diff := cmp.Diff(want, auditTypes(t, st, r.ID)); diff != "" {
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

// ledgerTarget is a memTarget whose reports are full
// (connector.FullReporter) and which keeps a ledger of what every Erase
// call changed per request, failed and lost calls included
// (connector.Ledger), as the SQL connector does.
type ledgerTarget struct {
	*memTarget
	mu      sync.Mutex
	ledger  map[string]int64 // rows erased per request id
	changed int              // Changed calls
	// cutFirst: the first Erase call erases one row, then fails; its
	// report is lost (what a connection cut mid-call leaves).
	cutFirst bool
}

var (
	_ connector.Ledger       = (*ledgerTarget)(nil)
	_ connector.FullReporter = (*ledgerTarget)(nil)
)

func newLedgerTarget() *ledgerTarget {
	return &ledgerTarget{memTarget: newMemTarget(), ledger: map[string]int64{}}
}

func (l *ledgerTarget) FullReports() bool { return true }

// eraseOne erases one row of id for requestID, as a call whose report
// was lost would have.
func (l *ledgerTarget) eraseOne(requestID string, id lethe.Identity) {
	l.memTarget.mu.Lock()
	l.memTarget.rows[id]--
	l.memTarget.mu.Unlock()
	l.mu.Lock()
	l.ledger[requestID]++
	l.mu.Unlock()
}

func (l *ledgerTarget) Erase(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	l.mu.Lock()
	cut := l.cutFirst
	l.cutFirst = false
	l.mu.Unlock()
	if cut {
		l.memTarget.mu.Lock()
		l.memTarget.calls["erase"]++
		l.memTarget.mu.Unlock()
		l.eraseOne(s.RequestID, s.Identities[0])
		return lethe.Report{}, errors.New("connection reset")
	}
	rep, err := l.memTarget.Erase(ctx, s)
	l.mu.Lock()
	l.ledger[s.RequestID] += rep.Total()
	l.mu.Unlock()
	return rep, err
}

func (l *ledgerTarget) Changed(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changed++
	return lethe.Report{Items: []lethe.ReportItem{{Object: "rows", Action: lethe.ActionDelete, Rows: l.ledger[s.RequestID]}}}, nil
}

func (l *ledgerTarget) changedCalls() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// receiptRows is what request r's receipt says target changed, failing
// on a line marked a lower bound.
func receiptRows(t *testing.T, r *lethe.Request, target string) int64 {
	t.Helper()
	rc := audit.NewReceipt(r, r.Tasks, nil, nil)
	var n int64
	for _, tr := range rc.Targets {
		if tr.Target != target {
			continue
		}
		for _, it := range tr.Items {
			if it.LowerBound {
				t.Errorf("%s is marked a lower bound", it.Object)
			}
			n += it.Rows
		}
	}
	return n
}

// TestStraightFullReportsNoPlanNoLedgerRead: a target whose reports are
// full is neither planned nor asked for its ledger on the straight path;
// the first attempt's report is the task's, and the receipt's counts are
// exact.
func TestStraightFullReportsNoPlanNoLedgerRead(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		target := newLedgerTarget()
		target.put(email, 3)
		p := start(t, st, testConfig(), Target{"t", target})
		id := submit(t, st, p, email)
		r := waitDone(t, st, id, lethe.StatusCompleted)
		waitIdle(t, p)
		if n := target.count("plan"); n != 0 {
			t.Errorf("Plan called %d times; a target with full reports is not planned", n)
		}
		if n := target.changedCalls(); n != 0 {
			t.Errorf("Changed called %d times; the first attempt's report is what the ledger holds", n)
		}
		task := taskOf(t, r, "t")
		want := lethe.Report{Items: []lethe.ReportItem{{Object: "rows", Action: lethe.ActionDelete, Rows: 3}}}
		if diff := cmp.Diff(want, task.Report); diff != "" {
			t.Errorf("task report (-want +got):\n%s", diff)
		}
		if n := receiptRows(t, r, "t"); n != 3 {
			t.Errorf("receipt rows = %d, want 3", n)
		}
	})
}

// wantLedgerCounted checks request r after a first attempt on target "t"
// whose row went unreported (what: "cut", "killed"): a second attempt,
// the ledger read, no plan, and all 3 rows in the task and the receipt.
func wantLedgerCounted(t *testing.T, target *ledgerTarget, r *lethe.Request, what string) {
	t.Helper()
	task := taskOf(t, r, "t")
	if task.Attempts != 2 || target.changedCalls() == 0 {
		t.Errorf("task after %d attempts, %d ledger reads; want 2 attempts and the ledger read", task.Attempts, target.changedCalls())
	}
	if n := target.count("plan"); n != 0 {
		t.Errorf("a target whose reports are full was planned %d times; want never, retries included", n)
	}
	if n := receiptRows(t, r, "t"); n != 3 || task.Report.Total() != 3 {
		t.Errorf("receipt rows = %d, task rows %d; want 3: the %s attempt's row is in the ledger", n, task.Report.Total(), what)
	}
}

// TestFullReportsRetryReadsLedger: the first attempt erased a row and
// failed, its report lost; the retry's report alone would say 2, and the
// ledger, read because this is not a first attempt that succeeded, says 3.
func TestFullReportsRetryReadsLedger(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		target := newLedgerTarget()
		target.put(email, 3)
		target.cutFirst = true
		p := start(t, st, testConfig(), Target{"t", target})
		id := submit(t, st, p, email)
		r := waitDone(t, st, id, lethe.StatusCompleted)
		waitIdle(t, p)
		wantLedgerCounted(t, target, r, "cut")
	})
}

// TestFullReportsCrashRerunReadsLedger: the process died inside the first
// attempt after the target committed a row; the rerun erases the rest and
// reads the ledger, so the receipt counts every row.
func TestFullReportsCrashRerunReadsLedger(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		target := newLedgerTarget()
		target.put(email, 3)
		r := rerunAfterKill(t, st, target, func(id string) {
			target.eraseOne(id, email) // committed by the killed attempt
		})
		wantLedgerCounted(t, target, r, "killed")
		if target.held(email) != 0 {
			t.Error("data left")
		}
	})
}

// planFailTarget is a memTarget whose first Plan calls fail.
type planFailTarget struct {
	*memTarget
	fails int
}

func (f *planFailTarget) Plan(ctx context.Context, s connector.Subject) (lethe.Report, error) {
	f.memTarget.mu.Lock()
	fail := f.fails > 0
	if fail {
		f.fails--
		f.memTarget.calls["plan"]++
	}
	f.memTarget.mu.Unlock()
	if fail {
		return lethe.Report{}, errors.New("plan: connection refused")
	}
	return f.memTarget.Plan(ctx, s)
}

// TestStraightPlanFailedLeftToEraseJob: a target that is planned (its
// reports are not full) and whose Plan fails on the straight path is left
// to its erase job, which plans again and erases; no attempt is counted
// before that job's.
func TestStraightPlanFailedLeftToEraseJob(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store) {
		target := &planFailTarget{memTarget: newMemTarget(), fails: 1}
		target.put(email, 2)
		p := start(t, st, testConfig(), Target{"t", target})
		id := submit(t, st, p, email)
		r := waitDone(t, st, id, lethe.StatusCompleted)
		waitIdle(t, p)
		if diff := cmp.Diff([]string{kindResolve, kindErase, kindVerify, kindFinish}, riverJobKinds(t, st)); diff != "" {
			t.Errorf("jobs (-want +got):\n%s", diff)
		}
		task := taskOf(t, r, "t")
		if task.Attempts != 1 || task.State != lethe.TaskDone || task.Report.Total() != 2 {
			t.Errorf("task: %s after %d attempts, %d rows; want done after 1 attempt (the erase job's), 2 rows", task.State, task.Attempts, task.Report.Total())
		}
		if target.count("plan") != 2 || target.count("erase") != 1 {
			t.Errorf("calls %v; want Plan twice (the straight path's, failed, and the erase job's) and one Erase", target.calls)
		}
	})
}
