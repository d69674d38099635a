package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/terminate"
)

// What operators do with failures. A failed request keeps its identities
// sealed (terminate keeps them for a failed end) until it is closed, so it
// can be re-driven: retried as a whole, one task at a time, or every
// failed task of one target at once after that target's outage; a task
// that cannot be erased may be skipped with a reason; and a request that
// will not be re-driven is closed, which drops its identities. Each action
// commits with its audit event (naming the operator) and with the job that
// carries the request on (Redrive), or not at all.

// stepUniqueStates are the states in which a step's job keeps a second one
// with the same args out: every state but the ended ones. A completed job
// must not: a re-driven request runs its steps again, and River would
// otherwise skip, say, its second verify for the first one's row.
var stepUniqueStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled,
}

// RetryRequest re-drives a failed request: every failed task goes back to
// pending with a fresh attempt budget (a request that failed in resolve
// resolves again) and the request runs again.
func (p *Pipeline) RetryRequest(ctx context.Context, id string, by lethe.Act) (*lethe.Request, error) {
	return p.act(ctx, id, func(tx store.Tx, req *lethe.Request) error {
		if !lethe.Redrivable(req.Status, req.Stage) {
			return notRedrivable(req)
		}
		if err := p.checkRedrive(ctx, tx, req); err != nil {
			return err
		}
		return p.reopen(ctx, tx, req, by, "")
	})
}

// RetryTask retries one failed task: of a failed request (which runs
// again), or of a request still running its other tasks.
func (p *Pipeline) RetryTask(ctx context.Context, id, target string, by lethe.Act) (*lethe.Request, error) {
	return p.act(ctx, id, func(tx store.Tx, req *lethe.Request) error {
		t, err := taskIn(ctx, tx, id, target)
		if err != nil {
			return err
		}
		if t.State != lethe.TaskFailed {
			return lethe.Errorf(lethe.ECONFLICT, "task on %q is %s; only a failed task can be retried", target, t.State)
		}
		return p.retryOne(ctx, tx, req, target, by)
	})
}

// retryOne retries the failed task on target of req, locked in tx.
func (p *Pipeline) retryOne(ctx context.Context, tx store.Tx, req *lethe.Request, target string, by lethe.Act) error {
	switch {
	case lethe.Redrivable(req.Status, req.Stage):
		if err := p.checkRedrive(ctx, tx, req); err != nil {
			return err
		}
		return p.reopen(ctx, tx, req, by, target)
	case req.Status == lethe.StatusRunning && req.Stage == lethe.StageErase:
		ok, err := p.retryTaskRow(ctx, tx, req.ID, target, by)
		if err != nil || !ok {
			return err
		}
		// Its own erase job, not unique: the task's first one sits
		// completed in River's table and would swallow a unique insert.
		return p.eng.insertTx(ctx, tx, []river.InsertManyParams{wakeEraseJob(req.ID, target)})
	default:
		return lethe.Errorf(lethe.ECONFLICT, "deletion request is %s at %s; a task can be retried once the request has failed, or while it erases", req.Status, req.Stage)
	}
}

func notRedrivable(req *lethe.Request) error {
	if req.Status == lethe.StatusFailed {
		return lethe.Errorf(lethe.ECONFLICT, "deletion request was closed for good; it cannot be re-driven")
	}
	return lethe.Errorf(lethe.ECONFLICT, "deletion request is %s; only a failed request can be re-driven", req.Status)
}

func taskIn(ctx context.Context, tx store.Tx, id, target string) (lethe.Task, error) {
	tasks, err := tx.ListTasks(ctx, id)
	if err != nil {
		return lethe.Task{}, err
	}
	for _, t := range tasks {
		if t.Target == target {
			return t, nil
		}
	}
	return lethe.Task{}, lethe.Errorf(lethe.ENOTFOUND, "deletion request has no task on target %q", target)
}

