package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/terminate"
)

// A request's own job does all of it when its targets answer at once: it
// resolves, then in ONE transaction (start) marks the request running,
// creates its tasks, stores the plan of each target that is planned and
// counts each first attempt; it erases and verifies on every target in
// parallel; and in ONE more (end) it records every attempt's report, ends
// the tasks and the request, and completes itself. Two commits per request
// instead of one per step and target, each still a compare-and-set on the
// request's (status, stage) with its audit events.
//
// Whatever does not go straight through is handed, in the same
// transactions, to the jobs of the stage it is at, which take it from
// there as they always did: a target that confirms asynchronously (it may
// answer Pending and must snooze without holding this worker), one whose
// Plan failed, an attempt that failed and is retried after a backoff,
// a verification that did not come back clean. Only the unfinished is
// redone: every task's progress is in its row.
//
// A crash between the two transactions leaves the request running at
// stage erase with its attempts counted; River reruns this job, which then
// queues the stage's jobs for the tasks still open (carryOn).

// straight is one target erased within the request's own job.
type straight struct {
	target string
	conn   connector.Connector
	plan   lethe.Report
	planOK bool
	// planned: Plan was called (and its plan is stored). A connector whose
	// Erase reports are full (connector.FullReporter) is not planned: its
	// plan would add nothing to the task's report.
	planned bool
	task    lethe.Task // after the attempt was counted
	report  lethe.Report
	err     error // Erase's, unredacted
	ledger  *lethe.Report
	verify  error
	took    time.Duration
}

// answersAtOnce reports whether a connector erases within its call: one
// that can be confirmed later (a callback, a deadline to confirm by) may
// answer Pending, and waiting for it belongs to its own snoozing job.
func answersAtOnce(c connector.Connector) bool {
	if _, ok := c.(connector.Completer); ok {
		return false
	}
	if _, ok := c.(connector.Deadliner); ok {
		return false
	}
	return true
}

// startErase runs everything of a resolved request after resolve: the
// start transaction, the erasure and verification on the targets that
// answer at once, and the end transaction.
// callback says whether the request, as read before resolve, has a
// callback URL: its status event is stored only then.
func (p *Pipeline) startErase(ctx, bctx context.Context, job *rivertype.JobRow, requestID string, res resolveResult, given int, callback bool) error {
	linked := res.identities[given:]
	ids := res.identities
	subject := connector.Subject{RequestID: requestID, Identities: ids}

	names := make([]string, len(p.targets))
	var now []*straight
	var queued []river.InsertManyParams
	for i, t := range p.targets {
		names[i] = t.Name
		if len(ids) > 0 && answersAtOnce(t.Conn) {
			now = append(now, &straight{target: t.Name, conn: t.Conn})
		} else {
			queued = append(queued, eraseJob(requestID, t.Name))
		}
	}
	// The plan is taken before the first attempt (it orders the report's
	// lines, and keeps the objects no attempt reported); a target whose
	// Plan fails is left to its erase job, which records that attempt as
	// one that changed nothing. A target whose every Erase report already
	// lists every object is not planned (connector.FullReporter).
	parallel(len(now), func(i int) {
		s := now[i]
		if connector.FullReports(s.conn) {
			s.planOK = true
			return
		}
		plan, err := call(p.log, s.target, func() (lethe.Report, error) { return s.conn.Plan(ctx, subject) })
		s.plan, s.planOK, s.planned = plan, err == nil, true
	})
	kept := now[:0]
	for _, s := range now {
		if s.planOK {
			kept = append(kept, s)
		} else {
			queued = append(queued, eraseJob(requestID, s.target))
		}
	}
	now = kept

	stage := lethe.StageErase
	if len(names) == 0 {
		// Nothing to erase: verify and finish still run, so a request ends
		// the same way (and with the same audit trail) with or without
		// targets.
		stage = lethe.StageVerify
		queued = append(queued, verifyJob(requestID))
	}
	started := false
	err := p.starts.inTx(bctx, requestID, nil, func(tx store.Tx) error {
		started = false
		ok, err := tx.UpdateRequestState(bctx, store.UpdateRequestStateParams{
			ID: requestID, From: resolveFrom, FromStage: []lethe.Stage{lethe.StageResolve},
			To: lethe.StatusRunning, ToStage: stage, At: p.now(), Reach: res.reach,
		})
		if err != nil || !ok {
			return err
		}
		if len(linked) > 0 {
			if err := tx.AddLinkedIdentities(bctx, requestID, linked); err != nil {
				return err
			}
		}
		if err := tx.CreateTasks(bctx, requestID, names, p.now()); err != nil {
			return err
		}
		if err := p.eng.insertTx(bctx, tx, queued); err != nil {
			return err
		}
		details := reachDetails(res.reach)
		details["targets"] = strconv.Itoa(len(names))
		details["linked_identities"] = strconv.Itoa(len(linked))
		details["resolve_rounds"] = strconv.Itoa(res.rounds)
		if res.capped {
			details["resolve_capped"] = "true"
		}
		events := []*lethe.AuditEvent{p.event(requestID, lethe.EventRequestRunning, details)}
		for _, s := range now {
			if s.planned {
				if _, err := tx.SetTaskPlan(bctx, requestID, s.target, s.plan, p.now()); err != nil {
					return err
				}
			}
			task, ok, err := tx.StartTaskAttempt(bctx, requestID, s.target, p.now())
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("task %s of a request just resolved has ended", s.target)
			}
			s.task = task
			events = append(events, p.event(requestID, lethe.EventTaskRunning, map[string]string{
				"target": s.target, "attempt": strconv.Itoa(task.Attempts),
			}))
		}
		if err := p.appendAudit(bctx, tx, events...); err != nil {
			return err
		}
		started = true
		if !callback {
			return nil // the URL only ever goes away (minimisation)
		}
		return p.statusMoved(bctx, tx, requestID)
	})
	if err != nil {
		return fmt.Errorf("resolve: %w", err)
	}
	if !started {
		return nil // another job resolved it, or it was canceled
	}
	if len(now) == 0 {
		return nil // every target is left to its own job
	}

	parallel(len(now), func(i int) {
		s := now[i]
		began := time.Now()
		if b := p.batchers[s.target]; b != nil {
			s.report, s.err = b.erase(ctx, subject)
		} else {
			s.report, s.err = call(p.log, s.target, func() (lethe.Report, error) { return s.conn.Erase(ctx, subject) })
		}
		s.took = time.Since(began)
		if s.err != nil {
			return
		}
		// The first attempt, one call that returned no error: a target
		// whose reports are full reports in it what its ledger holds, and
		// the end transaction's tally of this one report is the task's
		// report (should another job of the request have recorded an
		// attempt meanwhile, the tally sums both). A retry or a rerun
		// after a crash reads the ledger (measure).
		if s.task.Attempts == 1 && connector.FullReports(s.conn) {
			return
		}
		if l, ok := s.conn.(connector.Ledger); ok {
			rep, err := call(p.log, s.target, func() (lethe.Report, error) { return l.Changed(bctx, subject) })
			if err == nil {
				s.ledger = &rep
			} else {
				p.log.Warn("pipeline: read the target's ledger; reporting what lethe recorded", slog.String("request_id", requestID),
					slog.String("target", s.target), slog.String("error", redact(err, ids)))
			}
		}
	})
	// Verification reads every target again once all of them are done;
	// with any target still open, verify's own job does it later.
	clean := len(queued) == 0
	for _, s := range now {
		clean = clean && s.err == nil
	}
	verified := clean
	if clean {
		parallel(len(now), func(i int) {
			s := now[i]
			s.verify = p.verifyTarget(ctx, s.target, s.conn, subject)
		})
		for _, s := range now {
			clean = clean && s.verify == nil
		}
	}
	return p.endStraight(bctx, ctx, job, requestID, ids, now, verified, clean)
}

