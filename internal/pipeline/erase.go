package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/connector"
	"github.com/lethe-privacy/lethe/internal/store"
)

// erase runs one target's erasure of one request. The attempt is counted
// (and committed) before the connector is called, so GET shows attempts in
// flight and a crash mid-call still counts. Connectors' Erase is
// idempotent, so rerunning after a crash finishes what was left.
func (p *Pipeline) erase(ctx context.Context, job *rivertype.JobRow, requestID, target string) error {
	// The attempt and its audit event commit together, before the
	// connector is called, so the log shows every attempt even when the
	// process dies inside it.
	var (
		task lethe.Task
		ok   bool
	)
	err := p.st.InTx(ctx, func(tx store.Tx) error {
		if held, err := p.onHold(ctx, tx, requestID); held || err != nil {
			return err // held: no attempt until the hold is released
		}
		var err error
		task, ok, err = tx.StartTaskAttempt(ctx, requestID, target, p.now())
		if err != nil || !ok {
			return err
		}
		return p.audit(ctx, tx, requestID, lethe.EventTaskRunning, map[string]string{
			"target": target, "attempt": strconv.Itoa(task.Attempts),
		})
	})
	if errors.Is(err, store.ErrNotFound) {
		p.log.Warn("pipeline: erase job for a missing task", slog.String("request_id", requestID), slog.String("target", target))
		return nil
	}
	if err != nil {
		return fmt.Errorf("erase %s: %w", target, err)
	}
	if !ok {
		return nil // the task already ended: a duplicate job
	}
	bctx, cancel := detached(ctx)
	defer cancel()

	conn := p.byName[target]
	if conn == nil {
		// The target was removed from the data map after the task was
		// created; nothing will ever erase it, so say so.
		return p.endTask(bctx, job, taskEnd{requestID: requestID, target: target, state: lethe.TaskFailed,
			msg: "target is no longer configured", attempts: task.Attempts})
	}
	ids, err := p.st.RequestIdentities(ctx, requestID)
	if err != nil {
		return fmt.Errorf("erase %s: %w", target, err)
	}
	if len(ids) == 0 {
		// Every connector finds nothing for nobody, so an erase (and a
		// verify) without identities would succeed having changed
		// nothing: a completed request with the subject's rows all there.
		return p.endTask(bctx, job, taskEnd{requestID: requestID, target: target, state: lethe.TaskFailed,
			msg: errNoIdentities, attempts: task.Attempts})
	}

	subject := connector.Subject{RequestID: requestID, Identities: ids}
	// A target that confirms asynchronously gets its checkpoint and
	// callback token back, or its task ends on a confirmation it sent.
	if ended, err := p.resumeWait(ctx, bctx, job, task, conn, &subject); ended {
		return err
	}
	began := time.Now()
	// report is the task's total so far (see measure), not this attempt's
	// alone.
	at, err := p.eraseAttempt(ctx, bctx, task, conn, subject)
	if err != nil {
		return fmt.Errorf("erase %s: %w", target, err)
	}
	report, err := at.report, at.err
	took := time.Since(began)
	if err == nil {
		return p.endTask(bctx, job, taskEnd{requestID: requestID, target: target, state: lethe.TaskDone,
			report: report, attempts: task.Attempts, took: took})
	}
	if connector.IsPending(err) {
		return p.waitPending(bctx, job, task, conn, report, err, ids, took)
	}

	msg := redact(err, ids)
	if !p.interrupted(ctx) && (connector.IsPermanent(err) || task.Attempts >= p.cfg.MaxAttempts) {
		return p.endTask(bctx, job, taskEnd{requestID: requestID, target: target, state: lethe.TaskFailed,
			report: report, msg: msg, attempts: task.Attempts, took: took})
	}
	if err := p.st.RecordTaskError(bctx, requestID, target, msg, p.now()); err != nil {
		p.log.Error("pipeline: record task error", slog.String("request_id", requestID), slog.String("target", target), slog.String("error", err.Error()))
	}
	// The redacted message, never err itself: River stores and logs it.
	return fmt.Errorf("erase %s (attempt %d): %s", target, task.Attempts, msg)
}

// errNoIdentities is why a task fails when its request holds no identity
// to erase by (they were dropped while it was open).
const errNoIdentities = "the request holds no identities to erase by"

// taskEnd is how one task ended.
type taskEnd struct {
	requestID, target string
	state             lethe.TaskState // terminal
	report            lethe.Report
	msg               string // redacted error; "" when it ended well
	attempts          int
	took              time.Duration // the last attempt's connector call, for metrics
}