// checkRedrive refuses to re-drive a request under a legal hold, or whose
// subject has a newer open request of the same client (two open requests
// for one subject would erase it twice, and the store refuses them).
func (p *Pipeline) checkRedrive(ctx context.Context, tx store.Tx, req *lethe.Request) error {
	holds, err := tx.ListHolds(ctx, req.ID)
	if err != nil {
		return err
	}
	for _, h := range active(holds) {
		if h.Reason == lethe.HoldLegal {
			return lethe.Errorf(lethe.ECONFLICT, "deletion request is under a legal hold; release it first")
		}
	}
	other, err := tx.FindOpenRequest(ctx, req.ClientID, req.SubjectKey)
	if err == nil && other.ID != req.ID {
		return lethe.Errorf(lethe.ECONFLICT, "the same subject has an open request %s; re-drive this one once it has ended, or close this one", other.ID)
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// reopen puts a failed request back to work: its failed tasks (only the
// one on target, when set) back to pending, the request back to running
// at erase (or to received at resolve when it failed there), and the job
// that carries it on queued.
func (p *Pipeline) reopen(ctx context.Context, tx store.Tx, req *lethe.Request, by lethe.Act, target string) error {
	details := map[string]string{}
	to, stage := lethe.StatusRunning, lethe.StageErase
	if req.StartedAt.IsZero() {
		// It failed in resolve: nothing was erased and its tasks only
		// said so. Resolve runs again and makes new ones.
		if err := tx.DeleteTasks(ctx, req.ID); err != nil {
			return err
		}
		to, stage = lethe.StatusReceived, lethe.StageResolve
		details["from"] = string(lethe.StageResolve)
	} else {
		tasks, err := tx.ListTasks(ctx, req.ID)
		if err != nil {
			return err
		}
		var retried []string
		for _, t := range tasks {
			if t.State != lethe.TaskFailed || (target != "" && t.Target != target) {
				continue
			}
			ok, err := p.retryTaskRow(ctx, tx, req.ID, t.Target, by)
			if err != nil {
				return err
			}
			if ok {
				retried = append(retried, t.Target)
			}
		}
		details["targets"] = strings.Join(retried, ",")
		if len(retried) == 0 {
			// Nothing failed is left (the last failed task was skipped):
			// what remains is to verify and finish.
			stage = lethe.StageVerify
		}
	}
	ok, err := tx.ReopenRequest(ctx, store.UpdateRequestStateParams{
		ID: req.ID, From: []lethe.Status{lethe.StatusFailed}, FromStage: []lethe.Stage{lethe.StageDone},
		To: to, ToStage: stage, At: p.now(),
	})
	if err != nil {
		return err
	}
	if !ok {
		return lethe.Errorf(lethe.ECONFLICT, "deletion request changed meanwhile; read it again")
	}
	if err := p.actionAudit(ctx, tx, req.ID, by, lethe.EventRequestRetried, details); err != nil {
		return err
	}
	if err := p.Redrive(ctx, tx, req.ID); err != nil {
		return err
	}
	return p.statusMoved(ctx, tx, req.ID)
}

// retryTaskRow puts one failed task back to pending, with its audit event.
func (p *Pipeline) retryTaskRow(ctx context.Context, tx store.Tx, id, target string, by lethe.Act) (bool, error) {
	before, ok, err := tx.RetryTask(ctx, id, target, p.now())
	if err != nil || !ok {
		return false, err
	}
	details := map[string]string{"target": target, "previous_attempts": strconv.Itoa(before.Attempts)}
	if by.Note != "" {
		details["bulk_retry"] = by.Note
	}
	return true, p.actionAudit(ctx, tx, id, by, lethe.EventTaskRetried, details)
}

// SkipTask ends a task that is not done as skipped, with the operator's
// reason (By.Note, required), which the receipt states. A failed request
// left with no failed task then verifies and finishes; a running one
// goes on as if the task had ended.
func (p *Pipeline) SkipTask(ctx context.Context, id, target string, by lethe.Act) (*lethe.Request, error) {
	if strings.TrimSpace(by.Note) == "" {
		return nil, lethe.Errorf(lethe.EINVALID, "reason is required to skip a task")
	}
	return p.act(ctx, id, func(tx store.Tx, req *lethe.Request) error {
		t, err := taskIn(ctx, tx, id, target)
		if err != nil {
			return err
		}
		redrivable := lethe.Redrivable(req.Status, req.Stage)
		if !redrivable && !(req.Status == lethe.StatusRunning && req.Stage == lethe.StageErase) {
			return lethe.Errorf(lethe.ECONFLICT, "deletion request is %s at %s; a task can be skipped once the request has failed, or while it erases", req.Status, req.Stage)
		}
		if t.State == lethe.TaskDone || t.State == lethe.TaskSkipped {
			return lethe.Errorf(lethe.ECONFLICT, "task on %q is %s; it cannot be skipped", target, t.State)
		}
		if err := p.checkRequestNote(ctx, tx, "reason", by.Note, id); err != nil {
			return err
		}
		who := by.ActorID
		if who == "" {
			who = string(by.Actor)
		}
		ok, err := tx.SkipTask(ctx, id, target, "skipped by "+who+": "+by.Note, p.now())
		if err != nil {
			return err
		}
		if !ok {
			return lethe.Errorf(lethe.ECONFLICT, "task on %q changed meanwhile; read it again", target)
		}
		if err := p.actionAudit(ctx, tx, id, by, lethe.EventTaskSkipped, map[string]string{
			"target": target, "reason": by.Note, "was": string(t.State),
		}); err != nil {
			return err
		}
		if redrivable {
			tasks, err := tx.ListTasks(ctx, id)
			if err != nil {
				return err
			}
			for _, t := range tasks {
				if t.State == lethe.TaskFailed {
					return nil // still failed: retry or close it
				}
			}
			if err := p.checkRedrive(ctx, tx, req); err != nil {
				return err
			}
			return p.reopen(ctx, tx, req, lethe.Act{Actor: by.Actor, ActorID: by.ActorID}, "")
		}
		return p.Redrive(ctx, tx, id)
	})
}

// CloseRequest closes a failed request for good: it stays failed, its
// identities are dropped, and nothing can re-drive it any more.
func (p *Pipeline) CloseRequest(ctx context.Context, id string, by lethe.Act) (*lethe.Request, error) {
	return p.act(ctx, id, func(tx store.Tx, req *lethe.Request) error {
		if !lethe.Redrivable(req.Status, req.Stage) {
			return notRedrivable(req)
		}
		details := map[string]string{}
		if by.Note != "" {
			if err := p.checkRequestNote(ctx, tx, "note", by.Note, id); err != nil {
				return err
			}
			details["note"] = by.Note
		}
		tasks, err := tx.ListTasks(ctx, id)
		if err != nil {
			return err
		}
		ok, err := p.end.Close(ctx, tx, req, tasks, terminate.Closing{Actor: by.Actor, ActorID: by.ActorID, At: p.now(), Details: details})
		if err != nil {
			return err
		}
		if !ok {
			return lethe.Errorf(lethe.ECONFLICT, "deletion request changed meanwhile; read it again")
		}
		return nil
	})
}

// Bulk retry: "retry every failed task of this target" after the target's
// outage. The ask is stored with its cutoff and worked by a job, in one
// transaction per task that both retries the task and marks it taken up,
// so a process that dies half way resumes where it stopped and retries
// each task once.

type bulkRetryArgs struct {
	ID string `json:"id"`
}

func (bulkRetryArgs) Kind() string { return "lethe.bulk_retry" }

type bulkRetryWorker struct {
	river.WorkerDefaults[bulkRetryArgs]
	p *Pipeline
}

func (w *bulkRetryWorker) Work(ctx context.Context, job *river.Job[bulkRetryArgs]) error {
	return w.p.runBulkRetry(ctx, job.Args.ID)
}

// bulkBatch bounds one query of a bulk retry.
const bulkBatch = 100

// RetryTarget asks for every task on target that has failed by now to be
// retried, and returns the bulk retry (GetBulkRetry follows it).
func (p *Pipeline) RetryTarget(ctx context.Context, target string, by lethe.Act) (store.BulkRetry, error) {
	if _, ok := p.byName[target]; !ok {
		return store.BulkRetry{}, lethe.Errorf(lethe.ENOTFOUND, "no target is named %q", target)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return store.BulkRetry{}, fmt.Errorf("pipeline: bulk retry id: %w", err)
	}
	if by.Actor == "" {
		by.Actor = lethe.ActorSystem
	}
	now := p.now().UTC().Truncate(time.Microsecond)
	b := store.BulkRetry{ID: id.String(), Target: target, Cutoff: now, Actor: by.Actor, ActorID: by.ActorID, CreatedAt: now}
	err = p.st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.CreateBulkRetry(ctx, b); err != nil {
			return err
		}
		return p.eng.insertTx(ctx, tx, []river.InsertManyParams{{
			Args: bulkRetryArgs{ID: b.ID}, InsertOpts: &river.InsertOpts{MaxAttempts: riverMaxAttempts, Priority: priorityWork},
		}})
	})
	if err != nil {
		return store.BulkRetry{}, fmt.Errorf("pipeline: bulk retry: %w", err)
	}
	return b, nil
}