// endStraight is the end transaction of startErase: every attempt's report
// recorded, the tasks that ended ended, the others handed to their erase
// jobs, and the request finished when every target was erased and
// verified clean (else moved on as the last task's end always does).
func (p *Pipeline) endStraight(ctx, jctx context.Context, job *rivertype.JobRow, requestID string, ids []lethe.Identity, now []*straight, verified, clean bool) error {
	type ended struct {
		s     *straight
		state lethe.TaskState
		msg   string
	}
	var ends []ended
	var finished lethe.Status
	_, err := p.commitIn(ctx, p.ends, requestID, job, "erase", func(tx store.Tx) (bool, error) {
		ends, finished = nil, ""
		req, err := tx.LockRequest(ctx, requestID)
		if err != nil {
			return false, err
		}
		var events []*lethe.AuditEvent
		var next []river.InsertManyParams
		for _, s := range now {
			tally, err := tx.AddTaskProgress(ctx, requestID, s.target, s.report, p.now())
			if err != nil {
				return false, err
			}
			report := settle(tally, s.task.Attempts)
			if s.ledger != nil {
				report = *s.ledger
			}
			state, msg := lethe.TaskDone, ""
			if s.err != nil {
				msg = redact(s.err, ids)
				if connector.IsPending(s.err) || p.interrupted(jctx) || (!connector.IsPermanent(s.err) && s.task.Attempts < p.cfg.MaxAttempts) {
					// Retried by its erase job, after a backoff as River
					// would have waited.
					if !connector.IsPending(s.err) {
						if err := tx.RecordTaskError(ctx, requestID, s.target, msg, p.now()); err != nil {
							return false, err
						}
					}
					next = append(next, eraseRetryJob(requestID, s.target, p.retryPolicy().delay(s.task.Attempts)))
					continue
				}
				state = lethe.TaskFailed
			}
			ok, err := tx.FinishTask(ctx, store.FinishTaskParams{
				RequestID: requestID, Target: s.target, State: state, Report: report, LastError: msg, At: p.now(),
			})
			if err != nil {
				return false, err
			}
			if !ok {
				continue // another job ended it first
			}
			details := map[string]string{
				"target":   s.target,
				"attempts": strconv.Itoa(s.task.Attempts),
				"rows":     strconv.FormatInt(report.Total(), 10),
			}
			if msg != "" {
				details["error"] = msg
			}
			events = append(events, p.event(requestID, lethe.TaskEvent(state), details))
			ends = append(ends, ended{s, state, msg})
		}
		if err := p.eng.insertTx(ctx, tx, next); err != nil {
			return false, err
		}
		if req.Status != lethe.StatusRunning || req.Stage != lethe.StageErase {
			return true, p.appendAudit(ctx, tx, events...)
		}
		if clean {
			tasks, err := tx.ListTasks(ctx, requestID)
			if err != nil {
				return false, err
			}
			if allEndedWell(tasks) {
				verified := 0
				for _, t := range tasks {
					if t.State == lethe.TaskDone {
						verified++
					}
				}
				events = append(events, p.event(requestID, lethe.EventRequestVerified, map[string]string{
					"verified": strconv.Itoa(verified), "residue": "0",
				}))
				if err := p.appendAudit(ctx, tx, events...); err != nil {
					return false, err
				}
				status, ok, err := p.finishTx(ctx, tx, req, tasks)
				if ok {
					finished = status
				}
				return ok, err
			}
		}
		if err := p.appendAudit(ctx, tx, events...); err != nil {
			return false, err
		}
		verify := verifyJob(requestID)
		if verified && !p.interrupted(jctx) {
			// Verified once already, and not clean: verify's job goes on
			// from that attempt, after the backoff of a retry.
			verify = verifyRetryJob(requestID, 1, p.retryPolicy().delay(1))
		}
		return true, p.fanIn(ctx, tx, requestID, verify)
	})
	if err != nil {
		return err
	}
	for _, e := range ends {
		if e.state == lethe.TaskFailed {
			p.log.Warn("pipeline: task failed", slog.String("request_id", requestID), slog.String("target", e.s.target),
				slog.Int("attempts", e.s.task.Attempts), slog.String("error", e.msg))
		}
		p.obs.TaskFinished(e.s.target, e.state, e.s.task.Attempts, e.s.took)
	}
	if finished != "" {
		p.log.Info("pipeline: request finished", slog.String("request_id", requestID), slog.String("status", string(finished)))
		p.obs.RequestFinished(finished)
	}
	return nil
}