// endTask ends a task and, when it was the last open one, moves the request
// on to verify. The request row is locked first so that the last two tasks
// ending at the same moment cannot both see the other still open.
func (p *Pipeline) endTask(ctx context.Context, job *rivertype.JobRow, e taskEnd) error {
	ended, err := p.commit(ctx, job, "erase "+e.target, func(tx store.Tx) (bool, error) {
		req, err := tx.LockRequest(ctx, e.requestID)
		if err != nil {
			return false, err
		}
		ok, err := tx.FinishTask(ctx, store.FinishTaskParams{
			RequestID: e.requestID, Target: e.target, State: e.state, Report: e.report, LastError: e.msg, At: p.now(),
		})
		if err != nil || !ok {
			return false, err
		}
		details := map[string]string{
			"target":   e.target,
			"attempts": strconv.Itoa(e.attempts),
			"rows":     strconv.FormatInt(e.report.Total(), 10),
		}
		if e.msg != "" {
			details["error"] = e.msg
		}
		if err := p.audit(ctx, tx, e.requestID, lethe.TaskEvent(e.state), details); err != nil {
			return false, err
		}
		if req.Status == lethe.StatusRunning && req.Stage == lethe.StageErase {
			return true, p.fanIn(ctx, tx, e.requestID, verifyJob(e.requestID))
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if ended {
		if e.state == lethe.TaskFailed {
			p.log.Warn("pipeline: task failed", slog.String("request_id", e.requestID), slog.String("target", e.target),
				slog.Int("attempts", e.attempts), slog.String("error", e.msg))
		}
		p.obs.TaskFinished(e.target, e.state, e.attempts, e.took)
	}
	return nil
}

// fanIn queues verify (the job given) once no task of the request is left
// open.
func (p *Pipeline) fanIn(ctx context.Context, tx store.Tx, requestID string, verify river.InsertManyParams) error {
	open, err := tx.CountOpenTasks(ctx, requestID)
	if err != nil || open > 0 {
		return err
	}
	ok, err := p.advance(ctx, tx, requestID, lethe.StatusRunning, lethe.StageErase, lethe.StatusRunning, lethe.StageVerify)
	if err != nil || !ok {
		return err
	}
	return p.eng.insertTx(ctx, tx, []river.InsertManyParams{verify})
}

// settle is a task's report from its tally when its target keeps no
// ledger: per object the sum of what every attempt's report confirmed
// (store.AddReport), never the plan. A plan counts what was there, not what
// was changed: taking max(plan, sum), as lethe once did, turned a user
// delete that failed on every attempt into "users delete rows 1".
//
// The sum misses a batch the target committed just before lethe died, as
// that attempt never returned its report. Nothing lethe holds can restore
// it, so when fewer reports were recorded than attempts made, every line
// that claims a change is marked a lower bound instead of being filled in
// from the plan. Targets that can do better implement connector.Ledger.
//
// The plan gives the order (every object, in the connector's order, even
// those with no rows), and its retain lines stand until an attempt counts
// them; a zero plan line that no attempt reported is dropped once some
// attempt reported, so a planning placeholder ("counts are known once the
// service answers") does not outlive the answer.
func settle(t store.TaskTally, attempts int) lethe.Report {
	lost := t.Recorded < attempts
	out := lethe.Report{Items: make([]lethe.ReportItem, 0, len(t.Plan.Items)+len(t.Progress.Items))}
	type key struct {
		object string
		action lethe.Action
	}
	done := make(map[key]lethe.ReportItem, len(t.Progress.Items))
	for _, it := range t.Progress.Items {
		done[key{it.Object, it.Action}] = it
	}
	mark := func(it lethe.ReportItem) lethe.ReportItem {
		if lost && it.Action != lethe.ActionRetain {
			it.LowerBound = true
		}
		return it
	}
	for _, it := range t.Plan.Items {
		k := key{it.Object, it.Action}
		if d, ok := done[k]; ok {
			if it.Action == lethe.ActionRetain {
				d.Rows = max(it.Rows, d.Rows)
			}
			if d.Reason == "" {
				d.Reason = it.Reason
			}
			if d.Until.IsZero() {
				d.Until = it.Until
			}
			out.Items = append(out.Items, mark(d))
			delete(done, k)
			continue
		}
		if it.Rows == 0 && len(t.Progress.Items) > 0 {
			continue
		}
		if it.Action != lethe.ActionRetain {
			it.Rows = 0 // planned, not confirmed
		}
		out.Items = append(out.Items, mark(it))
	}
	for _, it := range t.Progress.Items {
		if _, ok := done[key{it.Object, it.Action}]; ok {
			out.Items = append(out.Items, mark(it))
		}
	}
	return out
}

// measure is a task's report so far: read back from the target's ledger
// when it keeps one (exact whatever crashed), otherwise settled from the
// tally. A ledger that cannot be read (the target is down) falls back to
// the tally, whose lines then say whether they may be short.
func (p *Pipeline) measure(ctx context.Context, conn connector.Connector, s connector.Subject, target string, tally store.TaskTally, attempts int) lethe.Report {
	if l, ok := conn.(connector.Ledger); ok {
		rep, err := call(p.log, target, func() (lethe.Report, error) { return l.Changed(ctx, s) })
		if err == nil {
			return rep
		}
		p.log.Warn("pipeline: read the target's ledger; reporting what lethe recorded", slog.String("request_id", s.RequestID),
			slog.String("target", target), slog.String("error", redact(err, s.Identities)))
	}
	return settle(tally, attempts)
}

// attempt is the outcome of one Erase attempt on a target.
type attempt struct {
	report lethe.Report // the task's report so far (measure), not this attempt's alone
	err    error        // the connector's error (Plan's or Erase's), unredacted
}

// eraseAttempt runs one Erase attempt with the bookkeeping behind the
// task's report: before the first attempt it takes and stores the
// connector's Plan (the order of the report's lines; never its counts),
// unless the connector's reports are full (connector.FullReporter: every
// report lists every object, so a plan would add nothing), and after every attempt, failed ones included, it adds the attempt's
// report to the task's progress in a transaction of its own (on bctx, so a
// job cut short still records what it did). Its error is the store's,
// which the caller returns for River to retry; the connector's is in the
// attempt.
func (p *Pipeline) eraseAttempt(ctx, bctx context.Context, task lethe.Task, conn connector.Connector, s connector.Subject) (attempt, error) {
	requestID, target := task.RequestID, task.Target
	tally, err := p.st.TaskTally(ctx, requestID, target)
	if err != nil {
		return attempt{}, err
	}
	if !tally.Planned && !connector.FullReports(conn) {
		plan, err := call(p.log, target, func() (lethe.Report, error) { return conn.Plan(ctx, s) })
		if err != nil {
			// Without a plan nothing is erased. The attempt is recorded
			// as one that changed nothing, which it did.
			after, serr := p.st.AddTaskProgress(bctx, requestID, target, lethe.Report{}, p.now())
			if serr != nil {
				return attempt{}, serr
			}
			return attempt{report: p.measure(bctx, conn, s, target, after, task.Attempts), err: err}, nil
		}
		if _, err := p.st.SetTaskPlan(ctx, requestID, target, plan, p.now()); err != nil {
			return attempt{}, err
		}
	}
	report, err := call(p.log, target, func() (lethe.Report, error) { return conn.Erase(ctx, s) })
	after, serr := p.st.AddTaskProgress(bctx, requestID, target, report, p.now())
	if serr != nil {
		// The attempt's rows are missing from the sum: a ledger restores
		// them, otherwise the task's lines will say they are lower bounds.
		return attempt{}, serr
	}
	return attempt{report: p.measure(bctx, conn, s, target, after, task.Attempts), err: err}, nil
}

// Targets that confirm asynchronously (see connector.Pending):
//
//   - Erase answers Pending: the task stays running, its checkpoint is
//     stored (sealed), the attempt is taken back, and the job snoozes
//     (River does not count a snooze as an attempt either). The next run
//     hands the checkpoint back in Subject.Checkpoint.
//   - The target may confirm by itself (CompleteTask); the confirmation
//     wakes the task's erase job, which ends the task with it.
//   - Past the task's deadline (ConfirmWithin from its first attempt) a
//     pending answer fails the task. A pending answer is never taken as
//     done.

// resumeWait prepares an erase attempt on a task that may be waiting for
// its target: it fills s's checkpoint and callback token, or, when the
// target has already confirmed by callback, ends the task with that
// confirmation and reports ended (err is then the job's result).
func (p *Pipeline) resumeWait(ctx, bctx context.Context, job *rivertype.JobRow, task lethe.Task, conn connector.Connector, s *connector.Subject) (ended bool, err error) {
	w, err := p.st.TaskWait(ctx, task.RequestID, task.Target)
	if err != nil {
		return true, fmt.Errorf("erase %s: %w", task.Target, err)
	}
	if c := w.Completion; c != nil {
		tally, err := p.st.TaskTally(bctx, task.RequestID, task.Target)
		if err != nil {
			return true, fmt.Errorf("erase %s: %w", task.Target, err)
		}
		state, msg := lethe.TaskDone, ""
		if c.Failed {
			state, msg = lethe.TaskFailed, "target reported that the erasure failed"
			if c.Reason != "" {
				msg += ": " + redactString(c.Reason, s.Identities)
			}
		}
		return true, p.endTask(bctx, job, taskEnd{requestID: task.RequestID, target: task.Target, state: state,
			report: p.measure(bctx, conn, *s, task.Target, tally, task.Attempts), msg: msg, attempts: task.Attempts})
	}
	s.Checkpoint = w.Checkpoint
	if c, ok := conn.(connector.Completer); ok && c.AcceptsCallbacks() {
		token, err := p.st.TaskConfirmationToken(ctx, task.RequestID, task.Target, p.now())
		if errors.Is(err, store.ErrConflict) {
			return true, nil // the task ended meanwhile: this job is a duplicate
		}
		if err != nil {
			return true, fmt.Errorf("erase %s: %w", task.Target, err)
		}
		s.CallbackToken = token
	}
	return false, nil
}

// waitPending handles a Pending answer from Erase: fail the task when its
// deadline has passed, otherwise record the checkpoint and snooze the job
// until the connector's next check (never past the deadline).
func (p *Pipeline) waitPending(ctx context.Context, job *rivertype.JobRow, task lethe.Task, conn connector.Connector, report lethe.Report, err error, ids []lethe.Identity, took time.Duration) error {
	var pe *connector.PendingError
	errors.As(err, &pe)
	requestID, target := task.RequestID, task.Target
	reason := redactString(pe.Reason, ids)
	within := p.confirmWithin(conn)
	now := p.now()
	deadline := task.StartedAt.Add(within)
	if !now.Before(deadline) {
		msg := "target did not confirm erasure within " + lethe.ShortDuration(within)
		if reason != "" {
			msg += " (last answer: " + reason + ")"
		}
		// Only what the target confirmed: a target that never confirmed
		// did nothing lethe knows of.
		return p.endTask(ctx, job, taskEnd{requestID: requestID, target: target, state: lethe.TaskFailed,
			report: report, msg: msg, attempts: task.Attempts, took: took})
	}
	if len(pe.Checkpoint) > connector.MaxCheckpointLen {
		msg := fmt.Sprintf("connector returned a checkpoint of %d bytes, more than the limit of %d", len(pe.Checkpoint), connector.MaxCheckpointLen)
		return p.endTask(ctx, job, taskEnd{requestID: requestID, target: target, state: lethe.TaskFailed,
			report: report, msg: msg, attempts: task.Attempts, took: took})
	}
	if reason == "" {
		reason = "waiting for the target to confirm the erasure"
	}
	err = p.st.InTx(ctx, func(tx store.Tx) error {
		first, ok, err := tx.SetTaskPending(ctx, store.SetTaskPendingParams{
			RequestID: requestID, Target: target, Checkpoint: pe.Checkpoint, Reason: "pending: " + reason, At: p.now(),
		})
		if err != nil || !ok {
			return err
		}
		if first {
			if err := p.audit(ctx, tx, requestID, lethe.EventTaskPending, map[string]string{
				"target": target,
				"reason": reason,
			}); err != nil {
				return err
			}
		}
		return p.remindManual(ctx, tx, task, conn, deadline)
	})
	if err != nil {
		return fmt.Errorf("erase %s: %w", target, err)
	}
	wait := min(max(pe.After, p.cfg.PendingMinWait), deadline.Sub(now))
	wait = max(wait, p.cfg.PendingMinWait)
	p.log.Debug("pipeline: target answered pending", slog.String("request_id", requestID),
		slog.String("target", target), slog.Duration("next_check", wait))
	return river.JobSnooze(wait)
}

func (p *Pipeline) confirmWithin(conn connector.Connector) time.Duration {
	if d, ok := conn.(connector.Deadliner); ok && d.ConfirmWithin() > 0 {
		return d.ConfirmWithin()
	}
	return p.cfg.ConfirmWithin
}