// GetBulkRetry returns a bulk retry with how many tasks it has taken up.
func (p *Pipeline) GetBulkRetry(ctx context.Context, id string) (store.BulkRetry, error) {
	b, err := p.st.GetBulkRetry(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return b, lethe.Errorf(lethe.ENOTFOUND, "bulk retry not found")
	}
	return b, err
}

// runBulkRetry works a bulk retry to its end. Each task is taken up in a
// transaction of its own, marked in it; a task that cannot be retried
// (its request under a legal hold, or its subject with a newer open
// request) is marked too and left failed, with the reason in the log.
func (p *Pipeline) runBulkRetry(ctx context.Context, id string) error {
	b, err := p.st.GetBulkRetry(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bulk retry: %w", err)
	}
	if !b.FinishedAt.IsZero() {
		return nil
	}
	by := lethe.Act{Actor: b.Actor, ActorID: b.ActorID, Note: b.ID}
	for {
		tasks, err := p.st.FailedTasksOf(ctx, b, bulkBatch)
		if err != nil {
			return fmt.Errorf("bulk retry: %w", err)
		}
		for _, t := range tasks {
			var refused error
			err := p.st.InTx(ctx, func(tx store.Tx) error {
				fresh, err := tx.MarkBulkRetried(ctx, b.ID, t.RequestID, t.Target)
				if err != nil || !fresh {
					return err
				}
				req, err := tx.LockRequest(ctx, t.RequestID)
				if errors.Is(err, store.ErrNotFound) {
					return nil
				} else if err != nil {
					return err
				}
				cur, err := taskIn(ctx, tx, t.RequestID, t.Target)
				if err != nil || cur.State != lethe.TaskFailed {
					return ignoreNotFound(err)
				}
				err = p.retryOne(ctx, tx, req, t.Target, by)
				var le *lethe.Error
				if errors.As(err, &le) {
					refused = le // leave it failed; the mark stays
					return nil
				}
				return err
			})
			if err != nil {
				return fmt.Errorf("bulk retry: %w", err)
			}
			if refused != nil {
				p.log.Warn("pipeline: bulk retry left a task failed", slog.String("bulk_retry", b.ID),
					slog.String("request_id", t.RequestID), slog.String("target", t.Target), slog.String("reason", refused.Error()))
			}
			if p.afterBulkTask != nil {
				if err := p.afterBulkTask(); err != nil {
					return err
				}
			}
		}
		if len(tasks) < bulkBatch {
			break
		}
	}
	if err := p.st.FinishBulkRetry(ctx, b.ID, p.now()); err != nil {
		return fmt.Errorf("bulk retry: %w", err)
	}
	return nil
}

func ignoreNotFound(err error) error {
	var le *lethe.Error
	if errors.As(err, &le) && le.Code == lethe.ENOTFOUND {
		return nil
	}
	return err
}