func allEndedWell(tasks []lethe.Task) bool {
	for _, t := range tasks {
		if t.State != lethe.TaskDone && t.State != lethe.TaskSkipped {
			return false
		}
	}
	return true
}

// eraseRetryJob is a task's erase job, to run after wait.
func eraseRetryJob(requestID, target string, wait time.Duration) river.InsertManyParams {
	j := eraseJob(requestID, target)
	opts := *j.InsertOpts
	opts.ScheduledAt = time.Now().Add(wait)
	j.InsertOpts = &opts
	return j
}

// verifyRetryJob is a request's verify job after tried verifications,
// to run after wait.
func verifyRetryJob(requestID string, tried int, wait time.Duration) river.InsertManyParams {
	opts := *insertOpts(priorityClose)
	opts.ScheduledAt = time.Now().Add(wait)
	return river.InsertManyParams{Args: verifyArgs{RequestID: requestID, Tried: tried}, InsertOpts: &opts}
}

func (p *Pipeline) retryPolicy() retryPolicy {
	return retryPolicy{base: p.cfg.BackoffBase, max: p.cfg.BackoffMax}
}

// finishTx closes req, locked in tx, with its tasks: completed when every
// task is done or skipped, failed otherwise. ok is false when another
// transaction ended it first.
func (p *Pipeline) finishTx(ctx context.Context, tx store.Tx, req *lethe.Request, tasks []lethe.Task) (lethe.Status, bool, error) {
	to := lethe.StatusCompleted
	var failed int
	var rows int64
	for _, t := range tasks {
		if t.State != lethe.TaskDone && t.State != lethe.TaskSkipped {
			to = lethe.StatusFailed
			failed++
		}
		rows += t.Report.Total()
	}
	details := map[string]string{
		"tasks":  strconv.Itoa(len(tasks)),
		"failed": strconv.Itoa(failed),
		"rows":   strconv.FormatInt(rows, 10),
	}
	// Only a completed request can say what it found: a failed one may
	// have missed data in the target that failed.
	var outcome lethe.Outcome
	if to == lethe.StatusCompleted {
		outcome = lethe.MatchOutcome(tasks)
		details["outcome"] = string(outcome)
	}
	ok, err := p.Terminate(ctx, tx, req, tasks, terminate.Ending{To: to, At: p.now(), Details: details, Outcome: outcome})
	return to, ok, err
}
